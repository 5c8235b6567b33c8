package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// More event types: a conversation's title changed, its last answer is being
// written again, a watcher count changed (notice only), it was deleted
// (notice only: the log goes with it).
const (
	EventTitle    = "title"
	EventRegen    = "regen"
	EventPresence = "presence"
	EventDeleted  = "deleted"
)

// MaxTitleRunes bounds a conversation title.
const MaxTitleRunes = 80

// ownerKey indexes an owner's conversations by last activity. It lives
// outside any conversation's hash tag, so it is written by its own commands,
// never inside a conversation's script; a stale entry (an expired
// conversation) is dropped when the list is read.
func ownerKey(owner string) string { return "parley:o:" + owner }

// Meta is what the store knows about a conversation besides its messages.
type Meta struct {
	Owner   string
	Title   string
	Active  string // running generation, "" when none
	Updated time.Time
}

// Meta reads conv's owner, title and state.
func (s *Store) Meta(ctx context.Context, conv string) (Meta, error) {
	v, err := s.rdb.HMGet(ctx, keysFor(conv).meta, "owner", "title", "active", "updated").Result()
	if err != nil {
		return Meta{}, fmt.Errorf("read conversation meta: %w", err)
	}
	if v[0] == nil {
		return Meta{}, ErrNotFound
	}
	str := func(x any) string { s, _ := x.(string); return s }
	ms, _ := strconv.ParseInt(str(v[3]), 10, 64)
	return Meta{Owner: str(v[0]), Title: str(v[1]), Active: str(v[2]), Updated: time.UnixMilli(ms)}, nil
}

// MessageText reads message index of conv as it is stored now: its role and
// its text (an answer's text so far while it is written).
func (s *Store) MessageText(ctx context.Context, conv string, index int) (role, text string, err error) {
	k := keysFor(conv)
	n := strconv.Itoa(index)
	pipe := s.rdb.Pipeline()
	fields := pipe.HMGet(ctx, k.msgs, n+".role", n+".text")
	growing := pipe.Get(ctx, k.prefix+"t:"+n)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return "", "", fmt.Errorf("read message: %w", err)
	}
	v := fields.Val()
	if len(v) < 2 || v[0] == nil {
		return "", "", ErrNotFound
	}
	role, _ = v[0].(string)
	text, _ = v[1].(string)
	if text == "" {
		text = growing.Val()
	}
	return role, text, nil
}

// Summary is one entry of an owner's conversation list.
type Summary struct {
	ID      string
	Title   string
	Updated time.Time
}

// ownerNotice is the payload of an owner notice: only a doorbell.
const ownerNotice = "list"

// publishOwner queues (on a pipeline) or sends the notice that owner's list
// changed.
func (s *Store) publishOwner(ctx context.Context, c redis.Cmdable, owner string) {
	if s.cfg.Sharded {
		c.SPublish(ctx, OwnerChannel(owner), ownerNotice)
	} else {
		c.Publish(ctx, OwnerChannel(owner), ownerNotice)
	}
}

// notifyOwner tells every process with a viewer of owner's list that it
// changed. The write it follows must be done: a process that gets the
// notice reads the list at once.
func (s *Store) notifyOwner(ctx context.Context, owner string) error {
	if owner == "" {
		return nil
	}
	pipe := s.rdb.Pipeline()
	s.publishOwner(ctx, pipe, owner)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("notify the owner's list: %w", err)
	}
	return nil
}

// Touch records that owner used conv now, so it leads their list, and
// rings the owner's channel. On one Redis the notice goes in the same
// pipeline, after the write; on a cluster the key and the channel live in
// different slots, whose commands a pipeline sends to their nodes at once,
// so the notice could overtake the write: it is sent after it.
func (s *Store) Touch(ctx context.Context, owner, conv string) error {
	k := ownerKey(owner)
	pipe := s.rdb.Pipeline()
	pipe.ZAdd(ctx, k, redis.Z{Score: float64(time.Now().UnixMilli()), Member: conv})
	if s.cfg.ConversationTTL > 0 {
		pipe.PExpire(ctx, k, s.cfg.ConversationTTL)
	}
	if !s.cfg.Sharded {
		s.publishOwner(ctx, pipe, owner)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("index conversation: %w", err)
	}
	if s.cfg.Sharded {
		return s.notifyOwner(ctx, owner)
	}
	return nil
}

