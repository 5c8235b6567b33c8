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
package views

import "strconv"

// Assets holds the URLs of the embedded static files (content-hashed names).
type Assets struct {
	CSS      string
	Datastar string
}

// Message is one message as the page shows it.
type Message struct {
	Index  int
	Role   string   // "user" or "assistant"
	Status string   // streaming, done, stopped, failed, interrupted
	Error  string   // shown under a failed or interrupted answer
	Text   string   // the user's text (shown as typed)
	Blocks []string // an answer's rendered, sanitised Markdown blocks
}

// Conversation is the data of a conversation page.
type Conversation struct {
	ID          string
	Title       string
	Cursor      string // log position the page was rendered at
	Messages    []Message
	Streaming   bool
	ComposerKey string // idempotency key of the next post
	Model       string
}

// MessageID is the DOM id of message i.
func MessageID(i int) string { return "m-" + strconv.Itoa(i) }

// SlotID is the DOM id of the slot that holds message i and everything after it.
func SlotID(i int) string { return "slot-" + strconv.Itoa(i) }

// BlockSlotID is the DOM id of the slot holding block k of message i and the rest.
func BlockSlotID(i, k int) string { return "m-" + strconv.Itoa(i) + "-s-" + strconv.Itoa(k) }

// FootID is the DOM id of message i's status line.
func FootID(i int) string { return "m-" + strconv.Itoa(i) + "-foot" }
