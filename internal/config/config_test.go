package config

import (
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/access"
)

// env makes a getenv from a map, so that tests never read the process's
// environment and can run in parallel.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// TestParse: a flag beats its environment variable, which beats the
// default; secrets come from the environment only.
func TestParse(t *testing.T) {
	t.Parallel()
	c, err := Parse([]string{"-max-viewers", "7", "-sse-gzip=false"}, env(map[string]string{
		"PARLEY_MAX_VIEWERS":   "5",
		"PARLEY_HEARTBEAT":     "3s",
		"PARLEY_FRAME_BUDGET":  "2",
		"OPENAI_API_KEY":       "sk-test",
		"PARLEY_SESSION_KEYS":  " k2 , k1 ",
		"PARLEY_SESSION_KEY":   "ignored",
		"REDIS_CLUSTER":        "true",
		"REDIS_CLUSTER_ADDRS":  "h:1",
		"PARLEY_ADDR":          ":8080",
		"PARLEY_SYSTEM_PROMPT": "be brief",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxViewers != 7 || c.SSEGzip || c.Heartbeat != 3*time.Second || c.FrameBudget != 2 ||
		c.OpenAIKey != "sk-test" || !c.RedisCluster || c.Addr != ":8080" || c.SystemPrompt != "be brief" {
		t.Fatalf("settings not read: %+v", c)
	}
	if got := c.SessionKeyring(); len(got) != 2 || string(got[0]) != "k2" || string(got[1]) != "k1" {
		t.Fatalf("session keys %q, want k2, k1", got)
	}
	if c.DemoTokens != 150 || c.LeaseTTL != 10*time.Second || c.AccessHeader != "X-Forwarded-User" {
		t.Fatalf("defaults not kept: %+v", c)
	}
	c, err = Parse(nil, env(map[string]string{"PARLEY_SESSION_KEY": "only"}), io.Discard)
	if err != nil || len(c.SessionKeyring()) != 1 || string(c.SessionKeyring()[0]) != "only" {
		t.Fatalf("PARLEY_SESSION_KEY alone: %q %v", c.SessionKeyring(), err)
	}
	for _, secret := range []string{"-openai-api-key", "-access-code", "-session-key", "-session-keys"} {
		if _, err := Parse([]string{secret, "x"}, env(nil), io.Discard); err == nil {
			t.Errorf("%s is a flag; secrets must be env only", secret)
		}
	}
}

// TestParseErrors: a wrong setting stops the process, naming the setting.
func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"PARLEY_MAX_VIEWERS": "many"}, nil, `PARLEY_MAX_VIEWERS="many": not a whole number`},
		{map[string]string{"PARLEY_SSE_GZIP": "maybe"}, nil, `PARLEY_SSE_GZIP="maybe": use 1 or 0`},
		{map[string]string{"PARLEY_DEMO_TPS": "fast"}, nil, `PARLEY_DEMO_TPS="fast": not a number`},
		{map[string]string{"PARLEY_HEARTBEAT": "15"}, nil, `PARLEY_HEARTBEAT="15": not a duration`},
		// A flag does not hide a wrong environment variable.
		{map[string]string{"PARLEY_MAX_VIEWERS": "many"}, []string{"-max-viewers", "3"}, "PARLEY_MAX_VIEWERS"},
		{nil, []string{"-max-viewers", "0"}, "max-viewers must be positive"},
		{nil, []string{"-max-body-bytes", "10", "-max-message-bytes", "20"}, "must be at least max-message-bytes"},
		{nil, []string{"-heartbeat", "0s"}, "heartbeat must be positive"},
		{nil, []string{"-lease-ttl", "50ms"}, "must be much longer than flush-interval"},
		{nil, []string{"-frame-budget", "-1"}, "must not be negative"},
		{nil, []string{"-room-writes-per-second", "-1"}, "room-writes-per-second must not be negative"},
		{nil, []string{"-demo-tokens-per-second", "0"}, "demo-tokens-per-second must be positive"},
		{nil, []string{"-log-level", "loud"}, `log-level "loud"`},
		{nil, []string{"-log-format", "xml"}, `log-format "xml"`},
		{nil, []string{"-redis-cluster-addrs", "h1"}, "REDIS_CLUSTER_ADDRS"},
		{nil, []string{"-no-such-flag"}, "flag provided but not defined"},
	} {
		_, err := Parse(tc.args, env(tc.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: %v, want %q", tc.env, tc.args, err, tc.want)
		}
	}
}

