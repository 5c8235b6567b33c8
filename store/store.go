// Package store keeps conversations in Redis: their messages, their event log
// (a Redis Stream whose entry IDs are the viewers' cursors) and the lease of the
// generation writing the current answer. Every write is one Lua script (lua/)
// that also appends to the log and publishes the pub/sub notice, so the log,
// the messages and the notices never disagree. model.go holds the domain
// words, errors.go the errors, keys.go and docs/redis.md every key.
package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

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

// Post is a user message to store, Store.Post's argument.
type Post struct {
	Conv  string // the conversation
	Owner string // the poster's session owner: the owner on Create, else it must be
	Text  string
	Key   string // idempotency key: a second post with it changes nothing
	Gen   string // the generation that will write the answer
	// Model is the deployment's default model: the answer's, unless the
	// conversation has its own (Settings.Model).
	Model string
	// Choice, on Create, is the conversation's model ("" for the default).
	Choice string
	// Create: the conversation must not exist yet, nor have been deleted
	// within its tombstone's life (ErrExists either way), and Owner becomes
	// its owner. Otherwise it must exist (ErrNotFound) and belong to Owner
	// (ErrForbidden).
	Create bool
}

// PostResult says what a post did.
type PostResult struct {
	Duplicate bool   // the idempotency key was seen: nothing new was started
	UserIndex int    // index of the user message (of the first post, for a duplicate)
	Gen       string // the new generation's ID ("" for a duplicate)
	EventID   string
}

// Post stores p.Text as the next user message of p.Conv with an empty answer,
// and takes the lease for generation p.Gen, which the caller must then run,
// in one atomic step: a viewer never sees a user message without its answer
// slot, and a double submit or a post during a running answer cannot start a
// second generation. ErrBusy means an answer is still streaming;
// ErrConversationFull that the conversation holds MaxMessages.
func (s *Store) Post(ctx context.Context, p Post) (PostResult, error) {
	k := keysFor(p.Conv)
	// Tracked before the script, not after it: when the script's reply is
	// lost (a timeout while Redis is slow, which then runs it anyway) nobody
	// runs the generation, and only the sweeper can end its answer. A post
	// that starts nothing leaves an entry the sweeper drops as idle.
	if err := s.track(ctx, p.Conv); err != nil {
		return PostResult{}, err
	}
	res, err := s.runConv(ctx, postScript, p.Conv, []string{k.idem(), goneKey(p.Conv)}, postArgv{
		Create: p.Create, Text: p.Text, Gen: p.Gen,
		LeaseMs: s.cfg.LeaseTTL.Milliseconds(), IdemTTLMs: s.cfg.IdempotencyTTL.Milliseconds(),
		NowMs: time.Now().UnixMilli(), Interrupted: interruptedText,
		Owner: p.Owner, Key: p.Key, MaxMessages: s.cfg.MaxMessages, Model: p.Model, Choice: p.Choice,
	}).StringSlice()
	if err != nil {
		return PostResult{}, fmt.Errorf("post message: %w", err)
	}
	switch res[0] {
	case "ok":
		n, _ := strconv.Atoi(res[1])
		return PostResult{UserIndex: n, Gen: p.Gen, EventID: res[2]}, nil
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

// Ending is how a generation's answer ends, Store.Finish's argument.
type Ending struct {
	Conv, Gen string
	Status    string // StatusDone, StatusStopped, StatusFailed or StatusInterrupted
	Error     string // a message for people, "" when none
	// Cut: the model stopped a done answer at its length limit; the page
	// says so and offers to continue it.
	Cut bool
}

// Finish ends generation e.Gen's answer with e.Status and e.Error, unless
// something else (a stop of a dead generation, the sweeper) ended it first:
// ErrStale then.
func (s *Store) Finish(ctx context.Context, e Ending) error {
	res, err := s.runConv(ctx, finishScript, e.Conv, nil, finishArgv{Gen: e.Gen, Status: e.Status, Err: e.Error, Cut: e.Cut}).StringSlice()
	if err != nil {
		return fmt.Errorf("finish answer: %w", err)
	}
	// Untrack whether or not this call ended it: either way nothing runs now.
	if err := s.rdb.ZRem(ctx, gensKey, e.Conv).Err(); err != nil {
		return fmt.Errorf("untrack generation: %w", err)
	}
	if res[0] == "stale" {
		return ErrStale
	}
	return nil
}

// Stop asks the running generation of conv to stop. The request is stored, so
// it is seen even if the generation was not yet listening for it.
func (s *Store) Stop(ctx context.Context, conv string) (StopResult, error) {
	res, err := s.runConv(ctx, stopScript, conv, nil, nil).Text()
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

// SweepLeases is ExpiredLeases for a sweeper. It also records that a sweep
// ran; when no process had swept for longer than gap (no process could reach
// Redis: a pause, a restart, every process down), it finds nothing for a hold
// of one LeaseTTL and returns how much of the hold is left. Living
// generations re-take their leases in that time (Renew), so that after a
// Redis outage a sweeper ends only the answers of processes that are gone.
// gap must be longer than the sweep interval (see generation.sweepGap).
func (s *Store) SweepLeases(ctx context.Context, now time.Time, limit int64, gap time.Duration) (ids []string, hold time.Duration, err error) {
	a := sweepArgv{NowMs: now.UnixMilli(), Limit: limit, GapMs: max(gap, time.Millisecond).Milliseconds(), HoldMs: s.cfg.LeaseTTL.Milliseconds()}
	res, err := sweepScript.Run(ctx, s.rdb, []string{gensKey, sweptKey, holdKey}, a.list()...).StringSlice()
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
	res, err := s.runConv(ctx, expireScript, conv, nil, expireArgv{Interrupted: interruptedText}).Text()
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
	if len(res) < 10 || (len(res)-10)%9 != 0 {
		return nil, fmt.Errorf("read conversation: malformed reply of %d fields", len(res))
	}
	last, err := ParseID(res[0])
	if err != nil && res[0] != "0-0" {
		return nil, fmt.Errorf("read conversation: bad last id %q", res[0])
	}
	snap := &Snapshot{Last: last, Active: res[2], CursorValid: res[3] == "1", Title: res[5], Owner: res[6],
		Settings: Settings{Model: res[7], InstructionsSet: res[8] == "1", Instructions: res[9]}}
	snap.Count, _ = strconv.Atoi(res[1])
	snap.From, _ = strconv.Atoi(res[4])
	snap.Messages = make([]Message, 0, (len(res)-10)/9)
	for i, f := 0, res[10:]; len(f) >= 9; i, f = i+1, f[9:] {
		m := Message{Index: snap.From + i, Role: f[0], Status: f[1], Text: f[2], Error: f[3], Rev: f[4], Model: f[5], Cut: f[6] == "1"}
		m.Version, _ = strconv.Atoi(f[7])
		m.Versions, _ = strconv.Atoi(f[8])
		snap.Messages = append(snap.Messages, m)
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
