package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// pageScript reads a whole conversation for a page, atomically, skipping the
// messages the reader already holds. ARGV[1] is how many messages it holds
// and ARGV[2] their revisions, by index, joined by spaces ("-" for a message
// it does not hold: revisions have no spaces). The reply lists only the
// messages not held at their current revision, each as index, rev, role,
// status, text, error; the others are unchanged since the reader got them.
// So a reader that caches the rendered HTML of ended messages reads only
// what changed, and the owner comes in the same round trip.
//
// A Lua call costs more than the lookups it makes: fields are read with a
// few HMGETs of many fields rather than one per message, and when the held
// revisions are a prefix of the conversation's (nothing changed, or
// messages were added: the common case) one string comparison settles it.
//
// KEYS: meta, msgs. Returns nil when the conversation does not exist, else
// {last, count, active, title, owner, then the messages as above}.
var pageScript = redis.NewScript(textKeyLua + `
local meta, msgs = KEYS[1], KEYS[2]
if redis.call('EXISTS', meta) == 0 then return false end
local m = redis.call('HMGET', meta, 'last', 'count', 'active', 'title', 'owner')
local count = tonumber(m[2] or '0')
local out = {m[1] or '0-0', tostring(count), m[3] or '', m[4] or '', m[5] or ''}
if count == 0 then return out end
-- hmget reads names from msgs, in chunks: unpack has a stack limit.
local function hmget(names)
  local got = {}
  for s = 1, #names, 1000 do
    local part = redis.call('HMGET', msgs, unpack(names, s, math.min(s + 999, #names)))
    for j = 1, #part do got[#got + 1] = part[j] or '' end
  end
  return got
end
local names = {}
for i = 1, count do names[i] = (i - 1) .. '.rev' end
local revs = hmget(names)
local nheld = tonumber(ARGV[1]) or 0
local held = {} -- by position (index + 1); nil: compare nothing, all of 1..prefix are held
local prefix = 0
if nheld > 0 and nheld <= count and table.concat(revs, ' ', 1, nheld) == ARGV[2] then
  prefix = nheld
elseif nheld > 0 then
  for r in string.gmatch(ARGV[2], '[^ ]+') do held[#held + 1] = r end
end
local todo = {}
names = {}
for i = prefix + 1, count do
  if held[i] ~= revs[i] then
    todo[#todo + 1] = i
    local p = (i - 1) .. '.'
    names[#names + 1] = p .. 'role'
    names[#names + 1] = p .. 'status'
    names[#names + 1] = p .. 'text'
    names[#names + 1] = p .. 'error'
  end
end
local f = hmget(names)
for k, i in ipairs(todo) do
  local b = (k - 1) * 4
  local status, text = f[b + 2], f[b + 3]
  if status == 'streaming' then text = redis.call('GET', textkey(i - 1)) or '' end
  out[#out + 1] = tostring(i - 1)
  out[#out + 1] = revs[i]
  out[#out + 1] = f[b + 1]
  out[#out + 1] = status
  out[#out + 1] = text
  out[#out + 1] = f[b + 4]
end
return out
`)

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
	res, err := pageScript.Run(ctx, s.rdb, []string{k.meta, k.msgs}, len(held), revs.String()).StringSlice()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read conversation: %w", err)
	}
	if len(res) < 5 || (len(res)-5)%6 != 0 {
		return nil, fmt.Errorf("read conversation: malformed reply of %d fields", len(res))
	}
	last, err := ParseID(res[0])
	if err != nil && res[0] != "0-0" {
		return nil, fmt.Errorf("read conversation: bad last id %q", res[0])
	}
	snap := &Snapshot{Last: last, Active: res[2], Title: res[3], Owner: res[4]}
	snap.Count, _ = strconv.Atoi(res[1])
	snap.Messages = make([]Message, 0, snap.Count)
	f := res[5:]
	for i := range snap.Count {
		if len(f) > 0 && f[0] == strconv.Itoa(i) {
			snap.Messages = append(snap.Messages, Message{
				Index: i, Rev: f[1], Role: f[2], Status: f[3], Text: f[4], Error: f[5],
			})
			f = f[6:]
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
