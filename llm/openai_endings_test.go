package llm

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/openaitest"
)

// newServed starts an OpenAI-compatible test server and a model using it
// with key (none when empty).
func newServed(t *testing.T, key string) (*openaitest.Server, *OpenAI) {
	t.Helper()
	srv := openaitest.New(t)
	m, err := NewOpenAI(OpenAIConfig{APIKey: key, BaseURL: srv.URL, Model: openaitest.DefaultModel, IdleTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("NewOpenAI: %v", err)
	}
	return srv, m
}

// TestOpenAIEndings checks that every way a stream can end is told apart:
// a whole answer, one cut at the length limit, and the truncations that
// must never pass for whole answers.
func TestOpenAIEndings(t *testing.T) {
	t.Parallel()
	pieces := []string{"Hel", "lo, ", "world"}
	tests := []struct {
		name       string
		reply      openaitest.Reply
		finish     Finish
		kind       ErrorKind // "" when the reply is complete
		msg        string
		retryable  bool
		wantPieces []string
	}{
		{name: "stop", reply: openaitest.Reply{Text: pieces}, finish: FinishStop, wantPieces: pieces},
		{name: "length", reply: openaitest.Reply{Text: pieces, Finish: "length"}, finish: FinishLength, wantPieces: pieces},
		{name: "other finish reason", reply: openaitest.Reply{Text: pieces, Finish: "tool_calls"}, finish: FinishStop, wantPieces: pieces},
		{name: "no finish reason", reply: openaitest.Reply{Text: pieces, Finish: "-"},
			kind: CutOff, msg: "the model's answer was cut off", wantPieces: pieces},
		{name: "no [DONE]", reply: openaitest.Reply{Text: pieces, NoDone: true},
			kind: CutOff, msg: "the model's answer was cut off", wantPieces: pieces},
		{name: "length without [DONE]", reply: openaitest.Reply{Text: pieces, Finish: "length", NoDone: true},
			kind: CutOff, msg: "the model's answer was cut off", wantPieces: pieces},
		{name: "neither", reply: openaitest.Reply{Text: pieces, Finish: "-", NoDone: true},
			kind: CutOff, msg: "the model's answer was cut off", wantPieces: pieces},
		{name: "cut mid-stream", reply: openaitest.Reply{Text: pieces, CutAfter: 2},
			kind: Unavailable, msg: "lost the connection to the model provider", wantPieces: pieces[:2]},
		{name: "content filter", reply: openaitest.Reply{Text: pieces, Finish: "content_filter"},
			kind: Failed, msg: "the provider's content filter stopped the answer", wantPieces: pieces},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, m := newServed(t, "")
			srv.Queue(tt.reply)
			got, finish, err := collectReq(t.Context(), m, Request{Messages: userMsgs("hi")})
			if strings.Join(got, "|") != strings.Join(tt.wantPieces, "|") {
				t.Errorf("pieces = %q, want %q", got, tt.wantPieces)
			}
			if tt.kind == "" {
				if err != nil || finish != tt.finish {
					t.Fatalf("Stream = %q, %v; want %q, nil", finish, err, tt.finish)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Stream = %q, %v; want an *Error of kind %s", finish, err, tt.kind)
			}
			if e.Kind != tt.kind || e.Message != tt.msg || finish != "" {
				t.Errorf("Stream = %q, %+v; want kind %s, message %q", finish, e, tt.kind, tt.msg)
			}
			if e.Retryable() != tt.retryable {
				t.Errorf("Retryable() = %v, want %v", e.Retryable(), tt.retryable)
			}
		})
	}
}

