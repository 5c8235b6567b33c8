package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
)

// OpenAIConfig configures a model served over the OpenAI chat-completions API.
type OpenAIConfig struct {
	APIKey      string        // may be empty for local servers (Ollama, llama.cpp)
	BaseURL     string        // e.g. https://api.openai.com/v1 or http://localhost:11434/v1; empty = SDK default
	Model       string        // required, e.g. "gpt-4o-mini"
	IdleTimeout time.Duration // max wait between two streamed chunks (and for the first); default 60s
	HTTPClient  *http.Client  // optional, for tests
}

// OpenAI is a model behind any OpenAI-compatible chat-completions endpoint.
// It streams the reply as the provider produces it and turns provider
// failures into *Error values that can be shown to a person.
//
// With an empty BaseURL the SDK defaults apply, which include the
// OPENAI_BASE_URL environment variable. The API key is always the configured
// one (possibly none), never OPENAI_API_KEY, so a key from the environment is
// not sent to a local server by accident.
type OpenAI struct {
	client openai.Client
	model  string
	idle   time.Duration
	apiKey string // only to scrub it from provider messages
}

// NewOpenAI checks cfg and returns a model using it. It does not contact the
// provider; configuration errors the provider detects surface from Stream.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	if strings.TrimSpace(cfg.Model) == "" {
		return nil, errors.New("openai: model name is required")
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 60 * time.Second
	}
	opts := []option.RequestOption{
		option.WithAPIKey(cfg.APIKey),
		// A person is waiting for the first words, and the SDK's retries
		// would silently honour Retry-After for up to two minutes. We would
		// rather fail fast and show the rate limit or outage in the page,
		// where the person can decide to try again.
		option.WithMaxRetries(0),
	}
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("openai: base URL %q must be an absolute http(s) URL", cfg.BaseURL)
		}
		opts = append(opts, option.WithBaseURL(cfg.BaseURL))
	}
	if cfg.HTTPClient != nil {
		opts = append(opts, option.WithHTTPClient(cfg.HTTPClient))
	}
	return &OpenAI{
		client: openai.NewClient(opts...),
		model:  cfg.Model,
		idle:   cfg.IdleTimeout,
		apiKey: cfg.APIKey,
	}, nil
}

// Name returns the configured model name, e.g. "gpt-4o-mini".
func (m *OpenAI) Name() string { return m.model }

// Stream streams a chat completion for req and emits every piece of content.
//
// A watchdog cancels the request when the provider sends nothing for the
// idle timeout (including before the first chunk); that is reported as an
// *Error of kind Timeout rather than as a context error. The watchdog is
// paused while emit runs so a slow receiver is not blamed on the provider.
//
// A reply is complete only when a chunk gave its finish reason and the
// stream then ended with "data: [DONE]"; a stream that ends cleanly short of
// either is an *Error of kind CutOff, so a truncated answer is never taken
// for a whole one.
func (m *OpenAI) Stream(ctx context.Context, req Request, emit func(text string) error) (Finish, error) {
	params, err := m.params(req)
	if err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("openai stream: %w", err)
	}

	errIdle := errors.New("no chunk within the idle timeout")
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(m.idle, func() { cancel(errIdle) })
	defer watchdog.Stop()

	var resp *http.Response
	var done atomic.Bool
	stream := m.client.Chat.Completions.NewStreaming(sctx, params,
		option.WithResponseInto(&resp), option.WithMiddleware(watchDone(&done)))
	defer stream.Close()

	chunks, emitted, reason := 0, false, ""
	for stream.Next() {
		watchdog.Stop()
		chunks++
		for _, choice := range stream.Current().Choices {
			if choice.Index != 0 {
				continue
			}
			if choice.FinishReason != "" {
				reason = choice.FinishReason
			}
			if choice.Delta.Content == "" {
				continue
			}
			emitted = true
			if err := emit(choice.Delta.Content); err != nil {
				return "", err
			}
		}
		watchdog.Reset(m.idle)
	}
	err = stream.Err()
	switch {
	case err == nil && chunks > 0:
		return ending(reason, done.Load())
	case ctx.Err() != nil:
		return "", fmt.Errorf("openai stream: %w", ctx.Err())
	case errors.Is(context.Cause(sctx), errIdle):
		return "", &Error{
			Kind:    Timeout,
			Message: "the model stopped responding for " + formatDuration(m.idle),
			Err:     fmt.Errorf("openai stream: no chunk for %s: %w", m.idle, err),
			partial: emitted,
		}
	case err == nil:
		// The body ended without a single event: not an SSE stream at all.
		return "", &Error{
			Kind:    Failed,
			Message: "the model provider sent an empty reply",
			Err:     errors.New("openai stream: stream ended without any chunk"),
		}
	}
	e := m.classify("stream", err, resp, chunks > 0)
	e.partial = emitted
	return "", e
}

