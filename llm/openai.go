package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
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

// Stream streams a chat completion for msgs and emits every piece of content.
//
// A watchdog cancels the request when the provider sends nothing for the
// idle timeout (including before the first chunk); that is reported as an
// *Error of kind Timeout rather than as a context error. The watchdog is
// paused while emit runs so a slow receiver is not blamed on the provider.
func (m *OpenAI) Stream(ctx context.Context, msgs []Message, emit func(text string) error) error {
	params, err := m.params(msgs)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("openai stream: %w", err)
	}

	errIdle := errors.New("no chunk within the idle timeout")
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(m.idle, func() { cancel(errIdle) })
	defer watchdog.Stop()

	var resp *http.Response
	stream := m.client.Chat.Completions.NewStreaming(sctx, params, option.WithResponseInto(&resp))
	defer stream.Close()

	chunks := 0
	for stream.Next() {
		watchdog.Stop()
		chunks++
		for _, choice := range stream.Current().Choices {
			if choice.Index != 0 || choice.Delta.Content == "" {
				continue
			}
			if err := emit(choice.Delta.Content); err != nil {
				return err
			}
		}
		watchdog.Reset(m.idle)
	}
	err = stream.Err()
	switch {
	case err == nil && chunks > 0:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("openai stream: %w", ctx.Err())
	case errors.Is(context.Cause(sctx), errIdle):
		return &Error{
			Kind:    Timeout,
			Message: "the model stopped responding for " + formatDuration(m.idle),
			Err:     fmt.Errorf("openai stream: no chunk for %s: %w", m.idle, err),
		}
	case err == nil:
		// The body ended without a single event: not an SSE stream at all.
		return &Error{
			Kind:    Failed,
			Message: "the model provider sent an empty reply",
			Err:     errors.New("openai stream: stream ended without any chunk"),
		}
	}
	return m.classify(err, resp, chunks > 0)
}

// params converts msgs into the SDK request.
func (m *OpenAI) params(msgs []Message) (openai.ChatCompletionNewParams, error) {
	out := make([]openai.ChatCompletionMessageParamUnion, 0, len(msgs))
	for i, msg := range msgs {
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
	return openai.ChatCompletionNewParams{Model: m.model, Messages: out}, nil
}

// classify turns an error from the SDK into an *Error. resp is the HTTP
// response if one arrived; started says whether any chunk was received.
func (m *OpenAI) classify(err error, resp *http.Response, started bool) *Error {
	wrapped := fmt.Errorf("openai stream: %w", err)

	status, detail := 0, ""
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		status, detail = apiErr.StatusCode, apiErr.Message
	} else if resp != nil && resp.StatusCode >= 400 {
		// The SDK could not parse the error body (plain text from a proxy, say).
		status = resp.StatusCode
	}
	if status >= 400 {
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
		return &Error{Kind: Failed, Message: msg, Err: wrapped}
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
		// The provider's own message may quote part of the key: never show it.
		return &Error{Kind: Auth, Message: "the model provider rejected our API key", Err: err}
	case status == http.StatusRequestTimeout:
		return &Error{Kind: Timeout, Message: "the model provider timed out", Err: err}
	case status >= 500:
		return &Error{Kind: Unavailable, Message: fmt.Sprintf("the model provider is unavailable (HTTP %d)", status), Err: err}
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

// safeDetail makes a provider message fit for the page: one line, at most
// 200 characters, with our API key scrubbed in case the provider echoed it.
func (m *OpenAI) safeDetail(s string) string {
	if m.apiKey != "" {
		s = strings.ReplaceAll(s, m.apiKey, "[redacted]")
	}
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > 200 {
		s = string([]rune(s)[:199]) + "…"
	}
	return s
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
	err := m.Stream(ctx, []Message{
		{Role: RoleSystem, Content: titlePrompt},
		{Role: RoleUser, Content: first},
	}, func(text string) error {
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