// List returns owner's newest conversations, at most limit. Conversations
// that expired or were deleted are dropped from the index on the way.
func (s *Store) List(ctx context.Context, owner string, limit int) ([]Summary, error) {
	k := ownerKey(owner)
	zs, err := s.rdb.ZRevRangeWithScores(ctx, k, 0, int64(limit)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("list conversations: %w", err)
	}
	if len(zs) == 0 {
		return nil, nil
	}
	// One pipeline, not a script: the metas live in other cluster slots.
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(zs))
	for i, z := range zs {
		cmds[i] = pipe.HMGet(ctx, keysFor(z.Member.(string)).meta, "owner", "title")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("list conversations: %w", err)
	}
	out := make([]Summary, 0, len(zs))
	var gone []any
	for i, z := range zs {
		id := z.Member.(string)
		v := cmds[i].Val()
		if len(v) < 2 || v[0] != owner {
			gone = append(gone, id)
			continue
		}
		title, _ := v[1].(string)
		out = append(out, Summary{ID: id, Title: title, Updated: time.UnixMilli(int64(z.Score))})
	}
	if len(gone) > 0 {
		// Best effort: a failure leaves entries that the next read drops again.
		_ = s.rdb.ZRem(ctx, k, gone...).Err()
	}
	return out, nil
}

// CleanTitle makes a title of text: one line, trimmed, at most MaxTitleRunes.
func CleanTitle(text string) string {
	// A form can carry any bytes; a title must be text (the page, the
	// notices' JSON and the sidebar must all show the same one).
	t := strings.Join(strings.Fields(strings.ToValidUTF8(text, "\uFFFD")), " ")
	t = strings.Trim(t, "\"'`*#_ ")
	if utf8.RuneCountInString(t) > MaxTitleRunes {
		r := []rune(t)[:MaxTitleRunes-1]
		t = strings.TrimRight(string(r), " ,.;:-") + "…"
	}
	return t
}

// titleScript sets the title and logs it, so every tab shows it live and a
// page that reconnects gets it in its catch-up. It returns the owner, whose
// list shows the title: the caller rings the owner's channel, which is
// outside the conversation's slot.
//
// ARGV[5] title, [6] "1" to set it only when there is none yet (a generated
// title never overwrites one the owner chose), [7] required owner or "".
var titleScript = redis.NewScript(prelude + `
if redis.call('EXISTS', meta) == 0 then return {'notfound'} end
local owner = redis.call('HGET', meta, 'owner') or ''
if ARGV[7] ~= '' and owner ~= ARGV[7] then return {'forbidden'} end
if ARGV[6] == '1' and (redis.call('HGET', meta, 'title') or '') ~= '' then return {'kept'} end
local id = emit({'t', 'title', 'x', ARGV[5]}, {t = 'title', x = ARGV[5]})
redis.call('HSET', meta, 'title', ARGV[5])
touch()
return {'ok', id, owner}
`)

// SetTitle gives conv a title, and rings its owner's channel so that the
// owner's other tabs list it. With owner set, only that owner may; with
// ifEmpty, an existing title is kept (ok is then false). When only the
// notice fails, ok is true and err says so.
func (s *Store) SetTitle(ctx context.Context, conv, owner, title string, ifEmpty bool) (ok bool, err error) {
	ks, args := s.common(conv)
	keep := "0"
	if ifEmpty {
		keep = "1"
	}
	args = append(args, CleanTitle(title), keep, owner)
	res, err := titleScript.Run(ctx, s.rdb, ks, args...).StringSlice()
	if err != nil {
		return false, fmt.Errorf("set title: %w", err)
	}
	switch res[0] {
	case "ok":
		if len(res) < 3 {
			return true, fmt.Errorf("set title: reply without the owner: %q", res)
		}
		return true, s.notifyOwner(ctx, res[2])
	case "kept":
		return false, nil
	case "notfound":
		return false, ErrNotFound
	case "forbidden":
		return false, ErrForbidden
	}
	return false, fmt.Errorf("set title: unexpected reply %q", res[0])
}

