// Package access decides who may use a deployed Parley (PARLEY_ACCESS):
//
//   - open: anyone who reaches it (the default);
//   - code: a browser that entered the passphrase once, and holds the
//     signed grant cookie that says so;
//   - header: a request whose identity proxy (oauth2-proxy, a platform's
//     single sign-on) named the user in a header. The user's owner ID is
//     derived from that name, so their conversations follow them from
//     device to device.
//
// Read-only links to a conversation (its page, its live stream, a message's
// Markdown) work without access unless share links are turned off; static
// files, the health checks and the passphrase form always do. The package
// holds only decisions and cryptography; handlers/access.go applies them.
package access

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"
)

// Mode is who may use a Parley.
type Mode string

// The modes of PARLEY_ACCESS.
const (
	Open   Mode = "open"
	Code   Mode = "code"
	Header Mode = "header"
)

// ParseMode reads a PARLEY_ACCESS setting; empty is Open.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case "", Open:
		return Open, nil
	case Code, Header:
		return m, nil
	}
	return "", fmt.Errorf("PARLEY_ACCESS=%q: use open, code or header", s)
}

// DefaultHeader is the header that names the user in header mode, as
// oauth2-proxy sets it (with --pass-user-headers).
const DefaultHeader = "X-Forwarded-User"

// MaxGuesses wrong passphrases are allowed per client address per
// GuessWindow; past them every try is refused until the window ends.
const (
	MaxGuesses  = 5
	GuessWindow = 10 * time.Minute
)

// DefaultMaxAge is how long a browser keeps a grant unless told otherwise
// (main gives it PARLEY_SESSION_MAX_AGE, the session's own).
const DefaultMaxAge = 365 * 24 * time.Hour

// Class is what a route needs.
type Class int

const (
	// Private routes need access: the home page, creating, posting,
	// stopping, regenerating, renaming, deleting, the sidebar's stream, and
	// every path not named below.
	Private Class = iota
	// Shared routes are the read-only views of a conversation that a link
	// opens: its page, its live stream, a message's Markdown and its
	// downloads (export.md, export.json).
	Shared
	// Always routes serve everyone: static files, the favicon, the health
	// checks and the passphrase form, without which nobody could get in.
	Always
)

// Classify names the class of a request. It looks at the path as the
// router will see it; a path the router would not serve as it is (one
// with "." or ".." segments, which it redirects) is Private.
func Classify(method, path string) Class {
	get := method == http.MethodGet || method == http.MethodHead
	switch {
	case method == http.MethodPost && path == "/access":
		return Always
	case !get:
		return Private
	case path == "/healthz", path == "/readyz", path == "/favicon.ico":
		return Always
	case strings.HasPrefix(path, "/static/") && cleanSegments(path[len("/static/"):], true):
		return Always
	}
	rest, ok := strings.CutPrefix(path, "/c/")
	if !ok {
		return Private
	}
	parts := strings.Split(rest, "/")
	if !cleanSegments(rest, false) {
		return Private
	}
	switch {
	case len(parts) == 1,
		len(parts) == 2 && (parts[1] == "events" || parts[1] == "export.md" || parts[1] == "export.json"),
		len(parts) == 3 && parts[1] == "markdown":
		return Shared
	}
	return Private
}

// cleanSegments reports whether p's segments are all plain names (not
// empty, ".", ".." or holding a backslash); a trailing empty segment is
// allowed when dir is set (the static file server's directory).
func cleanSegments(p string, dir bool) bool {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if s == "" && dir && i == len(parts)-1 {
			continue
		}
		if s == "" || s == "." || s == ".." || strings.ContainsRune(s, '\\') {
			return false
		}
	}
	return true
}

// Config is how a Parley decides who may use it.
type Config struct {
	Mode Mode
	// Code is the passphrase of code mode (PARLEY_ACCESS_CODE).
	Code string
	// Header names the user in header mode (PARLEY_ACCESS_HEADER);
	// empty is DefaultHeader.
	Header string
	// ShareLinks lets anyone with a conversation's link read it
	// (PARLEY_SHARE_LINKS); off, reading needs access too.
	ShareLinks bool
	// Key is the secret that signs grants and derives users' owner IDs;
	// every process behind one load balancer needs the same (main derives
	// it from the newest session key). At least 32 bytes.
	Key []byte
	// MaxAge is how long a grant cookie lives in the browser; 0 is
	// DefaultMaxAge.
	MaxAge time.Duration
}

// Gate applies a Config. A nil *Gate is open.
type Gate struct {
	mode       Mode
	header     string
	shareLinks bool
	maxAge     time.Duration
	grantKey   []byte   // signs grants: the key, bound to the passphrase
	ownerKey   []byte   // derives users' owner IDs
	codeHash   [32]byte // the passphrase's SHA-256, compared in constant time
}