// ending is how a stream that ended cleanly ended: by the finish reason of
// its last choice-0 chunk that had one, and whether "data: [DONE]" came.
func ending(reason string, done bool) (Finish, error) {
	switch {
	case reason == "content_filter":
		return "", &Error{
			Kind:    Failed,
			Message: "the provider's content filter stopped the answer",
			Err:     errors.New("openai stream: finish reason content_filter"),
			partial: true,
		}
	case reason == "" || !done:
		what := "without a finish reason"
		if reason != "" {
			what = fmt.Sprintf("after finish reason %q but without data: [DONE]", reason)
		}
		return "", &Error{
			Kind:    CutOff,
			Message: "the model's answer was cut off",
			Err:     errors.New("openai stream: the stream ended " + what),
			partial: true,
		}
	case reason == "length":
		return FinishLength, nil
	}
	// "stop", and reasons we do not act on ("tool_calls", a provider's own):
	// the model ended the answer.
	return FinishStop, nil
}

// Models lists the ids of the models the provider serves (GET {base}/models),
// sorted, each once.
func (m *OpenAI) Models(ctx context.Context) ([]string, error) {
	var resp *http.Response
	page, err := m.client.Models.List(ctx, option.WithResponseInto(&resp))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("openai models: %w", ctx.Err())
		}
		return nil, m.classify("models", err, resp, false)
	}
	ids := make([]string, 0, len(page.Data))
	for _, model := range page.Data {
		if model.ID != "" {
			ids = append(ids, model.ID)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// params converts req into the SDK request.
func (m *OpenAI) params(req Request) (openai.ChatCompletionNewParams, error) {
	out := make([]openai.ChatCompletionMessageParamUnion, 0, len(req.Messages))
	for i, msg := range req.Messages {
		switch msg.Role {
		case RoleSystem:
			out = append(out, openai.SystemMessage(msg.Content))
		case RoleUser:
			out = append(out, openai.UserMessage(msg.Content))
		case RoleAssistant:
			out = append(out, openai.AssistantMessage(msg.Content))
		default:
			return openai.ChatCompletionNewParams{}, &Error{
				Kind:    BadRequest,
				Message: "the conversation contains a message the model cannot accept",
				Err:     fmt.Errorf("openai stream: message %d has unknown role %q", i, msg.Role),
			}
		}
	}
	model := req.Model
	if model == "" {
		model = m.model
	}
	return openai.ChatCompletionNewParams{Model: model, Messages: out}, nil
}

// watchDone wraps the response body so that done is set when a
// "data: [DONE]" line goes by: the SDK ends the stream there without
// saying so, exactly as it does at a bare end of the body.
func watchDone(done *atomic.Bool) option.Middleware {
	return func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		resp, err := next(r)
		if err == nil && resp != nil && resp.Body != nil {
			resp.Body = &doneWatcher{ReadCloser: resp.Body, done: done}
		}
		return resp, err
	}
}

// doneWatcher reads an SSE body and notes a "data: [DONE]" line. It keeps
// only the start of the current line.
type doneWatcher struct {
	io.ReadCloser
	done *atomic.Bool
	line []byte
}

func (w *doneWatcher) Read(p []byte) (int, error) {
	n, err := w.ReadCloser.Read(p)
	for _, b := range p[:n] {
		if b == '\n' || b == '\r' {
			w.endLine()
		} else if len(w.line) < 16 {
			w.line = append(w.line, b)
		}
	}
	if err != nil {
		w.endLine()
	}
	return n, err
}

// endLine checks the line read so far the way the SDK recognises the end:
// a data field whose value starts with [DONE].
func (w *doneWatcher) endLine() {
	if v, ok := bytes.CutPrefix(w.line, []byte("data:")); ok {
		if bytes.HasPrefix(bytes.TrimPrefix(v, []byte(" ")), []byte("[DONE]")) {
			w.done.Store(true)
		}
	}
	w.line = w.line[:0]
}

// classify turns an error from the SDK into an *Error. op names the call
// for logs; resp is the HTTP response if one arrived; started says whether
// any chunk was received.
func (m *OpenAI) classify(op string, err error, resp *http.Response, started bool) *Error {
	wrapped := fmt.Errorf("openai %s: %w", op, err)

	status, detail := 0, ""
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		status, detail = apiErr.StatusCode, apiErr.Message
	} else if resp != nil && resp.StatusCode >= 400 {
		// The SDK could not parse the error body (plain text from a proxy, say).
		status = resp.StatusCode
	}
	if status >= 400 {
		if d := m.scrub(detail); d != "" {
			// The SDK's error says only the status: the provider's own words
			// are what an operator needs in the logs.
			wrapped = fmt.Errorf("%w: %s", wrapped, d)
		}
		return m.statusError(status, resp, detail, wrapped)
	}

	var streamErr *ssestream.StreamError
	if errors.As(err, &streamErr) {
		var body struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(streamErr.Event.Data, &body)
		msg := "the model failed while answering"
		if d := m.safeDetail(body.Error.Message); d != "" {
			msg += ": " + d
		}
		return &Error{Kind: Failed, Message: msg, Err: fmt.Errorf("openai %s: %s", op, m.scrub(err.Error()))}
	}

	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		msg := "could not reach the model provider"
		if started {
			msg = "lost the connection to the model provider"
		}
		return &Error{Kind: Unavailable, Message: msg, Err: wrapped}
	}
	if started {
		// Anything else after a 2xx response is data we could not decode.
		return &Error{Kind: Failed, Message: "the model provider sent a malformed reply", Err: wrapped}
	}
	return &Error{Kind: Failed, Message: "the request to the model provider failed", Err: wrapped}
}