// TestAccessSettings: code mode refuses to start without its passphrase,
// and the other access settings are checked before anything starts.
func TestAccessSettings(t *testing.T) {
	t.Parallel()
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
		{map[string]string{"PARLEY_ACCESS": "header", "PARLEY_ACCESS_HEADER": " "}, nil, "needs PARLEY_ACCESS_HEADER"},
		{map[string]string{"PARLEY_ACCESS": "everyone"}, nil, "use open, code or header"},
		{map[string]string{"PARLEY_SHARE_LINKS": "off"}, nil, ""},
		{nil, []string{"-share-links", "sometimes"}, "use on or off"},
	} {
		_, err := Parse(tc.args, env(tc.env), io.Discard)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v %v: %v, want %q", tc.env, tc.args, err, tc.want)
		}
	}
	cfg, err := Parse([]string{"-access", "code", "-share-links", "off"},
		env(map[string]string{"PARLEY_ACCESS_CODE": "s3cret phrase"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SharesLinks() || cfg.AccessCode != "s3cret phrase" || cfg.AccessMode() != access.Code {
		t.Fatalf("settings not read: %+v", cfg)
	}
}

// TestMetricsAddrOff: an empty environment variable reads as unset, so the
// documented way to turn the metrics listener off by env is "off".
func TestMetricsAddrOff(t *testing.T) {
	t.Parallel()
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
		cfg, err := Parse(tc.args, env(tc.env), io.Discard)
		if err != nil {
			t.Fatalf("%v %v: %v", tc.env, tc.args, err)
		}
		if cfg.MetricsAddr != tc.want {
			t.Errorf("%v %v: metrics addr %q, want %q", tc.env, tc.args, cfg.MetricsAddr, tc.want)
		}
	}
}

// TestSettingsAreDefinedOnce: no two settings share a flag or a variable.
func TestSettingsAreDefinedOnce(t *testing.T) {
	t.Parallel()
	flags, envs := map[string]bool{}, map[string]bool{}
	for _, s := range Settings() {
		if s.Env == "" || s.Help == "" {
			t.Errorf("%+v: every setting needs a variable and a help", s)
		}
		if envs[s.Env] || s.Flag != "" && flags[s.Flag] {
			t.Errorf("%s (-%s) is defined twice", s.Env, s.Flag)
		}
		envs[s.Env], flags[s.Flag] = true, true
	}
}

// TestHelpListsEverySetting: -h (and -help) names every flag and every
// variable, secrets included, in groups in order, on lines that fit a
// terminal.
func TestHelpListsEverySetting(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"-h", "-help"} {
		var out strings.Builder
		if _, err := Parse([]string{arg}, env(nil), &out); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%s: %v, want flag.ErrHelp", arg, err)
		}
		usage := out.String()
		for i, line := range strings.Split(usage, "\n") {
			if len(line) > usageWidth {
				t.Errorf("%s: line %d is %d columns: %q", arg, i+1, len(line), line)
			}
		}
		var titles []int
		for g := Essentials; g <= Tuning; g++ {
			titles = append(titles, strings.Index(usage, "\n"+g.Title()+"\n"))
		}
		if slices.Contains(titles, -1) || !slices.IsSorted(titles) {
			t.Fatalf("%s: group titles at %v, want all, in order:\n%s", arg, titles, usage)
		}
		for _, s := range Settings() {
			at := strings.Index(usage, "env "+s.Env+" ")
			if at < 0 {
				at = strings.Index(usage, "env "+s.Env+"\n")
			}
			if at < 0 {
				t.Errorf("%s: %s is not listed", arg, s.Env)
				continue
			}
			if s.Flag != "" && !strings.Contains(usage[:at], "-"+s.Flag+" ") && !strings.Contains(usage[:at], "-"+s.Flag+"\n") {
				t.Errorf("%s: -%s is not listed before %s", arg, s.Flag, s.Env)
			}
			end := len(usage)
			if s.Group < Tuning {
				end = titles[s.Group+1]
			}
			if at < titles[s.Group] || at > end {
				t.Errorf("%s: %s is not under %q", arg, s.Env, s.Group.Title())
			}
		}
	}
}

