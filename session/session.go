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
	"strconv"
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

// refreshAfter is how old a cookie may get before it is re-issued with a
// fresh issue time: MaxAge then counts from a browser's last visit (give or
// take a day), not from its first.
const refreshAfter = 24 * time.Hour

// clockSkew is how far in the future an issue time may lie (processes'
// clocks differ a little).
const clockSkew = 5 * time.Minute

// Manager issues and verifies session cookies.
type Manager struct {
	keys   [][]byte // newest first: it signs; every one verifies
	maxAge time.Duration
	now    func() time.Time
}

// New returns a Manager that signs with keys[0] and accepts cookies signed by
// any of keys (each at least MinKeyBytes long): rotating a key is adding a
// new one in front, then dropping the old one once its cookies were
// re-issued (every visit re-issues a cookie signed by an older key). A cookie
// older than maxAge since it was last issued is refused, whatever its key.
// Every process behind one load balancer needs the same keys.
func New(maxAge time.Duration, keys ...[]byte) (*Manager, error) {
	if len(keys) == 0 {
		return nil, errors.New("no session key")
	}
	m := &Manager{maxAge: maxAge, now: time.Now}
	for i, k := range keys {
		if len(k) < MinKeyBytes {
			return nil, fmt.Errorf("session key %d is %d bytes; it needs at least %d", i+1, len(k), MinKeyBytes)
		}
		m.keys = append(m.keys, append([]byte(nil), k...))
	}
	return m, nil
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

type newKey struct{}

// IsNew reports whether ctx's owner was made for this request: the browser
// sent no valid cookie, so it has no conversations yet (a client without a
// cookie jar is new at every request).
func IsNew(ctx context.Context) bool {
	n, _ := ctx.Value(newKey{}).(bool)
	return n
}

// WithOwner returns ctx carrying owner; tests use it to act as someone.
func WithOwner(ctx context.Context, owner string) context.Context {
	return context.WithValue(ctx, ctxKey{}, owner)
}

// Middleware gives every request an owner: the one in a valid cookie, or a
// new one, set as a cookie on the response. A forged, damaged or expired
// cookie is treated as none: the browser simply gets a fresh identity. A
// valid cookie signed by an older key, or issued over a day ago, is
// re-issued.
func (m *Manager) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		owner, t, err := m.read(r)
		ctx := r.Context()
		switch {
		case err != nil:
			owner = newOwner()
			http.SetCookie(w, m.cookie(r, owner))
			ctx = context.WithValue(ctx, newKey{}, true)
		case t.stale(m.now()):
			http.SetCookie(w, m.cookie(r, owner))
		}
		next.ServeHTTP(w, r.WithContext(WithOwner(ctx, owner)))
	})
}

// ticket is what a valid cookie says besides its owner.
type ticket struct {
	issued time.Time
	key    int  // index of the key that signed it
	legacy bool // the first cookie format, without an issue time
}

func (t ticket) stale(now time.Time) bool {
	return t.legacy || t.key > 0 || now.Sub(t.issued) > refreshAfter
}

// read returns the owner of the request's cookie. Over HTTPS only the
// __Host- cookie counts (a plain-named one could have been planted by a
// sibling domain or a plain-HTTP page); over HTTP only the plain one exists.
func (m *Manager) read(r *http.Request) (string, ticket, error) {
	name := CookieName
	if isHTTPS(r) {
		name = secureCookieName
	}
	c, err := r.Cookie(name)
	if err != nil {
		return "", ticket{}, ErrInvalid
	}
	return m.verify(c.Value)
}

func (m *Manager) cookie(r *http.Request, owner string) *http.Cookie {
	secure := isHTTPS(r)
	name := CookieName
	if secure {
		name = secureCookieName
	}
	return &http.Cookie{
		Name:     name,
		Value:    m.Sign(owner, m.now()),
		Path:     "/",
		MaxAge:   int(m.maxAge.Seconds()),
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteLaxMode,
	}
}

// isHTTPS reports whether the browser reached us over TLS, directly or
// through a proxy that terminates it (Fly.io sets X-Forwarded-Proto). A
// client that claims HTTPS over plain HTTP only gets a Secure cookie its
// browser will not send back.
func isHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// IsHTTPS is isHTTPS for other packages (HSTS is sent only over HTTPS).
func IsHTTPS(r *http.Request) bool { return isHTTPS(r) }

// Sign returns the cookie value for owner, issued at t: owner, issue time
// (Unix seconds) and the MAC of both under the newest key.
func (m *Manager) Sign(owner string, t time.Time) string {
	payload := owner + "." + strconv.FormatInt(t.Unix(), 10)
	return payload + "." + base64.RawURLEncoding.EncodeToString(mac(m.keys[0], payload))
}

// ErrInvalid is returned for a cookie value that was not signed by one of
// the keys, or has expired.
var ErrInvalid = errors.New("invalid session")

// Verify returns the owner of a cookie value signed by one of the keys and
// issued within the maximum age.
func (m *Manager) Verify(value string) (string, error) {
	owner, _, err := m.verify(value)
	return owner, err
}

func (m *Manager) verify(value string) (string, ticket, error) {
	owner, rest, ok := strings.Cut(value, ".")
	if !ok || !ValidOwner(owner) {
		return "", ticket{}, ErrInvalid
	}
	stamp, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return m.verifyV1(owner, rest)
	}
	if len(stamp) == 0 || len(stamp) > 12 || strings.TrimLeft(stamp, "0123456789") != "" || stamp[0] == '0' {
		return "", ticket{}, ErrInvalid
	}
	secs, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil {
		return "", ticket{}, ErrInvalid
	}
	issued, now := time.Unix(secs, 0), m.now()
	if issued.After(now.Add(clockSkew)) || now.Sub(issued) > m.maxAge {
		return "", ticket{}, ErrInvalid
	}
	payload := owner + "." + stamp
	for i, k := range m.keys {
		// Compare the encoded form: base64 has more than one spelling of
		// some byte strings, and only the one Sign writes is accepted.
		want := base64.RawURLEncoding.EncodeToString(mac(k, payload))
		if hmac.Equal([]byte(sig), []byte(want)) {
			return owner, ticket{issued: issued, key: i}, nil
		}
	}
	return "", ticket{}, ErrInvalid
}

// verifyV1 accepts a cookie of the first format (owner.MAC, no issue time),
// so that browsers keep their conversations across the upgrade; it is
// re-issued in the current format at once. Rotating the keys ends them.
func (m *Manager) verifyV1(owner, sig string) (string, ticket, error) {
	for i, k := range m.keys {
		h := hmac.New(sha256.New, k)
		h.Write([]byte("parley-session-v1:"))
		h.Write([]byte(owner))
		if hmac.Equal([]byte(sig), []byte(base64.RawURLEncoding.EncodeToString(h.Sum(nil)))) {
			return owner, ticket{key: i, legacy: true}, nil
		}
	}
	return "", ticket{}, ErrInvalid
}

func mac(key []byte, payload string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("parley-session-v2:"))
	h.Write([]byte(payload))
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