// statusError maps an HTTP error status from the provider to an *Error.
func (m *OpenAI) statusError(status int, resp *http.Response, detail string, err error) *Error {
	switch {
	case status == http.StatusTooManyRequests:
		e := &Error{Kind: RateLimited, Message: "the model provider is rate limiting us; try again in a moment", Err: err}
		if resp != nil {
			e.RetryAfter = retryAfter(resp.Header, time.Now())
		}
		if e.RetryAfter > 0 {
			e.Message = "the model provider is rate limiting us; try again in " + formatDuration(e.RetryAfter)
		}
		return e
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		// The provider's own message may quote part of the key: it goes to
		// the logs, masked, and never to the page.
		return &Error{Kind: Auth, Message: "the model provider rejected our API key", Err: err}
	case status == http.StatusRequestTimeout:
		return &Error{Kind: Timeout, Message: "the model provider timed out", Err: err}
	case status >= 500:
		e := &Error{Kind: Unavailable, Message: fmt.Sprintf("the model provider is unavailable (HTTP %d)", status), Err: err}
		if resp != nil {
			e.RetryAfter = retryAfter(resp.Header, time.Now()) // a 503 may say when to come back
		}
		return e
	default: // 400, 404, 422 and the other 4xx
		msg := "the model provider rejected the request"
		if d := m.safeDetail(detail); d != "" {
			msg += ": " + d
		} else {
			msg += fmt.Sprintf(" (HTTP %d)", status)
		}
		return &Error{Kind: BadRequest, Message: msg, Err: err}
	}
}

