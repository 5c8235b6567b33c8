// Package views renders Parley's pages and the fragments streamed into them.
// Components are pure functions of their data.
//
// Fragments are applied by id and must be idempotent: the Datastar client can
// apply one frame twice, or frames from two overlapping streams. So nothing is
// ever appended bare; new things fill an empty "slot" element instead. A slot
// holds one item and the next, still empty, slot: morphing slot k with items
// k..n (and slot n+1, empty) gives the same page however often it is applied.
// Messages nest in slots "slot-N", and each answer's Markdown blocks nest in
// slots "m-N-s-K", so a growing answer re-sends only its last block.
//
// Frames are rendered once per room and written to every viewer, owner or
// not, so they never differ by viewer: controls only an owner may use are
// marked "owner-only" and hidden by the page's "readonly" class (and the
// server refuses them anyway).
package views

import (
	"strconv"
	"time"
)

// Assets holds the URLs of the embedded static files (content-hashed names).
type Assets struct {
	CSS      string
	CodeCSS  string // code highlighting, light and dark
	Datastar string
	App      string // app.js: scrolling, the drawer, the tab title, copying
	Icon     string // the favicon
}

// Message is one message as the page shows it.
type Message struct {
	Conv   string // the conversation's ID
	Index  int
	Role   string   // "user" or "assistant"
	Status string   // streaming, done, stopped, failed, interrupted
	Error  string   // shown under a failed or interrupted answer
	Text   string   // the user's text (shown as typed)
	Blocks []string // an answer's rendered, sanitised Markdown blocks
	Rev    string   // log ID of the message's last change; Regenerate names it
	Model  string   // an answer's model ("" when not recorded)
	// Cut: a done answer the model stopped at its length limit (Continue).
	Cut bool
	// Version is the message's place among its versions (1-based) of
	// Versions; with more than one, the message shows "‹ 2/3 ›".
	Version, Versions int
	// HTML, when set, is MessageView's output for this message as rendered
	// before (RenderMessage, kept by the page handler's cache): Slot writes
	// it as it is, and no other field is read.
	HTML string
}

// Summary is one conversation in the sidebar.
type Summary struct {
	ID      string
	Title   string
	Updated time.Time
}

// Sidebar is the list of this browser's conversations.
type Sidebar struct {
	Current       string // the conversation on the page, "" on the home page
	CurrentTitle  string
	Conversations []Summary
	More          bool // the browser has older conversations than these
	Watching      bool // the current conversation is not this browser's
	// Stream: the page opens the sidebar's own live stream (pages without a
	// conversation stream, which otherwise carries the sidebar's frames).
	Stream bool
}

// Conversation is the data of a conversation page.
type Conversation struct {
	ID          string
	Title       string
	Cursor      string // log position the page was rendered at
	Messages    []Message
	Streaming   bool
	Owner       bool   // the viewer may post, stop, regenerate, rename, delete
	Watching    int    // people watching now, as last known
	ComposerKey string // idempotency key of the next post
	Sidebar     Sidebar
	// Models are the deployment's models, for the picker; Settings what
	// the owner chose for this conversation.
	Models   Models
	Settings Settings
}

// Models are the models a deployment offers, for the model pickers.
type Models struct {
	List    []string
	Default string // the model a conversation uses until its owner picks one
}

// Settings are a conversation's own model and instructions, as the page
// shows them at load (the live frames' signals follow their changes).
type Settings struct {
	Model string // "" is the deployment's default
	// Instructions are the conversation's own when Custom; otherwise
	// DefaultInstructions (PARLEY_SYSTEM_PROMPT) apply.
	Instructions        string
	Custom              bool
	DefaultInstructions string
}

// ModelPicker is the data of a model <select>: the choices and the one
// chosen ("" is the default).
type ModelPicker struct {
	Conv   string // "" on the home page, whose form sends the choice itself
	Models Models
	Chosen string
}

// MessageID is the DOM id of message i.
func MessageID(i int) string { return "m-" + strconv.Itoa(i) }

// SlotID is the DOM id of the slot that holds message i and everything after it.
func SlotID(i int) string { return "slot-" + strconv.Itoa(i) }

// BlockSlotID is the DOM id of the slot holding block k of message i and the rest.
func BlockSlotID(i, k int) string { return "m-" + strconv.Itoa(i) + "-s-" + strconv.Itoa(k) }

// EditorID is the DOM id of user message i's editor (a form).
func EditorID(i int) string { return "m-" + strconv.Itoa(i) + "-edit" }

// EditErrorID is the DOM id of the line in user message i's editor that
// says why an edit was refused.
func EditErrorID(i int) string { return "m-" + strconv.Itoa(i) + "-edit-error" }

// FootID is the DOM id of message i's status line.
func FootID(i int) string { return "m-" + strconv.Itoa(i) + "-foot" }

// Ids of elements every conversation page has, so that frames can patch them
// whoever is watching (the client reports an error for a missing target).
const (
	TitleID     = "conv-title"
	SideTitleID = "side-current-title"
	NoticeID    = "notice"
	MessagesID  = "messages"
	ComposerID  = "composer-area"
	SideItemID  = "side-current"
	ActionsID   = "conv-actions"
	StatusID    = "conv-status"
	SideListID  = "side-list"
	ScrollerID  = "scroller"
	JumpID      = "jump"
)

// SourceURL is where an answer's Markdown source is read from (its Copy
// button).
func SourceURL(conv string, i int) string {
	return "/c/" + conv + "/markdown/" + strconv.Itoa(i)
}

// untitled is what a conversation is called until it has a title.
const untitled = "New conversation"

// deletedTitle is what a page says of a conversation deleted while open.
const deletedTitle = "Conversation deleted"

// TitleOr returns title, or the name of an untitled conversation.
func TitleOr(title string) string {
	if title == "" {
		return untitled
	}
	return title
}
