package store

import (
	"encoding/json"
	"fmt"
	"time"
)

// The words of the domain, used the same way by every layer:
//
//   - conversation: a list of messages, alternately a user's question and
//     the assistant's answer, owned by the browser (session owner) that
//     started it, under an ID from NewID.
//   - answer: an assistant message; it is streaming while a generation
//     writes it and then ends in one final status.
//   - generation: one run of the model writing one answer, named by its own
//     ID; it holds the conversation's lease while it runs.
//   - lease: the proof that a generation is alive; one that is not renewed
//     in time is dead, and its answer is ended as interrupted.
//   - log: a conversation's event log, a Redis Stream; its entry IDs (ID) are
//     the viewers' cursors and the messages' revisions.
//   - notice: an event published on the conversation's channel as it is
//     logged, carrying its own ID and the one before it.
//   - revision (rev): the ID of the last log entry that changed a message.
//   - owner: the session owner ID of the browser a conversation belongs to.
//   - tombstone: what a deletion leaves, so a deleted ID is never created again.
//   - tree: every message a conversation ever had, each a node with the
//     message it follows as its parent; an edit or a regeneration adds a
//     sibling (a version) instead of replacing anything.
//   - version: one of the siblings at a place of the tree; a message shows
//     its place among them ("2/3").
//   - path (selected path): the versions shown, from the first message to a
//     leaf; positions (Message.Index) count along it. What the page, the
//     frames, the log and the model see is the path.
//   - branch: a change of the path from one position on (an edit, a
//     regeneration, a version switch, a continuation).
//   - instructions: the conversation's system prompt, sent first to the model.

// Roles of a message.
const (
	RoleUser      = "user"      // a person's question
	RoleAssistant = "assistant" // the model's answer
)

// Statuses of a message. A user message is always done; an answer is
// streaming until its generation ends in exactly one of the others.
const (
	StatusStreaming   = "streaming"   // a generation is writing it
	StatusDone        = "done"        // complete
	StatusStopped     = "stopped"     // a person stopped it; the text so far is kept
	StatusFailed      = "failed"      // the model failed; Error says why
	StatusInterrupted = "interrupted" // its process died; the text so far is kept
)

// Event kinds, as written to the log and carried by notices (Event.Type).
const (
	EventMessage  = "message"  // a user message and its empty answer were added
	EventDelta    = "delta"    // text was appended to an answer
	EventEnd      = "end"      // an answer ended
	EventTitle    = "title"    // the conversation's title changed
	EventBranch   = "branch"   // the path changed from message Msg on (edit, regenerate, switch, continue)
	EventNote     = "note"     // a note on the answer being written ("Retrying in 4 s")
	EventSettings = "settings" // the conversation's model or instructions changed
	EventStop     = "stop"     // a stop was requested (notice only, never logged)
	EventPresence = "presence" // the count of people watching changed (notice only)
	EventDeleted  = "deleted"  // the conversation was deleted (notice only: the log goes with it)
)

// MaxTitleRunes bounds a conversation title.
const MaxTitleRunes = 80

// interruptedText is what people see on an answer whose process died.
const interruptedText = "The server writing this answer went away; the text so far is kept."

// Message is one message of a conversation.
type Message struct {
	Index  int
	Role   string // RoleUser or RoleAssistant
	Status string // one of the Status constants
	Text   string
	Error  string // for people, on a failed or interrupted answer
	Rev    string // ID of the last log entry that changed it (or put it on the path)
	// Model is the model that wrote an answer ("" for the default of its time).
	Model string
	// Cut: a done answer the model stopped at its length limit; it can be continued.
	Cut bool
	// Version is the message's place among its versions (1-based), of Versions.
	Version, Versions int
	// Known: the reader holds this revision (SnapshotKnown), so only Index
	// and Rev are set.
	Known bool
}

// Event is one entry of a conversation's log as carried by a pub/sub notice.
// ID and Prev let a receiver check that it missed nothing in between.
type Event struct {
	ID     string `json:"i,omitempty"`
	Prev   string `json:"p,omitempty"`
	Type   string `json:"t"` // one of the Event constants
	Msg    int    `json:"m,omitempty"`
	Text   string `json:"x,omitempty"`
	Status string `json:"s,omitempty"`
	Error  string `json:"e,omitempty"`
	Gen    string `json:"g,omitempty"`
	N      int    `json:"n,omitempty"` // presence: people watching
	Model  string `json:"o,omitempty"` // message: the answer's model; settings: the conversation's
	Cut    bool   `json:"c,omitempty"` // end: the model stopped the answer at its length limit
	// Appended is when the generation got the text of a delta (Unix ms; 0
	// when unknown), carried only by the notice, for token-to-frame latency.
	Appended int64 `json:"a,omitempty,string"`
}

// DecodeEvent parses a notice payload.
func DecodeEvent(payload string) (Event, error) {
	var ev Event
	if err := json.Unmarshal([]byte(payload), &ev); err != nil {
		return Event{}, fmt.Errorf("decode notice: %w", err)
	}
	return ev, nil
}

// Snapshot is a conversation as of log position Last.
type Snapshot struct {
	Last        ID
	Count       int    // number of messages in the conversation
	Active      string // ID of the running generation, "" when none
	Title       string
	CursorValid bool      // the cursor asked for is an entry of the log
	From        int       // index of Messages[0]
	Messages    []Message // every message changed after the cursor
	Owner       string    // the session owner ID of the browser that created it
	Settings
}

// Settings are what a conversation's owner chose for it.
type Settings struct {
	Model string // the model answers use; "" is the deployment's default
	// Instructions is the system prompt; with InstructionsSet false the
	// deployment's default (PARLEY_SYSTEM_PROMPT) applies.
	Instructions    string
	InstructionsSet bool
}

// Meta is what the store knows about a conversation besides its messages.
type Meta struct {
	Owner   string
	Title   string
	Active  string // running generation, "" when none
	Updated time.Time
	// TitleProvisional: the title is the first message's first words, made
	// while no answer had text; a generated one may replace it.
	TitleProvisional bool
}

// Summary is one entry of an owner's conversation list.
type Summary struct {
	ID      string
	Title   string
	Updated time.Time
}

// AppendResult says what happened to an append.
type AppendResult int

const (
	Appended      AppendResult = iota // the text is stored and published
	StopRequested                     // a stop was requested: nothing appended, finish as stopped
	Full                              // the answer would exceed MaxAnswerBytes: nothing appended
)

// StopResult says what a stop did.
type StopResult int

const (
	StopIdle      StopResult = iota // nothing was running
	StopSent                        // the running generation was asked to stop
	StopFinalized                   // the generation was dead; its answer is now stopped
)