// safeDetail makes a provider message fit for the page: scrubbed, one
// line, at most 200 characters.
func (m *OpenAI) safeDetail(s string) string {
	s = strings.Join(strings.Fields(m.scrub(s)), " ")
	if utf8.RuneCountInString(s) > 200 {
		s = string([]rune(s)[:199]) + "…"
	}
	return s
}

// scrub removes our API key from a provider message, in case the provider
// echoed it, and masks anything else that looks like a key or token.
func (m *OpenAI) scrub(s string) string {
	if m.apiKey != "" {
		s = strings.ReplaceAll(s, m.apiKey, "[redacted]")
	}
	return maskSecrets(s)
}

// maskSecrets replaces what looks like a credential in s: a word starting
// with "sk-" (OpenAI's keys, even partly starred out as OpenAI quotes
// them), or a long run of letters and digits mixed (other providers'
// tokens). Ordinary words and short ids stay readable.
func maskSecrets(s string) string {
	isKeyChar := func(r rune) bool {
		return r < utf8.RuneSelf && (r == '-' || r == '_' || r == '*' ||
			r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}
	var b strings.Builder
	for len(s) > 0 {
		i := strings.IndexFunc(s, isKeyChar)
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		s = s[i:]
		j := strings.IndexFunc(s, func(r rune) bool { return !isKeyChar(r) })
		if j < 0 {
			j = len(s)
		}
		word := s[:j]
		s = s[j:]
		digits := strings.ContainsAny(word, "0123456789")
		letters := strings.IndexFunc(word, unicode.IsLetter) >= 0
		switch {
		case strings.HasPrefix(word, "sk-") && len(word) > len("sk-"):
			b.WriteString("sk-[redacted]")
		case len(word) >= 24 && digits && letters:
			b.WriteString("[redacted]")
		default:
			b.WriteString(word)
		}
	}
	return b.String()
}

// retryAfter reads how long the provider asked us to wait: Retry-After in
// seconds or as an HTTP date, else OpenAI's retry-after-ms. It returns 0 when
// neither is present or usable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 && secs < 1e6 {
			return time.Duration(secs * float64(time.Second))
		}
		if t, err := http.ParseTime(v); err == nil && t.After(now) {
			return t.Sub(now).Round(time.Second)
		}
	}
	if v := strings.TrimSpace(h.Get("Retry-After-Ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 && ms < 1e9 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	return 0
}

// titlePrompt asks for a conversation's name; the answer is cleaned and cut
// by the caller, so a chatty model cannot make a long one.
const titlePrompt = "Write a title of at most six words for a conversation that starts with the user's message below. Answer with the title only, no quotes, no final punctuation."

// Title names a conversation from its first message, with one short
// streamed completion.
func (m *OpenAI) Title(ctx context.Context, first string) (string, error) {
	if len(first) > 2000 {
		first = first[:2000]
	}
	var sb strings.Builder
	_, err := m.Stream(ctx, Request{Messages: []Message{
		{Role: RoleSystem, Content: titlePrompt},
		{Role: RoleUser, Content: first},
	}}, func(text string) error {
		if sb.Len() > 400 {
			return errTitleLong
		}
		sb.WriteString(text)
		return nil
	})
	if err != nil && !errors.Is(err, errTitleLong) {
		return "", fmt.Errorf("title: %w", err)
	}
	return sb.String(), nil
}

var errTitleLong = errors.New("title too long")
