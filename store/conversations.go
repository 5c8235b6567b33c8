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

// Meta reads conv's owner, title and state.
func (s *Store) Meta(ctx context.Context, conv string) (Meta, error) {
	v, err := s.rdb.HMGet(ctx, keysFor(conv).meta, "owner", "title", "active", "updated", "tprov").Result()
	if err != nil {
		return Meta{}, fmt.Errorf("read conversation meta: %w", err)
	}
	if v[0] == nil {
		return Meta{}, ErrNotFound
	}
	str := func(x any) string { s, _ := x.(string); return s }
	ms, _ := strconv.ParseInt(str(v[3]), 10, 64)
	return Meta{Owner: str(v[0]), Title: str(v[1]), Active: str(v[2]), Updated: time.UnixMilli(ms),
		TitleProvisional: str(v[4]) == "1"}, nil
}

// MessageText reads message index of conv as it is stored now: its role and
// its text (an answer's text so far while it is written).
func (s *Store) MessageText(ctx context.Context, conv string, index int) (role, text string, err error) {
	k := keysFor(conv)
	res, err := messageScript.Run(ctx, s.rdb, []string{k.meta, k.msgs}, index).StringSlice()
	if errors.Is(err, redis.Nil) {
		return "", "", ErrNotFound
	}
	if err != nil || len(res) != 2 {
		return "", "", fmt.Errorf("read message: %w (%d fields)", err, len(res))
	}
	return res[0], res[1], nil
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
func (s *Store) Touch(ctx context.Context, conv, owner string) error {
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
	list, _, err := s.ListFrom(ctx, owner, 0, limit)
	return list, err
}

// ListFrom returns at most limit of owner's conversations, newest first,
// skipping the offset newest, and whether there are older ones. Entries it
// drops (expired: the oldest, at the list's end) shift later offsets, which
// at worst hides as many conversations from the next page until a reload.
func (s *Store) ListFrom(ctx context.Context, owner string, offset, limit int) ([]Summary, bool, error) {
	list, more, _, err := s.window(ctx, owner, offset, limit)
	return list, more, err
}

// window is ListFrom that also says how many entries it removed from the
// index.
func (s *Store) window(ctx context.Context, owner string, offset, limit int) ([]Summary, bool, int, error) {
	zs, err := s.rdb.ZRevRangeWithScores(ctx, ownerKey(owner), int64(offset), int64(offset+limit)).Result()
	if err != nil {
		return nil, false, 0, fmt.Errorf("list conversations: %w", err)
	}
	more := len(zs) > limit
	if more {
		zs = zs[:limit]
	}
	list, removed, err := s.summaries(ctx, owner, zs)
	return list, more, removed, err
}

// searchScan is how many of an owner's newest conversations Search reads:
// its cost is one meta read each, and past that a person looks by date.
const searchScan = 1000

// Search returns at most limit of owner's conversations whose title holds
// every word of query, in any order and ignoring letters' case, newest
// first, from the searchScan newest.
func (s *Store) Search(ctx context.Context, owner, query string, limit int) ([]Summary, error) {
	const page = 200
	words := strings.Fields(strings.ToLower(query))
	var out []Summary
	// Each window reads page entries, or removes some: a bounded number
	// of windows, whatever the index holds.
	for offset, read, n := 0, 0, 0; read < searchScan && len(out) < limit && n < 2*searchScan/page; n++ {
		list, more, dropped, err := s.window(ctx, owner, offset, page)
		if err != nil {
			return nil, fmt.Errorf("search conversations: %w", err)
		}
		// Removed entries left the index: the next window starts that
		// much earlier, so that nothing is skipped.
		offset += page - dropped
		read += len(list)
		for _, c := range list {
			if holdsAll(strings.ToLower(c.Title), words) && len(out) < limit {
				out = append(out, c)
			}
		}
		if !more {
			break
		}
	}
	return out, nil
}

// holdsAll reports whether title holds every one of words.
func holdsAll(title string, words []string) bool {
	for _, w := range words {
		if !strings.Contains(title, w) {
			return false
		}
	}
	return true
}

// summaries reads the titles of the index entries zs. Conversations that
// expired or were deleted are removed from the index on the way; it returns
// how many were (none when the removal failed).
func (s *Store) summaries(ctx context.Context, owner string, zs []redis.Z) ([]Summary, int, error) {
	if len(zs) == 0 {
		return nil, 0, nil
	}
	// One pipeline, not a script: the metas live in other cluster slots.
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(zs))
	for i, z := range zs {
		cmds[i] = pipe.HMGet(ctx, keysFor(z.Member.(string)).meta, "owner", "title")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, fmt.Errorf("list conversations: %w", err)
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
	removed := 0
	if len(gone) > 0 {
		// Best effort: a failure leaves entries that the next read drops again.
		if n, err := s.rdb.ZRem(ctx, ownerKey(owner), gone...).Result(); err == nil {
			removed = int(n)
		}
	}
	return out, removed, nil
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

// Title is a title to give a conversation, Store.SetTitle's argument.
type Title struct {
	Conv  string
	Owner string // only this owner may set it; "" lets anyone (the title generator)
	Text  string // cleaned with CleanTitle
	// IfEmpty keeps a title the conversation has, unless it is
	// provisional: a generated title never overwrites one the owner chose.
	IfEmpty bool
	// Provisional: a title made while no answer had text (the first
	// message's first words); the first answer with text may replace it.
	Provisional bool
}

// SetTitle gives t.Conv a title, logs it so every tab shows it live and a
// page that reconnects gets it in its catch-up, and rings its owner's
// channel so that the owner's other tabs list it. ok is false when
// t.IfEmpty kept an existing title. When only the notice fails, ok is true
// and err says so.
func (s *Store) SetTitle(ctx context.Context, t Title) (ok bool, err error) {
	res, err := s.runConv(ctx, titleScript, t.Conv, nil,
		titleArgv{Title: CleanTitle(t.Text), IfEmpty: t.IfEmpty, WantOwner: t.Owner, Provisional: t.Provisional}).StringSlice()
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

// Delete removes conv and everything stored for it. Only its owner may. It
// leaves a tombstone (goneKey) in the same step, so that the ID is never
// created again while an offer of it could be redeemed.
func (s *Store) Delete(ctx context.Context, conv, owner string) error {
	res, err := s.runConv(ctx, deleteScript, conv, []string{presenceKey(conv), goneKey(conv)}, deleteArgv{
		Owner: owner, NowMs: time.Now().UnixMilli(), GoneMs: s.tombstoneTTL().Milliseconds(),
	}).Text()
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

// Presence records that process proc has n viewers of conv for the next ttl,
// and returns (and publishes to every process) the total across processes.
func (s *Store) Presence(ctx context.Context, conv, proc string, n int, ttl time.Duration) (int, error) {
	a := presenceArgv{PubCmd: s.pubCmd(), Channel: Channel(conv), Proc: proc, N: n, TTLMs: ttl.Milliseconds()}
	total, err := presenceScript.Run(ctx, s.rdb, []string{presenceKey(conv)}, a.list()...).Int()
	if err != nil {
		return 0, fmt.Errorf("record presence: %w", err)
	}
	return total, nil
}
