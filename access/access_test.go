package access

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/parley-chat/parley/session"
)

var testKey = bytes.Repeat([]byte("k"), 32)

func gate(t *testing.T, mode Mode, share bool) *Gate {
	t.Helper()
	g, err := New(Config{Mode: mode, Code: "open sesame", ShareLinks: share, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestAccessDecisions: every mode against every kind of route, with and
// without access, with share links on and off.
func TestAccessDecisions(t *testing.T) {
	t.Parallel()
	const conv = "/c/0123456789abcdef"
	routes := []struct {
		method, path string
		class        Class
	}{
		{"GET", "/", Private},
		{"HEAD", "/", Private},
		{"POST", "/c", Private},
		{"POST", conv + "/messages", Private},
		{"POST", conv + "/stop", Private},
		{"POST", conv + "/regenerate", Private},
		{"POST", conv + "/title", Private},
		{"POST", conv + "/delete", Private},
		{"GET", "/sidebar/events", Private},
		{"GET", "/nowhere", Private},
		{"GET", conv, Shared},
		{"HEAD", conv, Shared},
		{"GET", conv + "/events", Shared},
		{"GET", conv + "/markdown/3", Shared},
		{"GET", conv + "/export.md", Shared},
		{"GET", conv + "/export.json", Shared},
		{"GET", "/static/app.css", Always},
		{"GET", "/favicon.ico", Always},
		{"GET", "/healthz", Always},
		{"GET", "/readyz", Always},
		{"POST", "/access", Always},
		// Not what they look like.
		{"POST", conv, Private},
		{"DELETE", conv, Private},
		{"GET", "/access", Private},
		{"GET", "/c/", Private},
		{"GET", "/c//events", Private},
		{"GET", "/c/../", Private},
		{"GET", "/c/x/../../", Private},
		{"GET", conv + "/events/extra", Private},
		{"GET", conv + "/markdown", Private},
		{"GET", conv + "/markdown/1/2", Private},
		{"GET", conv + "/export.txt", Private},
		{"GET", conv + "/export.md/x", Private},
		{"POST", conv + "/export.json", Private},
		{"GET", "/static/../", Private},
		{"GET", "/static/x/../../sidebar/events", Private},
		{"GET", "/c/a\\b", Private},
		{"POST", "/static/app.css", Private},
		{"POST", "/healthz", Private},
	}
	for _, rt := range routes {
		if got := Classify(rt.method, rt.path); got != rt.class {
			t.Errorf("Classify(%s %s) = %d, want %d", rt.method, rt.path, got, rt.class)
		}
	}
	for _, mode := range []Mode{Open, Code, Header} {
		for _, share := range []bool{true, false} {
			g := gate(t, mode, share)
			for _, rt := range routes {
				for _, granted := range []bool{true, false} {
					want := true
					if mode != Open && !granted {
						want = rt.class == Always || rt.class == Shared && share
					}
					if got := g.Allowed(rt.method, rt.path, granted); got != want {
						t.Errorf("%s mode, share links %t, granted %t: %s %s allowed = %t, want %t",
							mode, share, granted, rt.method, rt.path, got, want)
					}
				}
			}
		}
	}
	var open *Gate
	if !open.Allowed("POST", "/c", false) || open.Mode() != Open {
		t.Error("a nil gate is not open")
	}
}

func TestAccessConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		c    Config
		want string // part of the error; "" for none
	}{
		{Config{}, ""},
		{Config{Mode: "OPEN"}, ""},
		{Config{Mode: "everyone"}, "use open, code or header"},
		{Config{Mode: Code, Key: testKey}, "PARLEY_ACCESS_CODE"},
		{Config{Mode: Code, Code: "x", Key: testKey[:10]}, "at least 32"},
		{Config{Mode: Code, Code: "x", Key: testKey}, ""},
		{Config{Mode: Header, Key: testKey}, ""},
		{Config{Mode: Header, Header: "X Bad", Key: testKey}, "not a header name"},
	} {
		_, err := New(tc.c)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("New(%+v): %v, want %q", tc.c, err, tc.want)
		}
	}
}