// regenScript writes the last answer again with generation ARGV[6]: its text
// is cleared, it is streaming again, and the lease is taken, in one step. The
// caller names the revision of the answer it saw (ARGV[7]); if the answer has
// changed since (a double click already regenerated it), nothing happens, so
// the button is idempotent like the composer.
//
// ARGV[5] owner, [6] generation, [7] expected rev of the last answer,
// [8] lease ms, [9] error text for an answer whose generation died.
var regenScript = redis.NewScript(prelude + `
if redis.call('EXISTS', meta) == 0 then return {'notfound'} end
if redis.call('HGET', meta, 'owner') ~= ARGV[5] then return {'forbidden'} end
local active = redis.call('HGET', meta, 'active') or ''
if active ~= '' then
  if redis.call('EXISTS', lease) == 1 then return {'busy'} end
  finish(redis.call('HGET', meta, 'amsg'), active, 'interrupted', ARGV[9])
end
local n = tonumber(redis.call('HGET', meta, 'count') or '0') - 1
if n < 1 or redis.call('HGET', msgs, n .. '.role') ~= 'assistant' then return {'nothing'} end
if redis.call('HGET', msgs, n .. '.rev') ~= ARGV[7] then return {'dup'} end
local gen = ARGV[6]
local id = emit({'t', 'regen', 'm', n, 'g', gen}, {t = 'regen', m = n, g = gen})
redis.call('DEL', textkey(n))
redis.call('HSET', msgs, n .. '.text', '', n .. '.status', 'streaming', n .. '.error', '', n .. '.rev', id, n .. '.gen', gen)
redis.call('HSET', meta, 'active', gen, 'amsg', n, 'stop', '')
redis.call('SET', lease, gen, 'PX', ARGV[8])
touch()
return {'ok', id}
`)

// ErrNothingToRegenerate: the conversation has no answer to write again.
var ErrNothingToRegenerate = errors.New("no answer to regenerate")

// Regenerate clears the last answer of conv and takes the lease for
// generation gen, which the caller must then run. rev is the answer's
// revision as the caller saw it (Message.Rev): a repeated request for the same
// revision does nothing and reports started=false.
func (s *Store) Regenerate(ctx context.Context, conv, owner, gen, rev string) (started bool, err error) {
	ks, args := s.common(conv)
	args = append(args, owner, gen, rev, s.cfg.LeaseTTL.Milliseconds(), interruptedText)
	// Tracked first, as in Post: a reply lost after the script ran must
	// still leave the answer to the sweeper.
	if err := s.track(ctx, conv); err != nil {
		return false, err
	}
	res, err := regenScript.Run(ctx, s.rdb, ks, args...).StringSlice()
	if err != nil {
		return false, fmt.Errorf("regenerate: %w", err)
	}
	switch res[0] {
	case "ok":
		return true, nil
	case "dup":
		return false, nil
	case "notfound":
		return false, ErrNotFound
	case "forbidden":
		return false, ErrForbidden
	case "busy":
		return false, ErrBusy
	case "nothing":
		return false, ErrNothingToRegenerate
	}
	return false, fmt.Errorf("regenerate: unexpected reply %q", res[0])
}

// deleteScript removes every key of a conversation (see docs/redis.md) and
// rings the doorbell so that open pages say so.
//
// ARGV[5] owner, [6] now (ms), [7] the tombstone's life (ms). KEYS[5]
// presence hash, [6] tombstone: set to the deletion time, it makes the post
// script refuse to create the ID again.
var deleteScript = redis.NewScript(prelude + `
if redis.call('EXISTS', meta) == 0 then return 'notfound' end
if redis.call('HGET', meta, 'owner') ~= ARGV[5] then return 'forbidden' end
local count = tonumber(redis.call('HGET', meta, 'count') or '0')
for i = 0, count - 1 do redis.call('DEL', textkey(i)) end
local bytes = 0
for i = 0, count - 1 do bytes = bytes + redis.call('HSTRLEN', msgs, i .. '.text') end
redis.call('DEL', meta, msgs, log, lease, KEYS[5], string.sub(meta, 1, #meta - 4) .. 'idem')
redis.call('SET', KEYS[6], ARGV[6], 'PX', ARGV[7])
redis.call(pubcmd, channel, cjson.encode({t = 'deleted'}))
return 'ok:' .. bytes
`)

