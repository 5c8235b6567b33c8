package store

import (
	"errors"
	"fmt"
	"time"
)

// Errors the store returns; handlers map them to HTTP statuses.
var (
	ErrNotFound = errors.New("conversation not found")
	ErrBusy     = errors.New("an answer is still being written")
	// ErrStale: the generation no longer owns its answer (ended or
	// superseded); it must stop writing.
	ErrStale  = errors.New("generation no longer owns the answer")
	ErrExists = errors.New("conversation already exists")
	// ErrConversationFull: the conversation holds Config.MaxMessages.
	ErrConversationFull = errors.New("conversation is at its length limit")
	// ErrForbidden: only the conversation's owner may change it.
	ErrForbidden = errors.New("conversation belongs to someone else")
	// ErrNoSuchMessage: the message (or version) asked for does not exist,
	// or is not of the kind the change needs (an answer to regenerate, a
	// user message to edit, a cut answer to continue).
	ErrNoSuchMessage = errors.New("no such message")
	// ErrBadID reports a cursor that is not a stream ID.
	ErrBadID = errors.New("not a stream id")
)

// What a limit counts, in LimitError.Limit.
const (
	LimitPosts         = "posts"         // messages and regenerations per minute
	LimitConversations = "conversations" // conversations started per hour
	LimitAnswers       = "answers"       // answers being written at once
	LimitActions       = "actions"       // stops, renames, version switches and settings changes per minute
	LimitReads         = "reads"         // downloads and searches per minute (as many as actions, counted apart)
	LimitStored        = "stored"        // bytes of conversations a browser keeps
	LimitTokens        = "tokens"        // the deployment's model tokens per day
)

// LimitError is a refusal by a limit shared by every process.
type LimitError struct {
	Limit string // one of the Limit constants
	// Who: "browser", "address" or "deployment".
	Who string
	// RetryAfter is when to come back; 0 when it depends on others (an
	// answer ending).
	RetryAfter time.Duration
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s limit of this %s reached (retry after %s)", e.Limit, e.Who, e.RetryAfter)
}
