// Package openaitest is an OpenAI-compatible server for tests: a real HTTP
// server, in process, that answers POST /v1/chat/completions with stream
// true and GET /v1/models the way api.openai.com does on the wire, and can
// be told to fail in each of the ways a provider fails.
//
//	srv := openaitest.New(t)
//	srv.Queue(openaitest.Reply{Text: []string{"Hel", "lo"}, Finish: "length"})
//	m, _ := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: srv.URL, Model: openaitest.DefaultModel})
//
// A chat request gets the next queued Reply, or the default one: the
// pieces of DefaultAnswer, ending with finish_reason "stop" and
// "data: [DONE]". A request for a model the server does not list gets
// OpenAI's 404 model_not_found.
package openaitest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultModel is the model the server lists until SetModels.
const DefaultModel = "test-model"

// DefaultAnswer is the answer of a Reply without Text, sent word by word
// (each word with the space before it).
const DefaultAnswer = "Hello from the test server."

// Reply is how the server answers one chat request.
type Reply struct {
	Status     int           // 0 = 200, a stream; else an error reply with OpenAI's error JSON body
	Message    string        // the error's message for Status >= 400 (default: the status text)
	RetryAfter string        // Retry-After header value, if any
	Text       []string      // content pieces; nil: DefaultAnswer's words
	Finish     string        // finish_reason of the last chunk; "" = "stop"; "-" = no finish chunk
	NoDone     bool          // omit the final data: [DONE]
	CutAfter   int           // > 0: close the connection abruptly after this many content chunks
	Delay      time.Duration // before each content chunk (slow tokens)
}

// Message is one message of a recorded request.
type Message struct {
	Role    string
	Content string
}

// Recorded is one chat request as the server received it.
type Recorded struct {
	Body     []byte // raw JSON
	Model    string
	Stream   bool
	Messages []Message
	Header   http.Header
}

// Server is a running OpenAI-compatible server.
type Server struct {
	URL string // base URL, with /v1, as llm.OpenAIConfig.BaseURL takes it

	srv     *httptest.Server
	closing chan struct{} // closed by Close: delays end at once
	close   func()

	mu          sync.Mutex
	queue       []Reply
	models      []string
	key         string
	modelsReply Reply // how GET /models answers
	modelsHits  int
	requests    []Recorded
	nextID      int
}

// New starts a server; it is closed when t ends.
func New(t testing.TB) *Server {
	s := &Server{models: []string{DefaultModel}, closing: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.chat)
	mux.HandleFunc("GET /v1/models", s.listModels)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL + "/v1"
	s.close = sync.OnceFunc(func() {
		close(s.closing)
		s.srv.Close()
	})
	t.Cleanup(s.Close)
	return s
}

// Close stops the server now, so that connecting to it is refused: a
// provider that is down. Replies still being delayed end at once.
func (s *Server) Close() { s.close() }

// Queue adds replies for the next chat requests, in order; once they are
// used the default reply follows.
func (s *Server) Queue(r ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, r...)
}

// SetModels sets the models GET /models lists, in that order, and the only
// ones a chat request may name.
func (s *Server) SetModels(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.models = slices.Clone(ids)
}

// ModelsReply sets how GET /models answers: after r.Delay, with r.Status's
// error (and Message, RetryAfter) when it is set, else with the models. A
// zero Reply restores the plain list.
func (s *Server) ModelsReply(r Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.modelsReply = r
}

// RequireKey makes every request without "Authorization: Bearer key" get
// OpenAI's 401 invalid_api_key, quoting the key it got as OpenAI does
// (its start and end, starred in between).
func (s *Server) RequireKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.key = key
}

// Requests returns every chat request so far, in order.
func (s *Server) Requests() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// ModelsRequests is how many times GET /models was asked.
func (s *Server) ModelsRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.modelsHits
}

