package views

import "context"

// AccessForm is the passphrase page's state: where to go once in, and why
// the last try was refused. What was typed is never given back.
type AccessForm struct {
	Next  string // a local path (access.LocalPath)
	Error string
}

type startOwnKey struct{}

// WithStartOwn returns ctx in which a read-only conversation page offers
// text (say, "Enter the passphrase to start your own") instead of "Start
// your own": the visitor may not start one yet.
func WithStartOwn(ctx context.Context, text string) context.Context {
	return context.WithValue(ctx, startOwnKey{}, text)
}

// startOwn is the read-only page's invitation to start a conversation.
func startOwn(ctx context.Context) string {
	if s, ok := ctx.Value(startOwnKey{}).(string); ok && s != "" {
		return s
	}
	return "Start your own"
}