func TestWrap(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("word ", 40)
	for _, line := range strings.Split(strings.TrimSuffix(wrap(long, "      ", "      "), "\n"), "\n") {
		if len(line) > usageWidth || !strings.HasPrefix(line, "      word") {
			t.Fatalf("line %q", line)
		}
	}
	if got := wrap(strings.Repeat("x", 100), "  ", "  "); got != "  "+strings.Repeat("x", 100)+"\n" {
		t.Fatalf("a long word is broken: %q", got)
	}
}

func TestFormatDefault(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ got, want string }{
		{format(365 * 24 * time.Hour), "8760h"},
		{format(10 * time.Minute), "10m"},
		{format(90 * time.Second), "1m30s"},
		{format(25 * time.Millisecond), "25ms"},
		{format(2_000_000), "2000000"},
		{format(0.5), "0.5"},
		{format(true), "true"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// TestModelList: PARLEY_MODELS is read as names, trimmed and each once,
// and a base URL needs no key (Ollama, vLLM and llama.cpp take none).
func TestModelList(t *testing.T) {
	t.Parallel()
	c, err := Parse(nil, env(map[string]string{
		"PARLEY_MODELS":   " gpt-4o-mini , ,o3,gpt-4o-mini",
		"OPENAI_BASE_URL": "http://localhost:11434/v1",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ModelList(); !slices.Equal(got, []string{"gpt-4o-mini", "o3"}) {
		t.Errorf("ModelList = %q, want gpt-4o-mini, o3", got)
	}
	c, err = Parse([]string{"-models", "llama3"}, env(map[string]string{"PARLEY_MODELS": "o3"}), io.Discard)
	if err != nil || !slices.Equal(c.ModelList(), []string{"llama3"}) {
		t.Errorf("-models llama3 over PARLEY_MODELS=o3: %q, %v", c.ModelList(), err)
	}
	if c, err := Parse(nil, env(nil), io.Discard); err != nil || c.ModelList() != nil {
		t.Errorf("unset: ModelList = %q, %v; want none", c.ModelList(), err)
	}
}

// TestPort: PORT, as hosting platforms set it, is the listen address's port
// unless PARLEY_ADDR or -addr says otherwise; a PORT that is not a port
// stops the start with its name.
func TestPort(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"PORT": "3000"}, nil, ":3000"},
		{map[string]string{"PORT": "3000", "PARLEY_ADDR": "127.0.0.1:9000"}, nil, "127.0.0.1:9000"},
		{map[string]string{"PORT": "3000"}, []string{"-addr", "localhost:7000"}, "localhost:7000"},
		{nil, nil, "localhost:8080"},
	} {
		cfg, err := Parse(tc.args, env(tc.env), io.Discard)
		if err != nil {
			t.Fatalf("%v %v: %v", tc.env, tc.args, err)
		}
		if cfg.Addr != tc.want || cfg.AddrFromPort != (tc.want == ":3000") {
			t.Errorf("%v %v: addr %q (from PORT %v), want %q", tc.env, tc.args, cfg.Addr, cfg.AddrFromPort, tc.want)
		}
	}
	for _, bad := range []string{"http", "0", "70000"} {
		if _, err := Parse(nil, env(map[string]string{"PORT": bad}), io.Discard); err == nil || !strings.Contains(err.Error(), "PORT=") {
			t.Errorf("PORT=%s: err %v, want one naming PORT", bad, err)
		}
	}
	// A PORT that -addr makes irrelevant is not checked.
	if _, err := Parse([]string{"-addr", "localhost:7000"}, env(map[string]string{"PORT": "http"}), io.Discard); err != nil {
		t.Errorf("PORT=http with -addr: %v", err)
	}
}
