// Package store keeps conversations in Redis: their messages, their event log
// (a Redis Stream whose entry IDs are the viewers' cursors) and the lease of the
// generation writing the current answer. Every write is one Lua script that
// also appends to the log and publishes the pub/sub notice, so the log, the
// messages and the notices never disagree. docs/redis.md lists every key.
package store

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Message statuses. A user message is always done; an assistant message is
// streaming until its generation ends in exactly one of the others.
const (
	StatusStreaming   = "streaming"
	StatusDone        = "done"
	StatusStopped     = "stopped"
	StatusFailed      = "failed"
	StatusInterrupted = "interrupted"
)

// Event types, as written to the log and carried by notices.
const (
	EventMessage = "message" // a user message and its empty answer were added
	EventDelta   = "delta"   // text was appended to an answer
	EventEnd     = "end"     // an answer ended
	EventStop    = "stop"    // a stop was requested (notice only, never logged)
)

// Errors the store returns; handlers map them to HTTP statuses.
var (
	ErrNotFound = errors.New("conversation not found")
	ErrBusy     = errors.New("an answer is still being written")
	ErrStale    = errors.New("generation no longer owns the answer")
	ErrExists   = errors.New("conversation already exists")
	// ErrConversationFull: the conversation holds Config.MaxMessages.
	ErrConversationFull = errors.New("conversation is at its length limit")
	// ErrForbidden: only the conversation's owner may change it.
	ErrForbidden = errors.New("conversation belongs to someone else")
)

// interruptedText is what people see on an answer whose process died.
const interruptedText = "The server writing this answer went away; the text so far is kept."

// Config holds the limits and lifetimes the store enforces.
type Config struct {
	LogMaxLen       int64         // approximate entries kept per conversation log (XADD MAXLEN ~)
	ConversationTTL time.Duration // idle conversations expire after this; 0 keeps them
	LeaseTTL        time.Duration // a generation that does not renew for this long is dead
	MaxAnswerBytes  int           // an answer stops growing at this size
	// MaxMessages bounds a conversation (each post adds two messages), and
	// so every page load, snapshot and model request of it; 0 is no limit.
	MaxMessages    int
	IdempotencyTTL time.Duration // how long a post's idempotency key is remembered
	Sharded        bool          // publish with SPUBLISH (Redis Cluster) instead of PUBLISH
}

// Store reads and writes conversations. It is safe for concurrent use.
type Store struct {
	rdb redis.UniversalClient
	cfg Config
}

// New returns a Store over rdb.
func New(rdb redis.UniversalClient, cfg Config) *Store {
	return &Store{rdb: rdb, cfg: cfg}
}

// Config returns the limits the store was built with.
func (s *Store) Config() Config { return s.cfg }

// Event is one entry of a conversation's log as carried by a pub/sub notice.
// ID and Prev let a receiver check that it missed nothing in between.
type Event struct {
	ID     string `json:"i,omitempty"`
	Prev   string `json:"p,omitempty"`
	Type   string `json:"t"`
	Msg    int    `json:"m,omitempty"`
	Text   string `json:"x,omitempty"`
	Status string `json:"s,omitempty"`
	Error  string `json:"e,omitempty"`
	Gen    string `json:"g,omitempty"`
	N      int    `json:"n,omitempty"` // presence: people watching
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

// Message is one message of a conversation.
type Message struct {
	Index  int
	Role   string // "user" or "assistant"
	Status string
	Text   string
	Error  string
	Rev    string // ID of the last log entry that changed it
	// Known: the reader holds this revision (SnapshotKnown), so only Index
	// and Rev are set.
	Known bool
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
}

// Keys of one conversation. The hash tag keeps them in one cluster slot.
type keys struct{ meta, msgs, log, lease, prefix string }

func keysFor(conv string) keys {
	p := "{c:" + conv + "}:"
	return keys{meta: p + "meta", msgs: p + "msgs", log: p + "log", lease: p + "lease", prefix: p}
}

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

// gensKey is the one key outside any conversation: a sorted set of the
// conversations with a running generation, scored by lease deadline, so that a
// sweeper can find the leases of dead processes without scanning keys.
const gensKey = "parley:gens"

// idLen is the length of NewID's output: 128 random bits in base32.
const idLen = 26

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a new unguessable identifier (128 random bits), used for
// conversations, generations and idempotency keys.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return idEncoding.EncodeToString(b[:])
}