// Delete removes conv and everything stored for it. Only its owner may. It
// leaves a tombstone (goneKey) in the same step, so that the ID is never
// created again while an offer of it could be redeemed.
func (s *Store) Delete(ctx context.Context, conv, owner string) error {
	ks, args := s.common(conv)
	ks = append(ks, presenceKey(conv), goneKey(conv))
	args = append(args, owner, time.Now().UnixMilli(), s.tombstoneTTL().Milliseconds())
	res, err := deleteScript.Run(ctx, s.rdb, ks, args...).Text()
	if err != nil {
		return fmt.Errorf("delete conversation: %w", err)
	}
	rest, ok := strings.CutPrefix(res, "ok:")
	freed, perr := strconv.ParseInt(rest, 10, 64)
	switch {
	case res == "notfound":
		return ErrNotFound
	case res == "forbidden":
		return ErrForbidden
	case !ok || perr != nil:
		return fmt.Errorf("delete conversation: unexpected reply %q", res)
	}
	// Outside the conversation's slot: best effort, both are self-cleaning
	// (the list drops missing conversations, the sweeper missing leases).
	// The owner's notice follows the ZREM in the pipeline on one Redis; on
	// a cluster it could overtake it (see Touch), which does no harm here:
	// a list read drops a conversation whose keys are gone.
	pipe := s.rdb.Pipeline()
	pipe.ZRem(ctx, ownerKey(owner), conv)
	pipe.ZRem(ctx, gensKey, conv)
	s.freeStored(ctx, pipe, owner, freed)
	s.publishOwner(ctx, pipe, owner)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("unindex deleted conversation: %w", err)
	}
	return nil
}

func presenceKey(conv string) string { return keysFor(conv).prefix + "watch" }

// presenceScript records how many viewers process ARGV[5] has on the
// conversation, until ARGV[7] (ms), drops counts of processes that stopped
// refreshing, and publishes the total. It writes nothing to the log: who is
// watching is not part of the conversation, and a page that misses a count
// gets the next one.
//
// KEYS[1] presence hash, ARGV: pubcmd, channel, process, count, ttl ms.
var presenceScript = redis.NewScript(`
local key = KEYS[1]
local pubcmd, channel, proc, n, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
-- Redis's clock, not the callers': processes' clocks may disagree.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if n > 0 then
  redis.call('HSET', key, proc, n .. ':' .. (now + ttl))
else
  redis.call('HDEL', key, proc)
end
local total = 0
local all = redis.call('HGETALL', key)
for i = 1, #all, 2 do
  local c, exp = string.match(all[i + 1], '^(%d+):(%d+)$')
  if c and tonumber(exp) > now then
    total = total + tonumber(c)
  else
    redis.call('HDEL', key, all[i])
  end
end
if total > 0 then redis.call('PEXPIRE', key, ttl) end
redis.call(pubcmd, channel, cjson.encode({t = 'presence', n = total}))
return total
`)

// Presence records that process proc has n viewers of conv for the next ttl,
// and returns (and publishes to every process) the total across processes.
func (s *Store) Presence(ctx context.Context, conv, proc string, n int, ttl time.Duration) (int, error) {
	pub := "PUBLISH"
	if s.cfg.Sharded {
		pub = "SPUBLISH"
	}
	total, err := presenceScript.Run(ctx, s.rdb, []string{presenceKey(conv)},
		pub, Channel(conv), proc, n, ttl.Milliseconds()).Int()
	if err != nil {
		return 0, fmt.Errorf("record presence: %w", err)
	}
	return total, nil
}

// rateScript counts one hit in a fixed window that starts with the first hit.
var rateScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
`)

// reserveGrace is how long a fresh reservation counts as running whatever
// its conversation's state: its post may not have reached Redis yet.
const reserveGrace = 15 * time.Second
