// Package llm streams replies from language models.
//
// A [Model] turns a [Request] (a conversation, and the model to answer it)
// into a stream of text pieces, and says how a complete reply ended: the
// model stopped ([FinishStop]) or hit its length limit ([FinishLength]). A
// reply that stops short of saying it is complete is an *[Error] of kind
// CutOff, never a whole answer. Three models are provided: [Demo], an
// offline deterministic model for development and tests, [Clock], for load
// tests, and [OpenAI], which talks to any server speaking the OpenAI
// chat-completions streaming protocol (OpenAI itself, Ollama, llama.cpp,
// vLLM). A [Catalog] says which models a person may pick.
//
// Failures a person should see are returned as *[Error], whose Message is safe
// to put in a page; everything else (the underlying cause, the provider's own
// words with anything like a key masked) stays in Err for logs.
// [Error.Retryable] and [ProviderFault] tell callers what to do about one.
package llm

import (
	"context"
	"errors"
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

// ContinueText is the user message that asks a model to go on with an
// answer it ended at its length limit, sent right after that answer (see
// generation's prompt rule). It lives here so the demo model can recognise
// the request and write the rest of its own reply.
const ContinueText = "Continue exactly where your previous answer stopped, without repeating any of it."

// Message is one turn of a conversation given to a model.
type Message struct {
	Role    Role
	Content string
}

// Request is what a model is asked to answer.
type Request struct {
	Model    string // the model to use; "" means the Model's default (Name())
	Messages []Message
	// Variant is which version of the answer this is (0 the first, 1 after
	// one regeneration...). A model that samples varies by itself; the
	// demo, which does not, varies its reply by it.
	Variant int
}

// Finish says why a complete reply ended.
type Finish string

// The ways a complete reply ends.
const (
	// FinishStop means the model ended its answer itself.
	FinishStop Finish = "stop"
	// FinishLength means the answer was cut at the model's length limit;
	// asking the model to go on continues it.
	FinishLength Finish = "length"
)

// Model streams a reply to a conversation.
type Model interface {
	// Name is the default model's name, used when a Request names none.
	Name() string
	// Stream sends the reply to req piece by piece to emit, in order, and
	// returns how it ended when the reply is complete. It returns ctx.Err()
	// (wrapped is fine) when ctx is done, the error from emit if emit fails
	// (and stops at once), or an *Error when the model fails.
	Stream(ctx context.Context, req Request, emit func(text string) error) (Finish, error)
	// Models lists the models the provider serves, sorted.
	Models(ctx context.Context) ([]string, error)
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
	// CutOff means the stream ended cleanly but without saying the answer
	// was complete (no finish reason, or no final [DONE]): what arrived may
	// be only part of it.
	CutOff ErrorKind = "cut_off"
	// Failed is any other failure of the model while answering.
	Failed ErrorKind = "failed"
)

// Error is a model failure that can be shown to a person.
type Error struct {
	Kind       ErrorKind     // RateLimited, Unavailable, Timeout, BadRequest, Auth, CutOff, Failed
	Message    string        // short, readable, safe to show in the page (no secrets)
	RetryAfter time.Duration // when the provider said so (429), else 0
	Err        error         // the underlying error, for logs (key-looking strings masked)

	// partial is set when some of the answer had arrived before the
	// failure: asking again would not continue it, so it is not retryable.
	partial bool
}

// Retryable reports whether the same request may well succeed if sent
// again a little later: the provider rate limited us (wait RetryAfter), or
// could not be reached or had a server error before any text arrived.
func (e *Error) Retryable() bool {
	switch e.Kind {
	case RateLimited:
		return true
	case Unavailable:
		return !e.partial
	}
	return false
}

// ProviderFault reports whether err says the model provider is down: it
// rejected our credentials, could not be reached, had a server error, or
// stopped answering. Nil, errors of ours (a cancelled context, emit's) and
// failures that are not the provider's (a bad request, a rate limit, a cut
// answer, a content filter) give false. Callers may want to leave a
// health gauge alone on a cancelled context, which says nothing either way.
func ProviderFault(err error) (down bool) {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Kind {
	case Auth, Unavailable, Timeout:
		return true
	}
	return false
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
