package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Subject is whom a shared limit counts against: a browser (its session
// owner) or a client address. A cookie is free to mint, so every limit that
// protects the operator counts per address too.
type Subject string

// Browser is the subject of a session owner's limits.
func Browser(owner string) Subject { return Subject("o:" + owner) }

// Address is the subject of a client address's limits (clientaddr.Key).
func Address(addr string) Subject { return Subject("a:" + addr) }

// Who says in words whom the subject stands for.
func (s Subject) who() string {
	if len(s) > 2 && s[:2] == "a:" {
		return "address"
	}
	return "browser"
}

// Count counts one event of limit (LimitPosts, LimitConversations,
// LimitActions) by who against max per window, in a fixed window that
// starts with its first event; past max it returns a *LimitError saying when
// the window ends. Every process shares the count. max <= 0 is no limit.
func (s *Store) Count(ctx context.Context, limit string, who Subject, max int, window time.Duration) error {
	return s.CountAll(ctx, Counter{Limit: limit, Who: who, Max: max, Window: window})
}

// Counter is one count of CountAll.
type Counter struct {
	Limit  string
	Who    Subject
	Max    int // <= 0: not counted
	Window time.Duration
}

// CountAll counts one event against each counter, in one round trip (a
// pipeline: on a cluster the client sends each key to its own master), and
// returns the first refusal in the order given. A refused event costs
// nothing on the limits it did not break: their hits are taken back (a
// second round trip, only on refusal), so that a burst refused by the
// per-minute limit does not use up the hour's, nor the address's that other
// people behind it share.
func (s *Store) CountAll(ctx context.Context, counters ...Counter) error {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(counters))
	n := 0
	for i, c := range counters {
		if c.Max <= 0 {
			continue
		}
		cmds[i] = rateScript.Eval(ctx, pipe, []string{rateKey(c.Limit, c.Who)}, c.Window.Milliseconds())
		n++
	}
	if n == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("count: %w", err)
	}
	var refused *LimitError
	var within []string // the counters of limits not broken
	for i, c := range counters {
		if cmds[i] == nil {
			continue
		}
		res, err := cmds[i].Int64Slice()
		if err != nil || len(res) != 2 {
			return fmt.Errorf("count %s: %w", c.Limit, err)
		}
		switch {
		case res[0] <= int64(c.Max):
			within = append(within, rateKey(c.Limit, c.Who))
		case refused == nil:
			refused = &LimitError{Limit: c.Limit, Who: c.Who.who(), RetryAfter: time.Duration(res[1]) * time.Millisecond}
		}
	}
	if refused == nil {
		return nil
	}
	if len(within) > 0 {
		pipe := s.rdb.Pipeline()
		for _, k := range within {
			refundScript.Eval(ctx, pipe, []string{k})
		}
		// Best effort: the refusal stands whatever becomes of the refund.
		_, _ = pipe.Exec(ctx)
	}
	return refused
}

// reserveGrace is how long a fresh reservation counts as running whatever
// its conversation's state: its post may not have reached Redis yet.
const reserveGrace = 15 * time.Second

// ReserveAnswer admits one more answer being written for who: generation
// gen of conv, up to max across all processes; past it it returns a
// *LimitError of LimitAnswers. The reservation is added first and counted
// after, so two requests racing for the last place cannot both get it (at
// worst both are refused). Each answer has its own entry, so ending one never
// drops the next one's in the same conversation. Entries whose answer is not
// running are found idle and dropped here, and a dead process's age out
// after maxDuration, so ReleaseAnswer is prompt, not needed. max <= 0 is no
// limit.
func (s *Store) ReserveAnswer(ctx context.Context, who Subject, conv, gen string, max int, maxDuration time.Duration) error {
	if max <= 0 {
		return nil
	}
	k := answersKey(who)
	member := conv + "/" + gen
	now := time.Now()
	pipe := s.rdb.TxPipeline()
	pipe.ZRemRangeByScore(ctx, k, "-inf", strconv.FormatInt(now.Add(-maxDuration).UnixMilli(), 10))
	pipe.ZAdd(ctx, k, redis.Z{Score: float64(now.UnixMilli()), Member: member})
	pipe.PExpire(ctx, k, maxDuration)
	all := pipe.ZRangeWithScores(ctx, k, 0, -1)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("reserve answer: %w", err)
	}
	var others []redis.Z
	for _, z := range all.Val() {
		if z.Member.(string) != member {
			others = append(others, z)
		}
	}
	// One pipeline for the others' states, not a round trip each.
	states := make([]*redis.SliceCmd, len(others))
	if len(others) > 0 {
		pipe := s.rdb.Pipeline()
		for i, z := range others {
			c, _, _ := strings.Cut(z.Member.(string), "/")
			states[i] = pipe.HMGet(ctx, keysFor(c).meta, "active", "updated")
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("reserve answer: %w", err)
		}
	}
	running := 1 // this one
	var idle []any
	for i, z := range others {
		_, g, _ := strings.Cut(z.Member.(string), "/")
		v := states[i].Val()
		var active, updated string
		if len(v) == 2 {
			active, _ = v[0].(string)
			updated, _ = v[1].(string)
		}
		posted, _ := strconv.ParseInt(updated, 10, 64)
		// Idle: its answer is not the one running there, and either the
		// reservation is old or a post has been stored since (the post sets
		// "updated", from the same process's clock as the score). A fresh
		// reservation whose post has not reached Redis yet still counts; one
		// whose answer already ended does not, so stopping an answer frees
		// its place at once.
		if active != g && (now.Sub(time.UnixMilli(int64(z.Score))) >= reserveGrace || posted >= int64(z.Score)) {
			idle = append(idle, z.Member)
			continue
		}
		running++
	}
	if len(idle) > 0 {
		_ = s.rdb.ZRem(ctx, k, idle...).Err() // best effort: the next reservation drops them again
	}
	if running > max {
		_ = s.rdb.ZRem(ctx, k, member).Err()
		return &LimitError{Limit: LimitAnswers, Who: who.who()}
	}
	return nil
}

