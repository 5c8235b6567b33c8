package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The page's reply lists only the messages not held at their current
// revision, so a reader that caches the rendered HTML of ended messages
// reads only what changed, and the owner comes in the same round trip.

// SnapshotKnown is Snapshot of the whole conversation (no cursor) for a reader
// that already holds some of its messages: held[i] is the revision
// (Message.Rev) of message i that it holds, "" for none. A message still at
// that revision comes back with Known set and only Index and Rev: its text is
// neither read nor sent. Snapshot.Owner is set too.
func (s *Store) SnapshotKnown(ctx context.Context, conv string, held []string) (*Snapshot, error) {
	k := keysFor(conv)
	var revs strings.Builder
	revs.Grow(len(held) * 18) // a revision is about 15 digits
	for i, r := range held {
		if i > 0 {
			revs.WriteByte(' ')
		}
		if r == "" || strings.ContainsRune(r, ' ') {
			r = "-" // held revisions never contain a space; "-" is no revision
		}
		revs.WriteString(r)
	}
	a := pageArgv{NHeld: len(held), HeldRevs: revs.String()}
	res, err := pageScript.Run(ctx, s.rdb, []string{k.meta, k.msgs}, a.list()...).StringSlice()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read conversation: %w", err)
	}
	if len(res) < 8 || (len(res)-8)%10 != 0 {
		return nil, fmt.Errorf("read conversation: malformed reply of %d fields", len(res))
	}
	last, err := ParseID(res[0])
	if err != nil && res[0] != "0-0" {
		return nil, fmt.Errorf("read conversation: bad last id %q", res[0])
	}
	snap := &Snapshot{Last: last, Active: res[2], Title: res[3], Owner: res[4],
		Settings: Settings{Model: res[5], InstructionsSet: res[6] == "1", Instructions: res[7]}}
	snap.Count, _ = strconv.Atoi(res[1])
	snap.Messages = make([]Message, 0, snap.Count)
	f := res[8:]
	for i := range snap.Count {
		if len(f) > 0 && f[0] == strconv.Itoa(i) {
			m := Message{Index: i, Rev: f[1], Role: f[2], Status: f[3], Text: f[4], Error: f[5], Model: f[6], Cut: f[7] == "1"}
			m.Version, _ = strconv.Atoi(f[8])
			m.Versions, _ = strconv.Atoi(f[9])
			snap.Messages = append(snap.Messages, m)
			f = f[10:]
			continue
		}
		// Not listed: the script found it at the revision held.
		if i >= len(held) || held[i] == "" || strings.ContainsRune(held[i], ' ') {
			return nil, fmt.Errorf("read conversation: message %d missing from the reply", i)
		}
		snap.Messages = append(snap.Messages, Message{Index: i, Rev: held[i], Known: true})
	}
	if len(f) > 0 {
		return nil, fmt.Errorf("read conversation: unexpected message %q in the reply", f[0])
	}
	return snap, nil
}