// TestPassphraseGrants: a grant is bound to its owner and to the current
// passphrase; changing either, or the key, makes it worthless.
func TestPassphraseGrants(t *testing.T) {
	t.Parallel()
	g := gate(t, Code, true)
	if !g.CodeMatches("open sesame") || g.CodeMatches("open sesame ") || g.CodeMatches("") || g.CodeMatches("Open sesame") {
		t.Fatal("CodeMatches compares wrongly")
	}
	const alice, bob = "AAAAAAAAAAAAAAAAAAAAAA", "BBBBBBBBBBBBBBBBBBBBBB"
	grant := g.Grant(alice)
	if !g.Granted(alice, grant) {
		t.Fatal("a fresh grant is refused")
	}
	if g.Granted(bob, grant) {
		t.Error("a grant works for another owner")
	}
	if g.Granted(alice, grant[:len(grant)-1]) || g.Granted(alice, "") || g.Granted("", grant) || g.Granted(alice, grant+"A") {
		t.Error("a damaged grant is accepted")
	}
	other, _ := New(Config{Mode: Code, Code: "new passphrase", Key: testKey})
	if other.Granted(alice, grant) {
		t.Error("a grant survives a change of passphrase")
	}
	rekeyed, _ := New(Config{Mode: Code, Code: "open sesame", Key: bytes.Repeat([]byte("j"), 32)})
	if rekeyed.Granted(alice, grant) {
		t.Error("a grant survives a change of key")
	}
	same, _ := New(Config{Mode: Code, Code: "open sesame", Key: testKey})
	if !same.Granted(alice, grant) {
		t.Error("a grant does not survive a restart with the same key and passphrase")
	}
	if gate(t, Header, true).Granted(alice, grant) {
		t.Error("header mode accepts a passphrase grant")
	}
}

// TestHeaderUsers: the user header is normalised, refused when missing,
// empty, repeated or odd, and the user's owner ID is stable and valid.
func TestHeaderUsers(t *testing.T) {
	t.Parallel()
	g := gate(t, Header, true)
	h := func(vals ...string) http.Header {
		hd := http.Header{}
		for _, v := range vals {
			hd.Add("X-Forwarded-User", v)
		}
		return hd
	}
	for _, tc := range []struct {
		h    http.Header
		user string
	}{
		{h("alice@example.com"), "alice@example.com"},
		{h("  Alice@Example.COM "), "alice@example.com"},
		{http.Header{"X-Forwarded-User": {"bob"}}, "bob"},
		{h(), ""},
		{h(""), ""},
		{h("   "), ""},
		{h("alice", "bob"), ""},
		{h("al\x00ice"), ""},
		{h(strings.Repeat("a", 2000)), ""},
	} {
		u, ok := g.User(tc.h)
		if u != tc.user || ok != (tc.user != "") {
			t.Errorf("User(%q) = %q, %t; want %q", tc.h, u, ok, tc.user)
		}
	}
	if _, ok := gate(t, Code, true).User(h("alice")); ok {
		t.Error("code mode believes a user header")
	}
	custom, err := New(Config{Mode: Header, Header: "x-auth-request-email", Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := custom.User(http.Header{"X-Auth-Request-Email": {"carol@example.com"}}); !ok || u != "carol@example.com" {
		t.Errorf("a configured header is not read: %q", u)
	}

	a := g.Owner("alice@example.com")
	if !session.ValidOwner(a) {
		t.Fatalf("owner %q is not a valid owner ID", a)
	}
	again, _ := New(Config{Mode: Header, Key: testKey})
	if again.Owner("alice@example.com") != a {
		t.Error("the same user gets another owner from another process")
	}
	if g.Owner("bob") == a {
		t.Error("two users share an owner")
	}
	otherKey, _ := New(Config{Mode: Header, Key: bytes.Repeat([]byte("j"), 32)})
	if otherKey.Owner("alice@example.com") == a {
		t.Error("the owner does not depend on the key")
	}
}

func TestPassphraseNextIsLocal(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/":                    "/",
		"/c/abc":               "/c/abc",
		"/c/abc?after=1-2":     "/c/abc?after=1-2",
		"":                     "/",
		"c/abc":                "/",
		"//evil.example":       "/",
		"/\\evil.example":      "/",
		"https://evil.example": "/",
		"/\t/evil.example":     "/",
		"/ok path":             "/",
		"javascript:alert(1)":  "/",
	} {
		if got := LocalPath(in); got != want {
			t.Errorf("LocalPath(%q) = %q, want %q", in, got, want)
		}
	}
	for _, tc := range []struct{ method, u, want string }{
		{"GET", "/c/abc?x=1", "/c/abc?x=1"},
		{"GET", "//evil.example/x", "/"},
		{"POST", "/c/abc/messages", "/c/abc"},
		{"POST", "/c", "/"},
		{"POST", "/c/../messages", "/"},
	} {
		u, _ := url.ParseRequestURI(tc.u) // as the server parses a request line
		if got := ReturnPath(tc.method, u); got != tc.want {
			t.Errorf("ReturnPath(%s %s) = %q, want %q", tc.method, tc.u, got, tc.want)
		}
	}
}