// ReleaseAnswer ends the reservation of ReserveAnswer for generation gen of
// conv once its answer has ended (or was never started).
func (s *Store) ReleaseAnswer(ctx context.Context, who Subject, conv, gen string) error {
	if err := s.rdb.ZRem(ctx, answersKey(who), conv+"/"+gen).Err(); err != nil {
		return fmt.Errorf("release answer: %w", err)
	}
	return nil
}

// SpendTokens adds n model tokens to today's count (UTC).
func (s *Store) SpendTokens(ctx context.Context, n int64) error {
	if n <= 0 {
		return nil
	}
	k := tokensKey(time.Now())
	pipe := s.rdb.Pipeline()
	pipe.IncrBy(ctx, k, n)
	pipe.Expire(ctx, k, 48*time.Hour)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("spend tokens: %w", err)
	}
	return nil
}

// CheckTokens refuses a new answer once today's model tokens reached budget
// (<= 0: no budget), with a *LimitError whose RetryAfter is midnight UTC.
func (s *Store) CheckTokens(ctx context.Context, budget int64) error {
	if budget <= 0 {
		return nil
	}
	now := time.Now()
	n, err := s.rdb.Get(ctx, tokensKey(now)).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("read token budget: %w", err)
	}
	if n < budget {
		return nil
	}
	midnight := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	return &LimitError{Limit: LimitTokens, Who: "deployment", RetryAfter: midnight.Sub(now)}
}

// AddStored counts n more bytes of text kept for owner (a message posted, an
// answer written). The count lives as long as a conversation would, from the
// owner's last write; deleting a conversation takes its bytes off. An answer
// written again (Regenerate) is counted again, so the count errs high.
func (s *Store) AddStored(ctx context.Context, owner string, n int64) error {
	if n <= 0 {
		return nil
	}
	k := storedKey(owner)
	pipe := s.rdb.Pipeline()
	pipe.IncrBy(ctx, k, n)
	if s.cfg.ConversationTTL > 0 {
		pipe.PExpire(ctx, k, s.cfg.ConversationTTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("count stored bytes: %w", err)
	}
	return nil
}

// freeStored queues, on pipe, taking n bytes off owner's stored count.
func (s *Store) freeStored(ctx context.Context, pipe redis.Pipeliner, owner string, n int64) {
	if n > 0 {
		a := freeArgv{Bytes: n, TTLMs: s.cfg.ConversationTTL.Milliseconds()}
		freeScript.Eval(ctx, pipe, []string{storedKey(owner)}, a.list()...)
	}
}

// CheckStored refuses a new message once owner keeps max bytes of text
// (<= 0: no limit), with a *LimitError of LimitStored.
func (s *Store) CheckStored(ctx context.Context, owner string, max int64) error {
	if max <= 0 {
		return nil
	}
	n, err := s.rdb.Get(ctx, storedKey(owner)).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("read stored bytes: %w", err)
	}
	if n < max {
		return nil
	}
	return &LimitError{Limit: LimitStored, Who: "browser"}
}

// LastAnswerBytes returns the length of conv's last message (its answer,
// once ended), for AddStored.
func (s *Store) LastAnswerBytes(ctx context.Context, conv string) (int64, error) {
	k := keysFor(conv)
	n, err := lastAnswerScript.Run(ctx, s.rdb, []string{k.meta, k.msgs}).Int64()
	if err != nil {
		return 0, fmt.Errorf("read answer length: %w", err)
	}
	return n, nil
}
