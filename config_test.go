package main

import (
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestMetricsAddrOff: an empty environment variable reads as unset, so the
// documented way to turn the metrics listener off by env is "off".
func TestMetricsAddrOff(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, nil, "127.0.0.1:9091"},
		{map[string]string{"METRICS_ADDR": "off"}, nil, ""},
		{nil, []string{"-metrics-addr", ""}, ""},
		{nil, []string{"-metrics-addr", "off"}, ""},
		{map[string]string{"METRICS_ADDR": "127.0.0.1:9999"}, nil, "127.0.0.1:9999"},
	} {
		cfg, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
		if err != nil {
			t.Fatalf("%v %v: %v", tc.env, tc.args, err)
		}
		if cfg.MetricsAddr != tc.want {
			t.Errorf("%v %v: metrics addr %q, want %q", tc.env, tc.args, cfg.MetricsAddr, tc.want)
		}
	}
}

// TestReadmeListsEverySetting keeps the README's configuration table true:
// every environment variable a flag reads is in it.
func TestReadmeListsEverySetting(t *testing.T) {
	var usage strings.Builder
	_, _ = parseConfig([]string{"-h"}, func(string) string { return "" }, &usage)
	envs := regexp.MustCompile(`\(env ([A-Z0-9_]+)\)`).FindAllStringSubmatch(usage.String(), -1)
	if len(envs) < 20 {
		t.Fatalf("found only %d settings in the usage text:\n%s", len(envs), usage.String())
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range envs {
		if !strings.Contains(string(readme), "`"+m[1]+"`") {
			t.Errorf("README.md's configuration table does not list %s", m[1])
		}
	}
}