// New checks c and returns its Gate.
func New(c Config) (*Gate, error) {
	mode, err := ParseMode(string(c.Mode))
	if err != nil {
		return nil, err
	}
	g := &Gate{mode: mode, shareLinks: c.ShareLinks, maxAge: c.MaxAge}
	if g.maxAge <= 0 {
		g.maxAge = DefaultMaxAge
	}
	if mode == Open {
		return g, nil
	}
	if len(c.Key) < 32 {
		return nil, fmt.Errorf("access key is %d bytes; it needs at least 32", len(c.Key))
	}
	switch mode {
	case Code:
		if c.Code == "" {
			return nil, errors.New("PARLEY_ACCESS=code needs the passphrase in PARLEY_ACCESS_CODE (env only: it is a secret)")
		}
		g.codeHash = sha256.Sum256([]byte(c.Code))
		// Changing the passphrase changes the key every grant is signed
		// with, so it revokes them all.
		g.grantKey = derive(c.Key, "parley-access-grant-v1:"+string(g.codeHash[:]))
	case Header:
		g.header = c.Header
		if g.header == "" {
			g.header = DefaultHeader
		}
		if !validHeaderName(g.header) {
			return nil, fmt.Errorf("PARLEY_ACCESS_HEADER=%q is not a header name", c.Header)
		}
		g.header = textproto.CanonicalMIMEHeaderKey(g.header)
		g.ownerKey = derive(c.Key, "parley-access-owner-v1")
	}
	return g, nil
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c == '-' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_') {
			return false
		}
	}
	return true
}

func derive(key []byte, label string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(label))
	return h.Sum(nil)
}

// Mode is the gate's mode (Open for a nil gate).
func (g *Gate) Mode() Mode {
	if g == nil {
		return Open
	}
	return g.mode
}

// HeaderName is the header that names the user (header mode).
func (g *Gate) HeaderName() string { return g.header }

// MaxAge is how long a grant cookie lives.
func (g *Gate) MaxAge() time.Duration { return g.maxAge }

// Allowed reports whether a request may go on. granted says whether it
// carries access: a valid grant in code mode, a user header in header mode.
func (g *Gate) Allowed(method, path string, granted bool) bool {
	if g.Mode() == Open || granted {
		return true
	}
	switch Classify(method, path) {
	case Always:
		return true
	case Shared:
		return g.shareLinks
	}
	return false
}

// CodeMatches reports whether guess is the passphrase, in time that does
// not depend on where they differ (both are hashed first, so not on their
// lengths either).
func (g *Gate) CodeMatches(guess string) bool {
	if g.Mode() != Code {
		return false
	}
	h := sha256.Sum256([]byte(guess))
	return subtle.ConstantTimeCompare(h[:], g.codeHash[:]) == 1
}

// Grant returns the grant cookie's value for owner: the MAC of the owner
// under a key bound to the current passphrase.
func (g *Gate) Grant(owner string) string {
	return base64.RawURLEncoding.EncodeToString(g.grantMAC(owner))
}

// Granted reports whether value is owner's grant under the current
// passphrase.
func (g *Gate) Granted(owner, value string) bool {
	if g.Mode() != Code || owner == "" || value == "" {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return false
	}
	return hmac.Equal(got, g.grantMAC(owner))
}

func (g *Gate) grantMAC(owner string) []byte {
	h := hmac.New(sha256.New, g.grantKey)
	h.Write([]byte("owner:"))
	h.Write([]byte(owner))
	return h.Sum(nil)
}

// maxUserBytes bounds a user header's value (an email address is at most
// 254 bytes).
const maxUserBytes = 1024

// User returns the user that the identity proxy named in h, normalised
// (trimmed, lower case). A missing or empty header, one sent more than
// once, or one too long or with control characters names nobody.
func (g *Gate) User(h http.Header) (string, bool) {
	if g.Mode() != Header {
		return "", false
	}
	vals := h.Values(g.header)
	if len(vals) != 1 {
		return "", false
	}
	u := strings.ToLower(strings.TrimSpace(vals[0]))
	if u == "" || len(u) > maxUserBytes {
		return "", false
	}
	for _, c := range []byte(u) {
		if c < 0x20 || c == 0x7f {
			return "", false
		}
	}
	return u, true
}

// Owner returns the owner ID of user (as User returns it): the first 16
// bytes of HMAC-SHA256(key, "user:"+user), so the same on every process and
// device, and not guessable from the name.
func (g *Gate) Owner(user string) string {
	return OwnerOf(g.ownerKey, user)
}

// OwnerOf is Owner under a given derivation key.
func OwnerOf(key []byte, user string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("user:" + user))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16])
}

// LocalPath returns next if it is a path on this site ("/", "/c/abc?x=1"),
// else "/": a passphrase form must not send a person elsewhere ("//evil",
// "/\evil" and "https://evil" all would).
func LocalPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || len(next) > 2048 {
		return "/"
	}
	for _, c := range []byte(next) {
		if c <= 0x20 || c == 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") {
		return "/"
	}
	return next
}

// ReturnPath is where a person refused on a request should go once they
// have access: the page itself for a GET, the conversation for an action
// on one, else the home page.
func ReturnPath(method string, u *url.URL) string {
	if method == http.MethodGet || method == http.MethodHead {
		return LocalPath(u.RequestURI())
	}
	if rest, ok := strings.CutPrefix(u.Path, "/c/"); ok {
		id, _, _ := strings.Cut(rest, "/")
		if id != "" && cleanSegments(id, false) {
			return LocalPath("/c/" + url.PathEscape(id))
		}
	}
	return "/"
}