// TestOpenAIProviderErrors checks the failures a provider answers with:
// what the page says, what the logs get, and whether to try again.
func TestOpenAIProviderErrors(t *testing.T) {
	t.Parallel()
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		reply      openaitest.Reply
		kind       ErrorKind
		msg        string // the page's message starts so
		inErr      string // the log's error contains it
		retryable  bool
		retryAfter [2]time.Duration // bounds on RetryAfter
	}{
		{name: "rate limited, seconds", reply: openaitest.Reply{Status: 429, Message: "Rate limit reached for requests", RetryAfter: "7"},
			kind: RateLimited, msg: "the model provider is rate limiting us; try again in 7s", inErr: "Rate limit reached for requests",
			retryable: true, retryAfter: [2]time.Duration{7 * time.Second, 7 * time.Second}},
		{name: "rate limited, date", reply: openaitest.Reply{Status: 429, RetryAfter: date},
			kind: RateLimited, msg: "the model provider is rate limiting us; try again in", inErr: "429",
			retryable: true, retryAfter: [2]time.Duration{80 * time.Second, 91 * time.Second}},
		{name: "server error", reply: openaitest.Reply{Status: 500, Message: "The server had an error while processing your request."},
			kind: Unavailable, msg: "the model provider is unavailable (HTTP 500)", inErr: "The server had an error", retryable: true},
		{name: "overloaded", reply: openaitest.Reply{Status: 503, Message: "The engine is currently overloaded"},
			kind: Unavailable, msg: "the model provider is unavailable (HTTP 503)", inErr: "currently overloaded", retryable: true},
		{name: "overloaded, saying when to come back", reply: openaitest.Reply{Status: 503, Message: "Slow down", RetryAfter: "4"},
			kind: Unavailable, msg: "the model provider is unavailable (HTTP 503)", inErr: "Slow down", retryable: true,
			retryAfter: [2]time.Duration{4 * time.Second, 4 * time.Second}},
		{name: "bad request", reply: openaitest.Reply{Status: 400, Message: "This model's maximum context length is 128000 tokens."},
			kind: BadRequest, msg: "the model provider rejected the request: This model's maximum context length", inErr: "maximum context length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, m := newServed(t, "")
			srv.Queue(tt.reply)
			got, _, err := collectReq(t.Context(), m, Request{Messages: userMsgs("hi")})
			var e *Error
			if !errors.As(err, &e) || e.Kind != tt.kind {
				t.Fatalf("Stream = %v, want an *Error of kind %s", err, tt.kind)
			}
			if !strings.HasPrefix(e.Message, tt.msg) {
				t.Errorf("Message = %q, want it to start %q", e.Message, tt.msg)
			}
			if !strings.Contains(e.Error(), tt.inErr) {
				t.Errorf("Error() = %q, want the provider's %q in it", e.Error(), tt.inErr)
			}
			if e.Retryable() != tt.retryable {
				t.Errorf("Retryable() = %v, want %v", e.Retryable(), tt.retryable)
			}
			if e.RetryAfter < tt.retryAfter[0] || e.RetryAfter > tt.retryAfter[1] {
				t.Errorf("RetryAfter = %v, want within %v", e.RetryAfter, tt.retryAfter)
			}
			if len(got) != 0 {
				t.Errorf("pieces = %q, want none", got)
			}
			if n := len(srv.Requests()); n != 1 {
				t.Errorf("provider got %d requests, want 1 (no silent retries)", n)
			}
		})
	}
}

// TestOpenAIAuth checks that a rejected key shows a plain message in the
// page and the provider's own words, with the key masked, in the logs.
func TestOpenAIAuth(t *testing.T) {
	t.Parallel()
	const wrong = "sk-proj-WRONGkey0123456789abcdefXYZ"
	srv, m := newServed(t, wrong)
	srv.RequireKey("sk-proj-the-right-one")
	for _, call := range []struct {
		name string
		do   func() error
	}{
		{"stream", func() error { _, _, err := collectReq(t.Context(), m, Request{Messages: userMsgs("hi")}); return err }},
		{"models", func() error { _, err := m.Models(t.Context()); return err }},
	} {
		err := call.do()
		var e *Error
		if !errors.As(err, &e) || e.Kind != Auth {
			t.Fatalf("%s = %v, want an *Error of kind Auth", call.name, err)
		}
		if e.Message != "the model provider rejected our API key" {
			t.Errorf("%s: Message = %q", call.name, e.Message)
		}
		logged := e.Error()
		if !strings.Contains(logged, "Incorrect API key provided: sk-[redacted]") {
			t.Errorf("%s: Error() = %q, want the provider's message, masked", call.name, logged)
		}
		for _, leak := range []string{wrong, "sk-proj-", "XYZ."} {
			if strings.Contains(logged, leak) || strings.Contains(e.Message, leak) {
				t.Errorf("%s: error shows %q: %q", call.name, leak, logged)
			}
		}
		if e.Retryable() || !ProviderFault(err) {
			t.Errorf("%s: Retryable() = %v, ProviderFault = %v; want false, true", call.name, e.Retryable(), ProviderFault(err))
		}
	}
}

// TestOpenAIRefused checks that a provider that is down is retryable and
// counts as a provider fault, for answers and for the model list.
func TestOpenAIRefused(t *testing.T) {
	t.Parallel()
	srv, m := newServed(t, "")
	srv.Close()
	_, _, err := collectReq(t.Context(), m, Request{Messages: userMsgs("hi")})
	var e *Error
	if !errors.As(err, &e) || e.Kind != Unavailable || e.Message != "could not reach the model provider" {
		t.Fatalf("Stream = %v, want Unavailable: could not reach the model provider", err)
	}
	if !e.Retryable() || !ProviderFault(err) {
		t.Errorf("Retryable() = %v, ProviderFault = %v; want true, true", e.Retryable(), ProviderFault(err))
	}
	if _, err := m.Models(t.Context()); !errors.As(err, &e) || e.Kind != Unavailable {
		t.Errorf("Models = %v, want Unavailable", err)
	}
}

