package main

// Who may use a Parley (PARLEY_ACCESS): the settings as read. The browser
// tests of the modes are in e2e/browser.

import (
	"io"
	"strings"
	"testing"
)

// TestAccessSettings: code mode refuses to start without its passphrase,
// and the other access settings are checked before anything starts.
func TestAccessSettings(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string // part of the error; "" for none
	}{
		{nil, nil, ""},
		{map[string]string{"PARLEY_ACCESS": "code"}, nil, "PARLEY_ACCESS_CODE"},
		{nil, []string{"-access", "code"}, "PARLEY_ACCESS_CODE"},
		{map[string]string{"PARLEY_ACCESS": "code", "PARLEY_ACCESS_CODE": "s3cret phrase"}, nil, ""},
		{map[string]string{"PARLEY_ACCESS": "header"}, nil, ""},
		{map[string]string{"PARLEY_ACCESS": "everyone"}, nil, "use open, code or header"},
		{map[string]string{"PARLEY_SHARE_LINKS": "off"}, nil, ""},
		{nil, []string{"-share-links", "sometimes"}, "use on or off"},
	} {
		_, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v %v: %v, want %q", tc.env, tc.args, err, tc.want)
		}
	}
	cfg, err := parseConfig([]string{"-access", "code", "-share-links", "off"},
		func(k string) string { return map[string]string{"PARLEY_ACCESS_CODE": "s3cret phrase"}[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if share, _ := shareLinks(cfg.ShareLinks); share || cfg.AccessCode != "s3cret phrase" {
		t.Fatalf("settings not read: %+v", cfg)
	}
}