// authorized writes the 401 and returns false when a key is required and
// r does not carry it.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	key := s.key
	s.mu.Unlock()
	if key == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok && got == key {
		return true
	}
	msg := "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys."
	if ok {
		msg = fmt.Sprintf("Incorrect API key provided: %s. You can find your API key at https://platform.openai.com/account/api-keys.", starred(got))
	}
	writeError(w, Reply{Status: http.StatusUnauthorized, Message: msg}, "invalid_api_key")
	return false
}

// starred shows a key as OpenAI's 401 does: its first 8 and last 4
// characters with stars between.
func starred(key string) string {
	if len(key) <= 12 {
		return strings.Repeat("*", len(key))
	}
	return key[:8] + strings.Repeat("*", len(key)-12) + key[len(key)-4:]
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	s.mu.Lock()
	s.modelsHits++
	ids, reply := slices.Clone(s.models), s.modelsReply
	s.mu.Unlock()
	if !s.pause(r, reply.Delay) {
		return
	}
	if reply.Status > 0 {
		writeError(w, reply, "")
		return
	}
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	list := struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{Object: "list", Data: []model{}}
	for _, id := range ids {
		list.Data = append(list.Data, model{ID: id, Object: "model", Created: 1686935002, OwnedBy: "system"})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
}

// writeError writes OpenAI's error reply for r.Status: its JSON body, with
// the type and code OpenAI gives that status (code overrides it).
func writeError(w http.ResponseWriter, r Reply, code string) {
	typ, defCode := "invalid_request_error", ""
	switch {
	case r.Status == http.StatusTooManyRequests:
		typ, defCode = "requests", "rate_limit_exceeded"
	case r.Status >= 500:
		typ = "server_error"
	case r.Status == http.StatusNotFound:
		defCode = "model_not_found"
	}
	if code == "" {
		code = defCode
	}
	msg := r.Message
	if msg == "" {
		msg = http.StatusText(r.Status)
	}
	type apiError struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}
	body := struct {
		Error apiError `json:"error"`
	}{apiError{Message: msg, Type: typ}}
	if code != "" {
		body.Error.Code = &code
	}
	if r.RetryAfter != "" {
		w.Header().Set("Retry-After", r.RetryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(r.Status)
	_ = json.NewEncoder(w).Encode(body)
}

// chatRequest is the part of a chat request the server reads.
type chatRequest struct {
	Model    string `json:"model"`
	Stream   bool   `json:"stream"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	StreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	body, err := io.ReadAll(r.Body)
	var req chatRequest
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		writeError(w, Reply{Status: http.StatusBadRequest, Message: "We could not parse the JSON body of your request."}, "")
		return
	}
	rec := Recorded{Body: body, Model: req.Model, Stream: req.Stream, Header: r.Header.Clone()}
	for _, m := range req.Messages {
		rec.Messages = append(rec.Messages, Message{Role: m.Role, Content: content(m.Content)})
	}

	s.mu.Lock()
	s.requests = append(s.requests, rec)
	known := slices.Contains(s.models, req.Model)
	reply := Reply{}
	if len(s.queue) > 0 {
		reply, s.queue = s.queue[0], s.queue[1:]
	}
	s.nextID++
	id := fmt.Sprintf("chatcmpl-test%d", s.nextID)
	s.mu.Unlock()

	switch {
	case !known:
		writeError(w, Reply{Status: http.StatusNotFound,
			Message: fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", req.Model)}, "")
	case !req.Stream:
		writeError(w, Reply{Status: http.StatusBadRequest, Message: "openaitest serves only streamed chat completions (stream: true)."}, "")
	case reply.Status >= 400:
		writeError(w, reply, "")
	default:
		s.stream(w, r, id, req, reply)
	}
}

// content reads a message's content: a string, or an array of parts whose
// text is joined.
func content(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal(raw, &parts)
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String()
}

// pause waits d, and reports false if the request ended or the server
// closed meanwhile.
func (s *Server) pause(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.Context().Done():
		return false
	case <-s.closing:
		panic(http.ErrAbortHandler) // drop the connection, as a provider going away does
	case <-t.C:
		return true
	}
}
