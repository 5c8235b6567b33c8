package clientaddr_test

import (
	"net/http/httptest"
	"testing"

	"github.com/parley-chat/parley/clientaddr"
)

func TestOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, setting, remote, xff, fly, want string
	}{
		{"no proxy: the socket", "", "203.0.113.7:5555", "", "", "203.0.113.7"},
		{"no proxy: a spoofed X-Forwarded-For gains nothing", "", "203.0.113.7:5555", "198.51.100.1", "", "203.0.113.7"},
		{"no proxy: a spoofed Fly-Client-IP gains nothing", "", "203.0.113.7:5555", "", "198.51.100.1", "203.0.113.7"},
		{"fly", "fly", "172.16.0.2:4000", "", "198.51.100.1", "198.51.100.1"},
		{"fly without its header: the socket", "fly", "172.16.0.2:4000", "198.51.100.9", "", "172.16.0.2"},
		{"trusted proxy appends the client", "10.0.0.0/8", "10.1.2.3:80", "198.51.100.1", "", "198.51.100.1"},
		{"the client's own entries left of the proxy's are ignored", "10.0.0.0/8", "10.1.2.3:80", "1.2.3.4, 198.51.100.1", "", "198.51.100.1"},
		{"two trusted hops", "10.0.0.0/8", "10.1.2.3:80", "198.51.100.1, 10.9.9.9", "", "198.51.100.1"},
		{"an untrusted peer's header is ignored", "10.0.0.0/8", "203.0.113.7:80", "198.51.100.1", "", "203.0.113.7"},
		{"garbage in the chain stops the walk", "10.0.0.0/8", "10.1.2.3:80", "198.51.100.1, nonsense", "", "10.1.2.3"},
		{"a single trusted address", "127.0.0.1", "127.0.0.1:80", "198.51.100.1", "", "198.51.100.1"},
		{"IPv6 by its /64", "", "[2001:db8:1:2:3:4:5:6]:80", "", "", "2001:db8:1:2::/64"},
		{"IPv4-mapped IPv6 is IPv4", "", "[::ffff:203.0.113.7]:80", "", "", "203.0.113.7"},
		{"unreadable", "", "somewhere", "", "", "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := clientaddr.Parse(tc.setting)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			if tc.fly != "" {
				r.Header.Set("Fly-Client-IP", tc.fly)
			}
			if got := res.Of(r); got != tc.want {
				t.Errorf("Of = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"nonsense", "10.0.0.0/99", "fly,300.1.1.1"} {
		if _, err := clientaddr.Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted", s)
		}
	}
}

// FuzzOf: headers are client input; Of never panics and never returns "".
func FuzzOf(f *testing.F) {
	f.Add("10.0.0.0/8", "10.1.2.3:80", "1.2.3.4, 198.51.100.1", "")
	f.Add("fly", "1.1.1.1:1", "", "::1")
	f.Fuzz(func(t *testing.T, setting, remote, xff, fly string) {
		res, err := clientaddr.Parse(setting)
		if err != nil {
			return
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", xff)
		r.Header.Set("Fly-Client-IP", fly)
		if res.Of(r) == "" {
			t.Fatal("empty address key")
		}
	})
}