// ValidConversationID reports whether id could have come from NewID. Anything
// else is rejected before it reaches a Redis key.
func ValidConversationID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// common builds the keys and arguments every write script starts with.
func (s *Store) common(conv string) ([]string, []any) {
	k := keysFor(conv)
	pub := "PUBLISH"
	if s.cfg.Sharded {
		pub = "SPUBLISH"
	}
	return []string{k.meta, k.msgs, k.log, k.lease},
		[]any{pub, Channel(conv), s.cfg.LogMaxLen, s.cfg.ConversationTTL.Milliseconds()}
}

// PostResult says what a post did.
type PostResult struct {
	Duplicate bool   // the idempotency key was seen: nothing new was started
	UserIndex int    // index of the user message (of the first post, for a duplicate)
	Gen       string // the new generation's ID ("" for a duplicate)
	EventID   string
}

// Post stores text as the next user message of conv with an empty answer, and
// takes the lease for generation gen, which the caller must then run. key makes
// the post idempotent: a second post with the same key changes nothing. With
// create, the conversation must not exist yet, nor have been deleted within
// its tombstone's life (ErrExists either way), and owner becomes its owner; otherwise it must exist (ErrNotFound) and belong to owner
// (ErrForbidden). ErrBusy means an answer is still streaming.
func (s *Store) Post(ctx context.Context, conv, owner, text, key, gen string, create bool) (PostResult, error) {
	ks, args := s.common(conv)
	ks = append(ks, keysFor(conv).prefix+"idem", goneKey(conv))
	createArg := "0"
	if create {
		createArg = "1"
	}
	args = append(args, createArg, text, gen, s.cfg.LeaseTTL.Milliseconds(),
		s.cfg.IdempotencyTTL.Milliseconds(), time.Now().UnixMilli(), interruptedText, owner, key, s.cfg.MaxMessages)
	// Tracked before the script, not after it: when the script's reply is
	// lost (a timeout while Redis is slow, which then runs it anyway) nobody
	// runs the generation, and only the sweeper can end its answer. A post
	// that starts nothing leaves an entry the sweeper drops as idle.
	if err := s.track(ctx, conv); err != nil {
		return PostResult{}, err
	}
	res, err := postScript.Run(ctx, s.rdb, ks, args...).StringSlice()
	if err != nil {
		return PostResult{}, fmt.Errorf("post message: %w", err)
	}
	switch res[0] {
	case "ok":
		n, _ := strconv.Atoi(res[1])
		return PostResult{UserIndex: n, Gen: gen, EventID: res[2]}, nil
	case "dup":
		n, _ := strconv.Atoi(res[1])
		return PostResult{Duplicate: true, UserIndex: n}, nil
	case "exists":
		return PostResult{}, ErrExists
	case "notfound":
		return PostResult{}, ErrNotFound
	case "busy":
		return PostResult{}, ErrBusy
	case "forbidden":
		return PostResult{}, ErrForbidden
	case "full":
		return PostResult{}, ErrConversationFull
	}
	return PostResult{}, fmt.Errorf("post message: unexpected reply %q", res[0])
}

// track registers conv's running generation with the sweeper, scored by its
// lease deadline. It is a separate command from the script because gensKey
// lives outside the conversation's cluster slot; if it is lost the lease still
// expires, and posting or stopping ends a dead generation too.
func (s *Store) track(ctx context.Context, conv string) error {
	deadline := time.Now().Add(s.cfg.LeaseTTL).UnixMilli()
	if err := s.rdb.ZAdd(ctx, gensKey, redis.Z{Score: float64(deadline), Member: conv}).Err(); err != nil {
		return fmt.Errorf("track generation: %w", err)
	}
	return nil
}

// AppendResult says what happened to an append.
type AppendResult int

const (
	Appended      AppendResult = iota // the text is stored and published
	StopRequested                     // a stop was requested: nothing appended, finish as stopped
	Full                              // the answer would exceed MaxAnswerBytes: nothing appended
)

