package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/config"
	"github.com/parley-chat/parley/internal/openaitest"
	"github.com/parley-chat/parley/llm"
)

// TestCheckModel: the start's question to the provider logs what an
// operator must fix, in plain words, sets the provider's health, and never
// stops the process.
func TestCheckModel(t *testing.T) {
	t.Parallel()
	const key = "sk-proj-operator-0123456789abcdef"
	tests := []struct {
		name    string
		setup   func(*openaitest.Server)
		key     string
		up      bool
		level   string
		logLine string
	}{
		{"answers", func(s *openaitest.Server) { s.SetModels("a", "b", "c") }, key, true, "INFO", `msg="model provider answers"`},
		{"wrong key", func(s *openaitest.Server) { s.RequireKey("sk-proj-another-key-0000000000") }, key, false, "ERROR",
			"the model provider rejected OPENAI_API_KEY: openai models: OpenAI API error: 401 Unauthorized: Incorrect API key provided: sk-[redacted]."},
		{"no key", func(s *openaitest.Server) { s.RequireKey(key) }, "", false, "ERROR",
			"the model provider wants an API key, and OPENAI_API_KEY is not set: openai models: OpenAI API error: 401 Unauthorized: You didn't provide an API key."},
		{"down", func(s *openaitest.Server) { s.Close() }, key, false, "ERROR", "does not answer: llm unavailable: could not reach the model provider"},
		{"server error", func(s *openaitest.Server) { s.ModelsReply(openaitest.Reply{Status: 502}) }, key, false, "ERROR", "does not answer"},
		{"no list", func(s *openaitest.Server) { s.ModelsReply(openaitest.Reply{Status: 404}) }, key, true, "WARN", "the model provider did not list its models"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := openaitest.New(t)
			tt.setup(srv)
			cfg := config.Config{OpenAIKey: tt.key, OpenAIBaseURL: srv.URL, ModelIdleTimeout: time.Minute}
			m, err := newModel(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			var got []bool
			models := llm.NewCatalog(m, nil, time.Hour)
			checkModel(t.Context(), m, models, cfg, slog.New(slog.NewTextHandler(&logs, nil)), func(up bool) { got = append(got, up) })
			if len(got) != 1 || got[0] != tt.up {
				t.Errorf("provider up = %v, want [%v]", got, tt.up)
			}
			out := logs.String()
			if !strings.Contains(out, "level="+tt.level) || !strings.Contains(out, tt.logLine) || !strings.Contains(out, "url="+srv.URL) {
				t.Errorf("log = %s\nwant level %s with %q and the URL", out, tt.level, tt.logLine)
			}
			if strings.Contains(out, key) || strings.Contains(out, "operator") {
				t.Errorf("log shows the key: %s", out)
			}
			if tt.name != "answers" {
				return
			}
			if !strings.Contains(out, "offered=4") {
				t.Errorf("log = %s, want the count of models offered (the default and a, b, c)", out)
			}
			// The check filled the catalog: the first page does not ask again.
			if got := models.List(t.Context()); len(got) != 4 {
				t.Errorf("List after the check = %q, want 4 models", got)
			}
			if n := srv.ModelsRequests(); n != 1 {
				t.Errorf("the check and the first page asked the provider %d times, want once", n)
			}
		})
	}
}

// TestCheckModelOffline: the demo and clock models are always up, and
// nothing is asked or logged.
func TestCheckModelOffline(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"demo", "clock"} {
		m, err := newModel(config.Config{Model: name})
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		var got []bool
		checkModel(t.Context(), m, llm.NewCatalog(m, nil, time.Hour), config.Config{}, slog.New(slog.NewTextHandler(&logs, nil)), func(up bool) { got = append(got, up) })
		if len(got) != 1 || !got[0] || logs.Len() != 0 {
			t.Errorf("%s: up = %v, logs %q; want [true] and nothing logged", name, got, logs.String())
		}
	}
}

// TestEmbeddedRedisExpiresKeys: the embedded Redis ages keys with the wall
// clock, so rate-limit windows, leases and conversations expire as on a real
// Redis.
func TestEmbeddedRedisExpiresKeys(t *testing.T) {
	t.Parallel()
	rdb, closeRedis, err := connectRedis(config.Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer closeRedis()
	ctx := t.Context()
	if err := rdb.Set(ctx, "window", "1", 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Exists(ctx, "window").Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("a key set to expire in 300 ms was still there after 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
