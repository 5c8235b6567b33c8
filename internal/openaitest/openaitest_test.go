package openaitest

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// post sends a chat request body and returns the response and its body.
func post(t *testing.T, s *Server, body, key string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+"/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestWireFormat checks the stream byte for byte against OpenAI's (with
// the created time made fixed).
func TestWireFormat(t *testing.T) {
	t.Parallel()
	s := New(t)
	s.Queue(Reply{Text: []string{"Hi", " there"}, Finish: "length"})
	resp, body := post(t, s, `{"model":"test-model","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello there"}]}`, "")
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	body = regexp.MustCompile(`"created":\d+`).ReplaceAllString(body, `"created":1`)
	head := `"id":"chatcmpl-test1","object":"chat.completion.chunk","created":1,"model":"test-model","system_fingerprint":"fp_openaitest"`
	want := `data: {` + head + `,"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}

data: {` + head + `,"choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}],"usage":null}

data: {` + head + `,"choices":[{"index":0,"delta":{"content":" there"},"logprobs":null,"finish_reason":null}],"usage":null}

data: {` + head + `,"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"length"}],"usage":null}

data: {` + head + `,"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}

data: [DONE]

`
	if body != want {
		t.Errorf("stream =\n%s\nwant\n%s", body, want)
	}
	got := s.Requests()
	if len(got) != 1 || got[0].Model != "test-model" || !got[0].Stream || len(got[0].Messages) != 1 ||
		got[0].Messages[0] != (Message{Role: "user", Content: "hello there"}) {
		t.Errorf("Requests = %+v", got)
	}
}

func TestDefaultReplyAndEndings(t *testing.T) {
	t.Parallel()
	s := New(t)
	s.Queue(Reply{Finish: "-", NoDone: true}, Reply{CutAfter: 2})
	const req = `{"model":"test-model","stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}`
	_, body := post(t, s, req, "")
	if strings.Contains(body, "finish_reason\":\"") || strings.Contains(body, "[DONE]") || strings.Count(body, "data: ") != 6 {
		t.Errorf("Finish - and NoDone: stream = %s", body)
	}
	_, body = post(t, s, req, "")
	if strings.Count(body, "data: ") != 3 || strings.Contains(body, "[DONE]") {
		t.Errorf("CutAfter 2: stream = %s", body)
	}
	_, body = post(t, s, req, "")
	var text strings.Builder
	for line := range strings.Lines(body) {
		var c chunk
		if data, ok := strings.CutPrefix(strings.TrimSpace(line), "data: "); ok && json.Unmarshal([]byte(data), &c) == nil {
			if d := c.Choices[0].Delta.Content; d != nil {
				text.WriteString(*d)
			}
		}
	}
	if text.String() != DefaultAnswer || !strings.HasSuffix(body, "\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n") {
		t.Errorf("default reply: text %q, stream %s", text.String(), body)
	}
	if got := s.Requests()[0].Messages[0].Content; got != "ab" {
		t.Errorf("content parts read as %q, want ab", got)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	s := New(t)
	s.SetModels("m1", "m2")
	s.Queue(Reply{Status: 429, Message: "Rate limit reached", RetryAfter: "3"})
	resp, body := post(t, s, `{"model":"m1","stream":true,"messages":[]}`, "")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" ||
		body != `{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}`+"\n" {
		t.Errorf("429: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	resp, body = post(t, s, `{"model":"test-model","stream":true,"messages":[]}`, "")
	if resp.StatusCode != 404 || !strings.Contains(body, "The model `test-model` does not exist") {
		t.Errorf("unknown model: %d %s", resp.StatusCode, body)
	}

	s.RequireKey("sk-right-key-0123456789")
	resp, body = post(t, s, `{"model":"m1","stream":true,"messages":[]}`, "sk-wrong-key-0123456789")
	if resp.StatusCode != 401 || !strings.Contains(body, "Incorrect API key provided: sk-wrong***********6789.") || !strings.Contains(body, `"code":"invalid_api_key"`) {
		t.Errorf("wrong key: %d %s", resp.StatusCode, body)
	}
	if resp, _ = post(t, s, `{"model":"m1","stream":true,"messages":[]}`, "sk-right-key-0123456789"); resp.StatusCode != 200 {
		t.Errorf("right key: %d", resp.StatusCode)
	}
}

func TestModels(t *testing.T) {
	t.Parallel()
	s := New(t)
	s.SetModels("b", "a")
	get := func() (int, string) {
		resp, err := http.Get(s.URL + "/models")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get()
	want := `{"object":"list","data":[{"id":"b","object":"model","created":1686935002,"owned_by":"system"},{"id":"a","object":"model","created":1686935002,"owned_by":"system"}]}` + "\n"
	if code != 200 || body != want {
		t.Errorf("GET /models = %d %s, want %s", code, body, want)
	}
	s.ModelsReply(Reply{Status: 503})
	if code, _ := get(); code != 503 {
		t.Errorf("failing GET /models = %d, want 503", code)
	}
	if n := s.ModelsRequests(); n != 2 {
		t.Errorf("ModelsRequests = %d, want 2", n)
	}
}

// TestCloseEndsDelays checks that closing the server does not wait for a
// delayed reply.
func TestCloseEndsDelays(t *testing.T) {
	t.Parallel()
	s := New(t)
	s.ModelsReply(Reply{Delay: time.Hour})
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get(s.URL + "/models")
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	waitRequests := time.Now().Add(5 * time.Second)
	for s.ModelsRequests() == 0 && time.Now().Before(waitRequests) {
		time.Sleep(5 * time.Millisecond)
	}
	s.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("GET /models after Close succeeded, want the connection dropped")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close left the delayed request hanging")
	}
}
