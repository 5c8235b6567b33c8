package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testKey = "sk-test-SECRET-0123456789"

// chunk renders one streamed chat-completion chunk as an SSE event.
func chunk(content string) string {
	b, err := json.Marshal(map[string]any{
		"id":      "chatcmpl-1",
		"object":  "chat.completion.chunk",
		"created": 1700000000,
		"model":   "test-model",
		"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": content}, "finish_reason": nil}},
	})
	if err != nil {
		panic(err)
	}
	return "data: " + string(b) + "\n\n"
}

// sse starts writing an event stream and returns a function that sends raw
// event text and flushes it.
func sse(w http.ResponseWriter) func(string) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	f := w.(http.Flusher)
	f.Flush()
	return func(s string) {
		_, _ = io.WriteString(w, s)
		f.Flush()
	}
}

// newTestModel starts handler as a provider and returns a model using it.
func newTestModel(t *testing.T, handler http.HandlerFunc, idle time.Duration) *OpenAI {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	m, err := NewOpenAI(OpenAIConfig{
		APIKey:      testKey,
		BaseURL:     srv.URL + "/v1",
		Model:       "test-model",
		IdleTimeout: idle,
		HTTPClient:  srv.Client(),
	})
	if err != nil {
		t.Fatalf("NewOpenAI: %v", err)
	}
	return m
}

func TestNewOpenAIConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     OpenAIConfig
		wantErr bool
	}{
		{"minimal", OpenAIConfig{Model: "gpt-4o-mini"}, false},
		{"local server without key", OpenAIConfig{Model: "llama3", BaseURL: "http://localhost:11434/v1"}, false},
		{"no model", OpenAIConfig{APIKey: "k"}, true},
		{"relative base URL", OpenAIConfig{Model: "m", BaseURL: "localhost:11434"}, true},
		{"bad scheme", OpenAIConfig{Model: "m", BaseURL: "ftp://example.com/v1"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewOpenAI(tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewOpenAI error = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && m.Name() != tt.cfg.Model {
				t.Errorf("Name() = %q, want %q", m.Name(), tt.cfg.Model)
			}
			if err == nil && m.idle != 60*time.Second {
				t.Errorf("default idle timeout = %v, want 60s", m.idle)
			}
		})
	}
}

func TestOpenAIStream(t *testing.T) {
	t.Parallel()
	var got struct {
		path, auth string
		body       struct {
			Model    string `json:"model"`
			Stream   bool   `json:"stream"`
			Messages []struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			} `json:"messages"`
		}
	}
	m := newTestModel(t, func(w http.ResponseWriter, r *http.Request) {
		got.path, got.auth = r.URL.Path, r.Header.Get("Authorization")
		if err := json.NewDecoder(r.Body).Decode(&got.body); err != nil {
			t.Errorf("decoding request: %v", err)
		}
		send := sse(w)
		send(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"test-model","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n")
		for _, p := range []string{"Hel", "lo, ", "wor", "ld!\n\n", "```go\nx\n```"} {
			send(chunk(p))
		}
		send(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"test-model","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n")
		send("data: [DONE]\n\n")
	}, time.Second)

	msgs := []Message{
		{Role: RoleSystem, Content: "Be brief."},
		{Role: RoleUser, Content: "Hi"},
		{Role: RoleAssistant, Content: "Hello."},
		{Role: RoleUser, Content: "Say hello world"},
	}
	pieces, err := collect(t.Context(), m, msgs)
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	want := []string{"Hel", "lo, ", "wor", "ld!\n\n", "```go\nx\n```"}
	if strings.Join(pieces, "|") != strings.Join(want, "|") {
		t.Errorf("pieces = %q, want %q", pieces, want)
	}
	if got.path != "/v1/chat/completions" {
		t.Errorf("path = %q", got.path)
	}
	if got.auth != "Bearer "+testKey {
		t.Errorf("Authorization = %q", got.auth)
	}
	if got.body.Model != "test-model" || !got.body.Stream {
		t.Errorf("model = %q, stream = %v", got.body.Model, got.body.Stream)
	}
	if len(got.body.Messages) != len(msgs) {
		t.Fatalf("sent %d messages, want %d", len(got.body.Messages), len(msgs))
	}
	for i, msg := range msgs {
		if g := got.body.Messages[i]; g.Role != string(msg.Role) || g.Content != msg.Content {
			t.Errorf("message %d = %+v, want %+v", i, g, msg)
		}
	}
}

