package handlers

import "testing"

func TestAcceptsGzip(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		values []string
		want   bool
	}{
		{nil, false},
		{[]string{"gzip, deflate, br, zstd"}, true}, // Chromium
		{[]string{"identity"}, false},
		{[]string{"br", "GZIP"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip; q=0.5"}, true},
		{[]string{"gzip;q=x"}, false},
		{[]string{"gzip;q=2"}, false},
		{[]string{"*"}, true},
		{[]string{"*;q=0, identity"}, false},
		{[]string{"x-gzip"}, true},
		{[]string{"gzipped"}, false},
		{[]string{"gzip;q=0, *"}, false}, // explicit beats the wildcard
		{[]string{"br, *;q=0.1"}, true},
	} {
		if got := acceptsGzip(c.values); got != c.want {
			t.Errorf("acceptsGzip(%q) = %t, want %t", c.values, got, c.want)
		}
	}
}