// TestOpenAIKeyHeader checks that a key is sent as a bearer token, and
// that without one (Ollama, vLLM, llama.cpp) no Authorization is sent at all.
func TestOpenAIKeyHeader(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "sk-from-env") // must not be picked up
	for _, key := range []string{"", "sk-configured-0123456789"} {
		srv, m := newServed(t, key)
		if _, _, err := collectReq(t.Context(), m, Request{Messages: userMsgs("hi")}); err != nil {
			t.Fatalf("Stream with key %q: %v", key, err)
		}
		if _, err := m.Models(t.Context()); err != nil {
			t.Fatalf("Models with key %q: %v", key, err)
		}
		want := ""
		if key != "" {
			want = "Bearer " + key
		}
		if got := srv.Requests()[0].Header.Get("Authorization"); got != want {
			t.Errorf("key %q: Authorization = %q, want %q", key, got, want)
		}
	}
}

// TestOpenAIRequestModel checks that a Request's model is the one asked
// for, the default when it names none, and that an unknown one is the
// provider's bad request.
func TestOpenAIRequestModel(t *testing.T) {
	t.Parallel()
	srv, m := newServed(t, "")
	srv.SetModels(openaitest.DefaultModel, "big-model")
	for _, model := range []string{"big-model", ""} {
		if _, _, err := collectReq(t.Context(), m, Request{Model: model, Messages: userMsgs("hi")}); err != nil {
			t.Fatalf("Stream with model %q: %v", model, err)
		}
	}
	reqs := srv.Requests()
	if len(reqs) != 2 || reqs[0].Model != "big-model" || reqs[1].Model != openaitest.DefaultModel {
		t.Fatalf("requests = %+v, want big-model then %s", reqs, openaitest.DefaultModel)
	}
	if got := reqs[0].Messages; len(got) != 2 || got[1] != (openaitest.Message{Role: "user", Content: "hi"}) {
		t.Errorf("messages = %+v", got)
	}
	_, _, err := collectReq(t.Context(), m, Request{Model: "gpt-9", Messages: userMsgs("hi")})
	var e *Error
	if !errors.As(err, &e) || e.Kind != BadRequest || !strings.Contains(e.Message, "The model `gpt-9` does not exist") {
		t.Fatalf("Stream with an unknown model = %v, want BadRequest naming it", err)
	}
	if e.Retryable() || ProviderFault(err) {
		t.Errorf("Retryable() = %v, ProviderFault = %v; want false, false", e.Retryable(), ProviderFault(err))
	}
}

func TestOpenAIModels(t *testing.T) {
	t.Parallel()
	srv, m := newServed(t, "")
	srv.SetModels("gpt-4o-mini", "gpt-4o", "o3", "gpt-4o")
	got, err := m.Models(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := "gpt-4o gpt-4o-mini o3"; strings.Join(got, " ") != want {
		t.Errorf("Models = %q, want %q (sorted, once each)", got, want)
	}
	srv.SetModels()
	if got, err := m.Models(t.Context()); err != nil || len(got) != 0 {
		t.Errorf("Models of an empty list = %q, %v; want none", got, err)
	}
	srv.ModelsReply(openaitest.Reply{Status: 502})
	var e *Error
	if _, err := m.Models(t.Context()); !errors.As(err, &e) || e.Kind != Unavailable {
		t.Errorf("Models on 502 = %v, want Unavailable", err)
	}
}

func TestProviderFault(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		down bool
	}{
		{nil, false},
		{errors.New("browser went away"), false},
		{&Error{Kind: Auth}, true},
		{&Error{Kind: Unavailable}, true},
		{&Error{Kind: Timeout}, true},
		{&Error{Kind: RateLimited}, false},
		{&Error{Kind: BadRequest}, false},
		{&Error{Kind: CutOff}, false},
		{&Error{Kind: Failed}, false},
		{errors.Join(errors.New("wrapped"), &Error{Kind: Unavailable}), true},
	}
	for _, tt := range tests {
		if got := ProviderFault(tt.err); got != tt.down {
			t.Errorf("ProviderFault(%v) = %v, want %v", tt.err, got, tt.down)
		}
	}
}

func TestMaskSecrets(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"Incorrect API key provided: sk-proj-abcd********wxyz. See https://platform.openai.com/account/api-keys.",
			"Incorrect API key provided: sk-[redacted]. See https://platform.openai.com/account/api-keys."},
		{"token gsk_0123456789abcdefABCDEFxyz rejected", "token [redacted] rejected"},
		{"The model `gpt-4o-mini` does not exist", "The model `gpt-4o-mini` does not exist"},
		{"internationalization-considerations everywhere", "internationalization-considerations everywhere"},
		{"sk- alone", "sk- alone"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := maskSecrets(tt.in); got != tt.want {
			t.Errorf("maskSecrets(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
