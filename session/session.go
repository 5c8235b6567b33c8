// Package session gives every browser an anonymous identity: a random owner
// ID in a signed, HttpOnly cookie. Conversations remember the owner that
// created them; only that owner may change them, anyone with the link may
// watch. There are no accounts: losing the cookie loses the ownership, never
// the conversations' readability.
package session

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// CookieName is the session cookie's name. The __Host- prefix (used over
// HTTPS) makes browsers refuse it unless it is Secure, host-only and Path=/.
const (
	CookieName       = "parley_session"
	secureCookieName = "__Host-parley_session"
	idBytes          = 16
)

// MinKeyBytes is the shortest signing key accepted.
const MinKeyBytes = 32

// Manager issues and verifies session cookies.
type Manager struct {
	key    []byte
	maxAge time.Duration
}

// New returns a Manager that signs with key (at least MinKeyBytes long).
// Every process behind one load balancer needs the same key.
func New(key []byte, maxAge time.Duration) (*Manager, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("session key is %d bytes; it needs at least %d", len(key), MinKeyBytes)
	}
	return &Manager{key: append([]byte(nil), key...), maxAge: maxAge}, nil
}

// NewKey returns a random signing key, for a single process that was given none.
func NewKey() []byte {
	k := make([]byte, MinKeyBytes)
	_, _ = rand.Read(k) // crypto/rand.Read never fails (Go 1.24+)
	return k
}

type ctxKey struct{}

// Owner returns the owner ID that Middleware put in ctx, or "".
func Owner(ctx context.Context) string {
	o, _ := ctx.Value(ctxKey{}).(string)
	return o
}

// WithOwner returns ctx carrying owner; tests use it to act as someone.
func WithOwner(ctx context.Context, owner string) context.Context {
	return context.WithValue(ctx, ctxKey{}, owner)
}

// Middleware gives every request an owner: the one in a valid cookie, or a
// new one, set as a cookie on the response. A forged or damaged cookie is
// treated as none: the browser simply gets a fresh identity.
func (m *Manager) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		owner, ok := m.read(r)
		if !ok {
			owner = newOwner()
			http.SetCookie(w, m.cookie(r, owner))
		}
		next.ServeHTTP(w, r.WithContext(WithOwner(r.Context(), owner)))
	})
}

func (m *Manager) read(r *http.Request) (string, bool) {
	for _, name := range []string{secureCookieName, CookieName} {
		c, err := r.Cookie(name)
		if err != nil {
			continue
		}
		if owner, err := m.Verify(c.Value); err == nil {
			return owner, true
		}
	}
	return "", false
}

func (m *Manager) cookie(r *http.Request, owner string) *http.Cookie {
	secure := isHTTPS(r)
	name := CookieName
	if secure {
		name = secureCookieName
	}
	return &http.Cookie{
		Name:     name,
		Value:    m.Sign(owner),
		Path:     "/",
		MaxAge:   int(m.maxAge.Seconds()),
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteLaxMode,
	}
}

// isHTTPS reports whether the browser reached us over TLS, directly or
// through a proxy that terminates it (Fly.io sets X-Forwarded-Proto).
func isHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// Sign returns the cookie value for owner.
func (m *Manager) Sign(owner string) string {
	return owner + "." + base64.RawURLEncoding.EncodeToString(m.mac(owner))
}

// ErrInvalid is returned for a cookie value that was not signed by this key.
var ErrInvalid = errors.New("invalid session")

// Verify returns the owner of a cookie value signed by this key.
func (m *Manager) Verify(value string) (string, error) {
	owner, sig, ok := strings.Cut(value, ".")
	if !ok || !ValidOwner(owner) {
		return "", ErrInvalid
	}
	// Compare the encoded form: base64 has more than one spelling of some
	// byte strings, and only the one Sign writes is accepted.
	want := base64.RawURLEncoding.EncodeToString(m.mac(owner))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return "", ErrInvalid
	}
	return owner, nil
}

func (m *Manager) mac(owner string) []byte {
	h := hmac.New(sha256.New, m.key)
	h.Write([]byte("parley-session-v1:"))
	h.Write([]byte(owner))
	return h.Sum(nil)
}

func newOwner() string {
	b := make([]byte, idBytes)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ValidOwner reports whether s has the shape of an owner ID.
func ValidOwner(s string) bool {
	if len(s) != base64.RawURLEncoding.EncodedLen(idBytes) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}