// Append adds text to the answer of generation gen, appends the delta event
// and publishes it, in one round trip; it renews gen's lease as Renew does.
// ErrStale means gen's answer was ended or superseded: it must stop without
// writing anything more.
func (s *Store) Append(ctx context.Context, conv, gen, text string) (AppendResult, string, error) {
	return s.AppendAt(ctx, conv, gen, text, time.Time{})
}

// AppendAt is Append for text the generation got at time got: the notice
// carries it, so that whichever process writes the frame to a viewer can
// measure the latency from token to frame. Its cost does not grow with the
// answer: the text is appended to a key of its own.
func (s *Store) AppendAt(ctx context.Context, conv, gen, text string, got time.Time) (AppendResult, string, error) {
	res, id, _, err := s.AppendFrom(ctx, conv, gen, text, -1, got)
	return res, id, err
}

// AppendFrom is AppendAt for a writer that knows the answer's length before
// text (offset; -1 when it does not). A retry of a batch whose reply was lost
// then appends only the part that is not stored yet, so retrying after any
// error never doubles text. It returns the answer's length after the append.
func (s *Store) AppendFrom(ctx context.Context, conv, gen, text string, offset int, got time.Time) (res AppendResult, id string, length int, err error) {
	ks, args := s.appendArgs(AppendCall{Conv: conv, Gen: gen, Text: text, Offset: offset, Got: got})
	r := parseAppend(appendScript.Run(ctx, s.rdb, ks, args...))
	return r.Result, r.ID, r.Length, r.Err
}

// Finish ends generation gen's answer with status and a message for people
// (errText, "" when none). ErrStale means something else already ended it.
func (s *Store) Finish(ctx context.Context, conv, gen, status, errText string) error {
	ks, args := s.common(conv)
	args = append(args, gen, status, errText)
	res, err := finishScript.Run(ctx, s.rdb, ks, args...).StringSlice()
	if err != nil {
		return fmt.Errorf("finish answer: %w", err)
	}
	// Untrack whether or not this call ended it: either way nothing runs now.
	if err := s.rdb.ZRem(ctx, gensKey, conv).Err(); err != nil {
		return fmt.Errorf("untrack generation: %w", err)
	}
	if res[0] == "stale" {
		return ErrStale
	}
	return nil
}

// Renew extends gen's lease and reports whether a stop was requested. A
// lease that ran out (Redis was unreachable for longer than it) is taken
// again if gen's answer is still running. ErrStale means the answer was
// ended or superseded: the generation must stop writing.
func (s *Store) Renew(ctx context.Context, conv, gen string) (stop bool, err error) {
	ks, args := s.common(conv)
	args = append(args, gen, s.cfg.LeaseTTL.Milliseconds())
	res, err := renewScript.Run(ctx, s.rdb, ks, args...).Text()
	if err != nil {
		return false, fmt.Errorf("renew lease: %w", err)
	}
	if err := s.track(ctx, conv); err != nil {
		return false, err
	}
	switch res {
	case "ok":
		return false, nil
	case "stop":
		return true, nil
	}
	return false, ErrStale
}

// StopResult says what a stop did.
type StopResult int

const (
	StopIdle      StopResult = iota // nothing was running
	StopSent                        // the running generation was asked to stop
	StopFinalized                   // the generation was dead; its answer is now stopped
)

// Stop asks the running generation of conv to stop. The request is stored, so
// it is seen even if the generation was not yet listening for it.
func (s *Store) Stop(ctx context.Context, conv string) (StopResult, error) {
	ks, args := s.common(conv)
	res, err := stopScript.Run(ctx, s.rdb, ks, args...).Text()
	if err != nil {
		return 0, fmt.Errorf("stop answer: %w", err)
	}
	switch res {
	case "notfound":
		return 0, ErrNotFound
	case "idle":
		return StopIdle, nil
	case "requested":
		return StopSent, nil
	case "stopped":
		return StopFinalized, nil
	}
	return 0, fmt.Errorf("stop answer: unexpected reply %q", res)
}

