package store

import (
	"strings"
	"time"
)

// The Redis keys and channels the store uses, all in one place (docs/redis.md
// describes each).

// keys are the keys of one conversation. The hash tag keeps them in one
// cluster slot.
type keys struct{ meta, msgs, log, lease, prefix string }

func keysFor(conv string) keys {
	p := "{c:" + conv + "}:"
	return keys{meta: p + "meta", msgs: p + "msgs", log: p + "log", lease: p + "lease", prefix: p}
}

func (k keys) idem() string     { return k.prefix + "idem" }
func (k keys) presence() string { return k.prefix + "watch" }

// The text of answer node N while it is written is {c:ID}:t:N: only
// scripts use it, and lua/textkey.lua builds its name.

func presenceKey(conv string) string { return keysFor(conv).presence() }

// goneKey is the tombstone a deletion leaves: while it lives, the ID cannot
// be created again (Post refuses it with ErrExists). It carries the
// conversation's hash tag, so the scripts that write and read it run in the
// conversation's slot, but it does not start with it: it is not one of the
// conversation's keys ({c:ID}:*), all of which a deletion removes.
func goneKey(conv string) string { return "parley:gone:{c:" + conv + "}" }

// minTombstoneTTL is the shortest life of a tombstone: longer than an offer
// of the ID can be redeemed (session.OfferTTL, 24 h, plus clock skew), so a
// deleted conversation's offer never creates it again. A tombstone lives
// ConversationTTL (30 days when conversations are kept for ever), never less.
const minTombstoneTTL = 48 * time.Hour

// tombstoneTTL is how long a deleted conversation's ID stays taken.
func (s *Store) tombstoneTTL() time.Duration {
	if s.cfg.ConversationTTL <= 0 {
		return 30 * 24 * time.Hour
	}
	return max(s.cfg.ConversationTTL, minTombstoneTTL)
}

// Channel is the pub/sub channel of a conversation's notices.
func Channel(conv string) string { return "{c:" + conv + "}:n" }

// ConversationOf returns the conversation ID of a notice channel.
func ConversationOf(channel string) (string, bool) {
	rest, ok := strings.CutPrefix(channel, "{c:")
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, "}:n")
	return id, ok && ValidConversationID(id)
}

// OwnerChannel is the pub/sub channel that rings when owner's conversation
// list changes: an entry added or moved up (Touch), a title (SetTitle), a
// deletion (Delete). Its notices carry nothing but "list": the list in Redis
// is the truth, and the receiver reads it again.
func OwnerChannel(owner string) string { return "parley:o:" + owner + ":n" }

// OwnerOf returns the owner of an owner channel.
func OwnerOf(channel string) (string, bool) {
	rest, ok := strings.CutPrefix(channel, "parley:o:")
	if !ok {
		return "", false
	}
	owner, ok := strings.CutSuffix(rest, ":n")
	return owner, ok && owner != ""
}

// ownerKey indexes an owner's conversations by last activity. It lives
// outside any conversation's hash tag, so it is written by its own commands,
// never inside a conversation's script; a stale entry (an expired
// conversation) is dropped when the list is read.
func ownerKey(owner string) string { return "parley:o:" + owner }

// storedKey counts the bytes of text an owner's conversations hold.
func storedKey(owner string) string { return "parley:o:" + owner + ":bytes" }

// gensKey is the one key outside any conversation: a sorted set of the
// conversations with a running generation, scored by lease deadline, so that a
// sweeper can find the leases of dead processes without scanning keys.
const gensKey = "parley:gens"

// Keys a sweep uses besides gensKey, in its cluster slot (the hash tag
// {parley:gens} hashes as the name parley:gens does): see sweepScript.
const (
	sweptKey = "{parley:gens}:swept"
	holdKey  = "{parley:gens}:hold"
)

// rateKey counts the events of one limit of one subject in its window.
func rateKey(limit string, who Subject) string { return "parley:rate:" + limit + ":" + string(who) }

// answersKey holds who's possibly running answers, by conversation, scored
// by when each was reserved.
func answersKey(who Subject) string { return "parley:" + string(who) + ":gens" }

// tokensKey counts the deployment's model tokens on the UTC day of t.
func tokensKey(t time.Time) string { return "parley:tokens:" + t.UTC().Format("2006-01-02") }
