package session_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/session"
)

func newManager(t testing.TB, key string) *session.Manager {
	t.Helper()
	m, err := session.New(time.Hour, []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const key = "0123456789abcdef0123456789abcdef"

func TestSignVerify(t *testing.T) {
	t.Parallel()
	m := newManager(t, key)
	owner := "AAAAAAAAAAAAAAAAAAAAAA"
	v := m.Sign(owner, time.Now())
	if got, err := m.Verify(v); err != nil || got != owner {
		t.Fatalf("Verify(Sign) = %q, %v", got, err)
	}
	other := newManager(t, strings.Repeat("x", 32))
	for _, bad := range []string{
		"", ".", owner, owner + ".", owner + ".AAAA", other.Sign(owner, time.Now()),
		owner + ".." + v[strings.LastIndex(v, ".")+1:], // no issue time
		strings.Replace(v, ".1", ".01", 1),             // another spelling of the time
		"BBBBBBBBBBBBBBBBBBBBBB" + v[len(owner):],      // someone else's ID, our signature
		v + "A", strings.Replace(v, ".", "..", 1), "../../etc." + v,
	} {
		if got, err := m.Verify(bad); err == nil {
			t.Errorf("Verify(%q) accepted owner %q", bad, got)
		}
	}
	if _, err := session.New(time.Hour, []byte("short")); err == nil {
		t.Fatal("a short key was accepted")
	}
	if _, err := session.New(time.Hour); err == nil {
		t.Fatal("no key was accepted")
	}
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
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
	now := time.Unix(1_800_000_000, 0)
	m.SetNow(func() time.Time { return now })
	f.Add(m.Sign("AAAAAAAAAAAAAAAAAAAAAA", now))
	f.Add("AAAAAAAAAAAAAAAAAAAAAA.1800000000.")
	f.Add("AAAAAAAAAAAAAAAAAAAAAA.")
	f.Add("")
	f.Add("....")
	f.Add("\x00\xff.\x00")
	f.Fuzz(func(t *testing.T, v string) {
		owner, err := m.Verify(v)
		if err != nil {
			return
		}
		stamp := strings.Split(v, ".")
		secs, _ := strconv.ParseInt(stamp[1], 10, 64)
		if !session.ValidOwner(owner) || len(stamp) != 3 || m.Sign(owner, time.Unix(secs, 0)) != v {
			t.Fatalf("Verify(%q) accepted %q, which Sign would not have made", v, owner)
		}
	})
}

// TestExpiryAndRotation: a cookie is refused once it is older than the
// maximum age since it was issued; a cookie over a day old, or signed by an
// older key, is re-issued with the newest key, keeping its owner; a cookie
// signed by a key that was dropped is refused. Over HTTPS only the __Host-
// cookie counts.
func TestExpiryAndRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey := []byte(strings.Repeat("o", 32)), []byte(strings.Repeat("n", 32))
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	old, _ := session.New(30*24*time.Hour, oldKey)
	old.SetNow(clock)
	rotated, _ := session.New(30*24*time.Hour, newKey, oldKey)
	rotated.SetNow(clock)
	dropped, _ := session.New(30*24*time.Hour, newKey)
	dropped.SetNow(clock)

	const owner = "AAAAAAAAAAAAAAAAAAAAAA"
	serve := func(m *session.Manager, c *http.Cookie, https bool) (string, []*http.Cookie) {
		t.Helper()
		var seen string
		h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = session.Owner(r.Context()) }))
		req := httptest.NewRequest("GET", "/", nil)
		if https {
			req.Header.Set("X-Forwarded-Proto", "https")
		}
		req.AddCookie(c)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return seen, rec.Result().Cookies()
	}
	plain := func(v string) *http.Cookie { return &http.Cookie{Name: session.CookieName, Value: v} }

	fresh := old.Sign(owner, now.Add(-time.Hour))
	if got, set := serve(old, plain(fresh), false); got != owner || len(set) != 0 {
		t.Errorf("a fresh cookie: owner %q, cookies %v", got, set)
	}
	dayOld := old.Sign(owner, now.Add(-25*time.Hour))
	got, set := serve(old, plain(dayOld), false)
	if got != owner || len(set) != 1 {
		t.Fatalf("a day-old cookie: owner %q, cookies %v; want it re-issued", got, set)
	}
	if o, err := old.Verify(set[0].Value); err != nil || o != owner || set[0].Value == dayOld {
		t.Errorf("the re-issued cookie %q: %q, %v", set[0].Value, o, err)
	}
	expired := old.Sign(owner, now.Add(-31*24*time.Hour))
	if got, _ := serve(old, plain(expired), false); got == owner {
		t.Errorf("an expired cookie kept its owner")
	}
	future := old.Sign(owner, now.Add(time.Hour))
	if _, err := old.Verify(future); err == nil {
		t.Errorf("a cookie issued in the future was accepted")
	}

	// Rotation: the old key's cookie is accepted and re-signed with the new.
	got, set = serve(rotated, plain(fresh), false)
	if got != owner || len(set) != 1 {
		t.Fatalf("after rotation: owner %q, cookies %v; want it re-issued", got, set)
	}
	if o, err := dropped.Verify(set[0].Value); err != nil || o != owner {
		t.Errorf("the re-issued cookie is not signed by the new key: %v", err)
	}
	if got, _ := serve(dropped, plain(fresh), false); got == owner {
		t.Errorf("a cookie of a dropped key kept its owner")
	}

	// Over HTTPS the plain name is ignored; the __Host- one counts.
	if got, _ := serve(old, plain(fresh), true); got == owner {
		t.Errorf("over HTTPS a plain-named cookie was accepted")
	}
	if got, _ := serve(old, &http.Cookie{Name: "__Host-parley_session", Value: fresh}, true); got != owner {
		t.Errorf("over HTTPS the __Host- cookie was refused")
	}
}

// TestFirstFormatCookies: a cookie of the first format (no issue time) keeps
// its owner across the upgrade and is re-issued in the current format.
func TestFirstFormatCookies(t *testing.T) {
	t.Parallel()
	m := newManager(t, key)
	const owner = "AAAAAAAAAAAAAAAAAAAAAA"
	h1 := hmac.New(sha256.New, []byte(key))
	h1.Write([]byte("parley-session-v1:" + owner))
	v1 := owner + "." + base64.RawURLEncoding.EncodeToString(h1.Sum(nil))
	var seen string
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = session.Owner(r.Context()) }))
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(&http.Cookie{Name: session.CookieName, Value: v1})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	set := rec.Result().Cookies()
	if seen != owner || len(set) != 1 || strings.Count(set[0].Value, ".") != 2 {
		t.Fatalf("a first-format cookie: owner %q, cookies %v", seen, set)
	}
}

// TestIsNew: a request without a valid cookie is a new browser's; one that
// brings its cookie back is not.
func TestIsNew(t *testing.T) {
	t.Parallel()
	m := newManager(t, key)
	var isNew []bool
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		isNew = append(isNew, session.IsNew(r.Context()))
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(rec.Result().Cookies()[0])
	h.ServeHTTP(httptest.NewRecorder(), req)
	if len(isNew) != 2 || !isNew[0] || isNew[1] {
		t.Fatalf("IsNew of a new and a returning browser: %v", isNew)
	}
}