// ExpiredLeases returns conversations whose generation lease deadline has passed.
func (s *Store) ExpiredLeases(ctx context.Context, now time.Time, limit int64) ([]string, error) {
	ids, err := s.rdb.ZRangeByScore(ctx, gensKey, &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: limit,
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("list expired leases: %w", err)
	}
	return ids, nil
}

// Keys a sweep uses besides gensKey, in its cluster slot (the hash tag
// {parley:gens} hashes as the name parley:gens does): see sweepScript.
const (
	sweptKey = "{parley:gens}:swept"
	holdKey  = "{parley:gens}:hold"
)

// SweepLeases is ExpiredLeases for a sweeper. It also records that a sweep
// ran; when no process had swept for longer than gap (no process could reach
// Redis: a pause, a restart, every process down), it finds nothing for a hold
// of one LeaseTTL and returns how much of the hold is left. Living
// generations re-take their leases in that time (Renew), so that after a
// Redis outage a sweeper ends only the answers of processes that are gone.
// gap must be longer than the sweep interval (see generation.sweepGap).
func (s *Store) SweepLeases(ctx context.Context, now time.Time, limit int64, gap time.Duration) (ids []string, hold time.Duration, err error) {
	res, err := sweepScript.Run(ctx, s.rdb, []string{gensKey, sweptKey, holdKey},
		now.UnixMilli(), limit, max(gap, time.Millisecond).Milliseconds(), s.cfg.LeaseTTL.Milliseconds()).StringSlice()
	if err != nil {
		return nil, 0, fmt.Errorf("list expired leases: %w", err)
	}
	if len(res) == 0 {
		return nil, 0, fmt.Errorf("list expired leases: empty reply")
	}
	ms, _ := strconv.ParseInt(res[0], 10, 64)
	return res[1:], time.Duration(ms) * time.Millisecond, nil
}

// Expire ends conv's running generation as interrupted if its lease is gone,
// and reports whether it did. A generation that is still alive is left alone
// (and stays tracked: its next renewal moves its deadline).
func (s *Store) Expire(ctx context.Context, conv string) (bool, error) {
	ks, args := s.common(conv)
	args = append(args, interruptedText)
	res, err := expireScript.Run(ctx, s.rdb, ks, args...).Text()
	if err != nil {
		return false, fmt.Errorf("expire generation: %w", err)
	}
	if res != "alive" {
		if err := s.rdb.ZRem(ctx, gensKey, conv).Err(); err != nil {
			return false, fmt.Errorf("untrack generation: %w", err)
		}
	}
	return res == "interrupted", nil
}

// Snapshot reads conv as of its newest log entry, with every message changed
// after cursor. An empty or invalid cursor (not an entry of the log: forged,
// expired or trimmed) returns every message, so the caller can replace the
// whole page state.
func (s *Store) Snapshot(ctx context.Context, conv string, cursor ID) (*Snapshot, error) {
	k := keysFor(conv)
	c := ""
	if !cursor.IsZero() {
		c = cursor.String()
	}
	res, err := snapshotScript.Run(ctx, s.rdb, []string{k.meta, k.msgs, k.log}, c).StringSlice()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read conversation: %w", err)
	}
	if len(res) < 7 || (len(res)-7)%5 != 0 {
		return nil, fmt.Errorf("read conversation: malformed reply of %d fields", len(res))
	}
	last, err := ParseID(res[0])
	if err != nil && res[0] != "0-0" {
		return nil, fmt.Errorf("read conversation: bad last id %q", res[0])
	}
	snap := &Snapshot{Last: last, Active: res[2], CursorValid: res[3] == "1", Title: res[5], Owner: res[6]}
	snap.Count, _ = strconv.Atoi(res[1])
	snap.From, _ = strconv.Atoi(res[4])
	snap.Messages = make([]Message, 0, (len(res)-7)/5)
	for i, f := 0, res[7:]; len(f) >= 5; i, f = i+1, f[5:] {
		snap.Messages = append(snap.Messages, Message{
			Index: snap.From + i, Role: f[0], Status: f[1], Text: f[2], Error: f[3], Rev: f[4],
		})
	}
	return snap, nil
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping redis: %w", err)
	}
	return nil
}
