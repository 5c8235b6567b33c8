package session_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/session"
)

func newManager(t testing.TB, key string) *session.Manager {
	t.Helper()
	m, err := session.New([]byte(key), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const key = "0123456789abcdef0123456789abcdef"

func TestSignVerify(t *testing.T) {
	m := newManager(t, key)
	owner := "AAAAAAAAAAAAAAAAAAAAAA"
	v := m.Sign(owner)
	if got, err := m.Verify(v); err != nil || got != owner {
		t.Fatalf("Verify(Sign) = %q, %v", got, err)
	}
	other := newManager(t, strings.Repeat("x", 32))
	for _, bad := range []string{
		"", ".", owner, owner + ".", owner + ".AAAA", other.Sign(owner),
		"BBBBBBBBBBBBBBBBBBBBBB" + v[len(owner):], // someone else's ID, our signature
		v + "A", strings.Replace(v, ".", "..", 1), "../../etc." + v,
	} {
		if got, err := m.Verify(bad); err == nil {
			t.Errorf("Verify(%q) accepted owner %q", bad, got)
		}
	}
	if _, err := session.New([]byte("short"), time.Hour); err == nil {
		t.Fatal("a short key was accepted")
	}
}

func TestMiddleware(t *testing.T) {
	m := newManager(t, key)
	var seen []string
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, session.Owner(r.Context()))
	}))

	// A new browser gets an owner and a cookie.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 || !session.ValidOwner(seen[0]) || !cookies[0].HttpOnly || cookies[0].Secure {
		t.Fatalf("new browser: owner %q, cookies %+v", seen[0], cookies)
	}

	// It keeps it, and gets no new cookie.
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(cookies[0])
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if seen[1] != seen[0] || len(rec.Result().Cookies()) != 0 {
		t.Fatalf("returning browser: owner %q (was %q)", seen[1], seen[0])
	}

	// A damaged cookie is replaced by a new identity.
	req = httptest.NewRequest("GET", "/", nil)
	req.AddCookie(&http.Cookie{Name: session.CookieName, Value: seen[0] + ".forged"})
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if seen[2] == seen[0] || len(rec.Result().Cookies()) != 1 {
		t.Fatal("a forged cookie kept its owner")
	}

	// Behind a TLS-terminating proxy the cookie is Secure and __Host- named.
	req = httptest.NewRequest("GET", "/", nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	c := rec.Result().Cookies()
	if len(c) != 1 || !c[0].Secure || !strings.HasPrefix(c[0].Name, "__Host-") {
		t.Fatalf("https cookie: %+v", c)
	}
}

// FuzzVerify: a cookie value is client input. Verify never panics, and
// accepts only what Sign made.
func FuzzVerify(f *testing.F) {
	m := newManager(f, key)
	f.Add(m.Sign("AAAAAAAAAAAAAAAAAAAAAA"))
	f.Add("AAAAAAAAAAAAAAAAAAAAAA.")
	f.Add("")
	f.Add("....")
	f.Add("\x00\xff.\x00")
	f.Fuzz(func(t *testing.T, v string) {
		owner, err := m.Verify(v)
		if err != nil {
			return
		}
		if !session.ValidOwner(owner) || m.Sign(owner) != v {
			t.Fatalf("Verify(%q) accepted %q, which Sign would not have made", v, owner)
		}
	})
}