// TestOpenAIErrors covers the mapping of provider failures to *Error.
func TestOpenAIErrors(t *testing.T) {
	t.Parallel()
	longMsg := "The model `gpt-9` does not exist " + strings.Repeat("or you do not have access to it ", 20)
	tests := []struct {
		name        string
		handler     http.HandlerFunc
		kind        ErrorKind
		retryAfter  time.Duration
		msgContains string
		wantPieces  []string
	}{
		{
			name: "error event mid-stream",
			handler: func(w http.ResponseWriter, r *http.Request) {
				send := sse(w)
				send(chunk("Hel"))
				send(chunk("lo"))
				send(`data: {"error":{"message":"boom","type":"server_error"}}` + "\n\n")
			},
			kind: Failed, msgContains: "boom", wantPieces: []string{"Hel", "lo"},
		},
		{
			name: "connection dropped mid-stream",
			handler: func(w http.ResponseWriter, r *http.Request) {
				send := sse(w)
				send(chunk("Hel"))
				send(chunk("lo"))
				panic(http.ErrAbortHandler) // closes the connection without ending the body
			},
			kind: Unavailable, msgContains: "lost the connection", wantPieces: []string{"Hel", "lo"},
		},
		{
			name: "malformed chunk",
			handler: func(w http.ResponseWriter, r *http.Request) {
				send := sse(w)
				send(chunk("Hel"))
				send("data: {\"choices\": [oops\n\n")
			},
			kind: Failed, msgContains: "malformed", wantPieces: []string{"Hel"},
		},
		{
			name: "not an event stream",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"id":"x","choices":[]}`)
			},
			kind: Failed, msgContains: "empty reply",
		},
		{
			name: "rate limited",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "7")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusTooManyRequests)
				_, _ = io.WriteString(w, `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`)
			},
			kind: RateLimited, retryAfter: 7 * time.Second, msgContains: "try again in 7s",
		},
		{
			name: "rate limited without body or header",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusTooManyRequests)
			},
			kind: RateLimited, msgContains: "rate limiting",
		},
		{
			name: "bad key",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = fmt.Fprintf(w, `{"error":{"message":"Incorrect API key provided: %s.","type":"invalid_request_error","code":"invalid_api_key"}}`, testKey)
			},
			kind: Auth, msgContains: "API key",
		},
		{
			name: "forbidden",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusForbidden)
			},
			kind: Auth, msgContains: "API key",
		},
		{
			name: "unknown model",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": longMsg, "type": "invalid_request_error"}})
				_, _ = w.Write(b)
			},
			kind: BadRequest, msgContains: "The model `gpt-9` does not exist",
		},
		{
			name: "bad request echoing the key",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = fmt.Fprintf(w, `{"error":{"message":"bad header %s","type":"invalid_request_error"}}`, testKey)
			},
			kind: BadRequest, msgContains: "bad header [redacted]",
		},
		{
			name: "unprocessable",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusUnprocessableEntity)
				_, _ = io.WriteString(w, "nope")
			},
			kind: BadRequest, msgContains: "HTTP 422",
		},
		{
			name: "server error",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = io.WriteString(w, `{"error":{"message":"internal","type":"server_error"}}`)
			},
			kind: Unavailable, msgContains: "HTTP 500",
		},
		{
			name: "plain-text bad gateway",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusBadGateway)
				_, _ = io.WriteString(w, "<html>502 Bad Gateway</html>")
			},
			kind: Unavailable, msgContains: "HTTP 502",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var requests atomic.Int32
			m := newTestModel(t, func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				tt.handler(w, r)
			}, 5*time.Second)
			pieces, err := collect(t.Context(), m, userMsgs("hi"))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Stream = %v (%T), want *Error", err, err)
			}
			if e.Kind != tt.kind {
				t.Errorf("Kind = %q, want %q (error: %v)", e.Kind, tt.kind, e)
			}
			if e.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, tt.retryAfter)
			}
			if !strings.Contains(e.Message, tt.msgContains) {
				t.Errorf("Message = %q, want it to contain %q", e.Message, tt.msgContains)
			}
			if n := len([]rune(e.Message)); n > 300 {
				t.Errorf("Message is %d characters long, want a short one", n)
			}
			if strings.Contains(e.Message, testKey) || strings.Contains(e.Error(), testKey) {
				t.Errorf("error leaks the API key: %v", e)
			}
			if e.Err == nil {
				t.Errorf("Err is nil, want the underlying error for logs")
			}
			if strings.Join(pieces, "|") != strings.Join(tt.wantPieces, "|") {
				t.Errorf("pieces = %q, want %q", pieces, tt.wantPieces)
			}
			if n := requests.Load(); n != 1 {
				t.Errorf("provider got %d requests, want 1 (no silent retries)", n)
			}
		})
	}
}

func TestOpenAIUnreachable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	m, err := NewOpenAI(OpenAIConfig{BaseURL: url, Model: "m", APIKey: testKey, IdleTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = collect(t.Context(), m, userMsgs("hi"))
	var e *Error
	if !errors.As(err, &e) || e.Kind != Unavailable {
		t.Fatalf("Stream = %v, want *Error of kind Unavailable", err)
	}
}

// TestOpenAIIdleTimeout runs alone (not in parallel): it counts the
// process's goroutines.
func TestOpenAIIdleTimeout(t *testing.T) {
	tests := []struct {
		name       string
		firstChunk bool
		wantPieces []string
	}{
		{"after the first chunk", true, []string{"Hel"}},
		{"before any chunk", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.firstChunk {
					sse(w)(chunk("Hel"))
				}
				select { // hang like a stuck provider
				case <-release:
				case <-r.Context().Done():
				}
			}))
			unblock := sync.OnceFunc(func() { close(release) })
			// Cleanups run last-registered first: unblock the handler, then close,
			// so a failing test does not hang in srv.Close.
			t.Cleanup(srv.Close)
			t.Cleanup(unblock)
			m, err := NewOpenAI(OpenAIConfig{BaseURL: srv.URL, Model: "m", IdleTimeout: 300 * time.Millisecond, HTTPClient: srv.Client()})
			if err != nil {
				t.Fatal(err)
			}

			// The deadline only stops a broken watchdog from hanging the test.
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			start := time.Now()
			pieces, err := collect(ctx, m, userMsgs("hi"))
			elapsed := time.Since(start)
			var e *Error
			if !errors.As(err, &e) || e.Kind != Timeout {
				t.Fatalf("Stream = %v, want *Error of kind Timeout", err)
			}
			if e.Message != "the model stopped responding for 300ms" {
				t.Errorf("Message = %q", e.Message)
			}
			if elapsed > 3*time.Second {
				t.Errorf("Stream returned after %v, want about 300ms", elapsed)
			}
			if strings.Join(pieces, "|") != strings.Join(tt.wantPieces, "|") {
				t.Errorf("pieces = %q, want %q", pieces, tt.wantPieces)
			}

			unblock()
			srv.Close()
			waitGoroutines(t, before)
		})
	}
}

// waitGoroutines fails the test if the number of goroutines does not come back
// to at most want within a few seconds.
func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= want {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines left, want at most %d:\n%s", n, want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOpenAICancel(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	m := newTestModel(t, func(w http.ResponseWriter, r *http.Request) {
		sse(w)(chunk("Hel"))
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, 10*time.Second)
	t.Cleanup(func() { close(release) })

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var pieces []string
	start := time.Now()
	_, err := m.Stream(ctx, Request{Messages: userMsgs("hi")}, func(s string) error {
		pieces = append(pieces, s)
		time.AfterFunc(50*time.Millisecond, cancel)
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Stream = %v, want context.Canceled", err)
	}
	var e *Error
	if errors.As(err, &e) {
		t.Errorf("Stream returned *Error %v on cancel, want a context error", e)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("Stream returned %v after start, want promptly after cancel", elapsed)
	}
	if len(pieces) != 1 {
		t.Errorf("pieces = %q, want the first chunk", pieces)
	}
}

func TestOpenAIEmitError(t *testing.T) {
	t.Parallel()
	m := newTestModel(t, func(w http.ResponseWriter, r *http.Request) {
		send := sse(w)
		for range 5 {
			send(chunk("x"))
		}
		send("data: [DONE]\n\n")
	}, 5*time.Second)
	stop := errors.New("browser went away")
	calls := 0
	_, err := m.Stream(t.Context(), Request{Messages: userMsgs("hi")}, func(string) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Stream = %v, want the emit error", err)
	}
	if calls != 1 {
		t.Errorf("emit called %d times, want 1", calls)
	}
}

func TestOpenAIUnknownRole(t *testing.T) {
	t.Parallel()
	m := newTestModel(t, func(w http.ResponseWriter, r *http.Request) {
		t.Error("request sent despite an invalid message")
	}, time.Second)
	_, err := collect(t.Context(), m, []Message{{Role: "tool", Content: "x"}})
	var e *Error
	if !errors.As(err, &e) || e.Kind != BadRequest {
		t.Fatalf("Stream = %v, want *Error of kind BadRequest", err)
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
	}{
		{"seconds", map[string]string{"Retry-After": "20"}, 20 * time.Second},
		{"http date", map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, 90 * time.Second},
		{"date in the past", map[string]string{"Retry-After": now.Add(-time.Minute).Format(http.TimeFormat)}, 0},
		{"milliseconds", map[string]string{"Retry-After-Ms": "1500"}, 1500 * time.Millisecond},
		{"garbage", map[string]string{"Retry-After": "soon"}, 0},
		{"negative", map[string]string{"Retry-After": "-3"}, 0},
		{"none", nil, 0},
	}
	for _, tt := range tests {
		h := http.Header{}
		for k, v := range tt.header {
			h.Set(k, v)
		}
		if got := retryAfter(h, now); got != tt.want {
			t.Errorf("%s: retryAfter = %v, want %v", tt.name, got, tt.want)
		}
	}
}
