// Package llm streams replies from language models.
//
// A [Model] turns a conversation into a stream of text pieces. Two models are
// provided: [Demo], an offline deterministic model for development, tests and
// load testing, and [OpenAI], which talks to any server speaking the OpenAI
// chat-completions streaming protocol (OpenAI itself, Ollama, llama.cpp, vLLM).
//
// Failures a person should see are returned as *[Error], whose Message is safe
// to put in a page; everything else (the underlying cause) stays in Err for logs.
package llm

import (
	"context"
	"fmt"
	"time"
)

// Role is who wrote a message.
type Role string

// The roles a conversation can contain; they match the OpenAI wire names so
// they can be sent as they are.
const (
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
)

// Message is one turn of a conversation given to a model.
type Message struct {
	Role    Role
	Content string
}

// Model streams a reply to a conversation.
type Model interface {
	// Name identifies the model in logs and the page.
	Name() string
	// Stream sends the reply to msgs piece by piece to emit, in order, and returns
	// nil when the reply is complete. It returns ctx.Err() (wrapped is fine) when ctx is done, the error
	// from emit if emit fails (and stops at once), or an *Error when the model fails.
	Stream(ctx context.Context, msgs []Message, emit func(text string) error) error
}

// ErrorKind classifies a model failure so callers can decide what to do
// (retry later, fix configuration, give up) without parsing messages.
type ErrorKind string

// The kinds of model failure.
const (
	// RateLimited means the provider asked us to slow down; see Error.RetryAfter.
	RateLimited ErrorKind = "rate_limited"
	// Unavailable means the provider could not be reached or had a server error.
	Unavailable ErrorKind = "unavailable"
	// Timeout means the provider stopped sending the reply.
	Timeout ErrorKind = "timeout"
	// BadRequest means the provider refused the request as malformed
	// (unknown model, context too long, ...).
	BadRequest ErrorKind = "bad_request"
	// Auth means the provider rejected our credentials.
	Auth ErrorKind = "auth"
	// Failed is any other failure of the model while answering.
	Failed ErrorKind = "failed"
)

// Error is a model failure that can be shown to a person.
type Error struct {
	Kind       ErrorKind     // RateLimited, Unavailable, Timeout, BadRequest, Auth, Failed
	Message    string        // short, readable, safe to show in the page (no secrets)
	RetryAfter time.Duration // when the provider said so (429), else 0
	Err        error         // the underlying error, for logs
}

// Error returns the kind, the readable message and the underlying cause, for logs.
func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("llm %s: %s", e.Kind, e.Message)
	}
	return fmt.Sprintf("llm %s: %s: %v", e.Kind, e.Message, e.Err)
}

// Unwrap returns the underlying error so errors.Is and errors.As see through it.
func (e *Error) Unwrap() error { return e.Err }

// formatDuration renders d for people: whole seconds as "20s" (not "1m0s"),
// shorter or fractional durations as Go prints them ("300ms").
func formatDuration(d time.Duration) string {
	if d >= time.Second && d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}
