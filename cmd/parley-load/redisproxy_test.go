package main

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// TestCopyCommand: the Redis counter forwards requests byte for byte and
// names each one, scripts by their SHA.
func TestCopyCommand(t *testing.T) {
	t.Parallel()
	sha := strings.Repeat("ab12", 10)
	in := "*3\r\n$7\r\nEVALSHA\r\n$40\r\n" + sha + "\r\n$1\r\n0\r\n" +
		"*2\r\n$9\r\nSUBSCRIBE\r\n$5\r\nch\r\nx\r\n" +
		"PING\r\n"
	r := bufio.NewReader(strings.NewReader(in))
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	var names []string
	for range 3 {
		name, err := copyCommand(r, w)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	_ = w.Flush()
	if want := []string{"evalsha:ab12ab12", "subscribe", "ping"}; strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("names %q, want %q", names, want)
	}
	if out.String() != in {
		t.Fatalf("forwarded %q, want %q", out.String(), in)
	}
}
