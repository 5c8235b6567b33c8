package store

import "github.com/redis/go-redis/v9"

// Every script that writes a conversation takes the same first keys and
// arguments, so that the shared Lua below can append to the log, publish the
// notice and refresh expiry the same way everywhere:
//
//	KEYS: meta, msgs, log, lease
//	ARGV: publish command (PUBLISH or SPUBLISH), channel, log MAXLEN,
//	      conversation TTL in ms (0 keeps it forever), then the script's own.
//
// All keys of one conversation share the hash tag {c:ID}, so each script runs on
// one Redis Cluster slot, and so does its notice when it is sharded.
//
// The text of an answer being written lives in its own string key,
// {c:ID}:t:N, grown with APPEND: a batch then costs O(batch), where keeping it
// in the msgs hash copied the whole answer on every batch (HGET + HSET). When
// the answer ends, finish moves the text into the hash and deletes the key.
// Its name is built here from the meta key rather than passed in KEYS (the
// script learns N from meta); it shares the hash tag, so it is in the same
// cluster slot as the declared keys.
const prelude = `
local meta, msgs, log, lease = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local pubcmd, channel, maxlen, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
` + textKeyLua + `

-- emit appends one event to the log and publishes it, carrying its own id and
-- the id before it, so that a room can tell when it missed a notice.
local function emit(fields, ev)
  local prev = redis.call('HGET', meta, 'last') or '0-0'
  local id = redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*', unpack(fields))
  redis.call('HSET', meta, 'last', id)
  ev.i = id
  ev.p = prev
  redis.call(pubcmd, channel, cjson.encode(ev))
  return id
end

local function touch()
  if ttl > 0 then
    redis.call('PEXPIRE', meta, ttl)
    redis.call('PEXPIRE', msgs, ttl)
    redis.call('PEXPIRE', log, ttl)
  end
end

-- finish ends generation gen of assistant message n with a final status.
-- The answer's text moves from its own key into the hash: one copy per answer.
local function finish(n, gen, status, err)
  local id = emit({'t', 'end', 'm', n, 's', status, 'e', err, 'g', gen},
    {t = 'end', m = tonumber(n), s = status, e = err, g = gen})
  local tk = textkey(n)
  local text = redis.call('GET', tk)
  if text then
    redis.call('HSET', msgs, n .. '.text', text)
    redis.call('DEL', tk)
  end
  redis.call('HSET', msgs, n .. '.status', status, n .. '.error', err, n .. '.rev', id)
  redis.call('HSET', meta, 'active', '', 'amsg', '', 'stop', '')
  redis.call('DEL', lease)
  touch()
  return id
end
`

// textKeyLua defines textkey(n): the key of answer n's text while it is being
// written, {c:ID}:t:N, built from the meta key {c:ID}:meta in KEYS[1].
const textKeyLua = `
local function textkey(n) return string.sub(KEYS[1], 1, #KEYS[1] - 4) .. 't:' .. n end
`

// postScript stores a user message and an empty assistant message, appends the
// message event and takes the generation lease: one atomic step, so a viewer
// never sees a user message without its answer slot, and a double submit (same
// idempotency key) or a post during a running answer cannot start a second
// generation.
//
// KEYS[5]: the conversation's hash of idempotency keys, [6] its tombstone
// (a deleted ID is never created again: "exists"). ARGV[5]: "1" to create the conversation, [6] text,
// [7] generation ID, [8] lease ms, [9] idempotency TTL ms, [10] now (ms),
// [11] error text for an answer whose generation died, [12] the poster's owner
// ID: it becomes the conversation's owner on create, and must be it otherwise,
// [13] the idempotency key, [14] the most messages a conversation may hold
// (0: no limit).
var postScript = redis.NewScript(prelude + `
local idem = KEYS[5]
local create = ARGV[5] == '1'
local exists = redis.call('EXISTS', meta) == 1
if create and (exists or redis.call('EXISTS', KEYS[6]) == 1) then return {'exists'} end
if not create and not exists then return {'notfound'} end
if not create and redis.call('HGET', meta, 'owner') ~= ARGV[12] then return {'forbidden'} end
local seen = redis.call('HGET', idem, ARGV[13])
if seen then return {'dup', seen} end
local active = redis.call('HGET', meta, 'active') or ''
if active ~= '' then
  if redis.call('EXISTS', lease) == 1 then return {'busy'} end
  finish(redis.call('HGET', meta, 'amsg'), active, 'interrupted', ARGV[11])
end
local n = tonumber(redis.call('HGET', meta, 'count') or '0')
if tonumber(ARGV[14]) > 0 and n + 2 > tonumber(ARGV[14]) then return {'full'} end
local a = n + 1
local text, gen = ARGV[6], ARGV[7]
local id = emit({'t', 'message', 'm', n, 'x', text, 'g', gen}, {t = 'message', m = n, x = text, g = gen})
redis.call('HSET', msgs,
  n .. '.role', 'user', n .. '.text', text, n .. '.status', 'done', n .. '.error', '', n .. '.rev', id,
  a .. '.role', 'assistant', a .. '.text', '', a .. '.status', 'streaming', a .. '.error', '', a .. '.rev', id,
  a .. '.gen', gen)
redis.call('DEL', textkey(a))
redis.call('HSET', meta, 'count', a + 1, 'active', gen, 'amsg', a, 'stop', '')
if create then redis.call('HSET', meta, 'created', ARGV[10], 'owner', ARGV[12]) end
redis.call('HSET', meta, 'updated', ARGV[10])
redis.call('SET', lease, gen, 'PX', ARGV[8])
redis.call('HSET', idem, ARGV[13], n)
redis.call('PEXPIRE', idem, ARGV[9])
touch()
return {'ok', tostring(n), id}
`)

// appendScript appends text to the answer of generation ARGV[5] and renews its
// lease (re-taking it if it ran out while nobody ended the answer). A stale
// generation (its answer ended, or superseded) is refused here, in the same
// step that would append, so it can never write after another process has
// ended its message.
//
// Its cost does not depend on the answer's length: the text is APPENDed to
// the answer's own key and its length read with STRLEN.
//
// ARGV[5] generation ID, [6] text, [7] max answer bytes, [8] lease ms,
// [9] when the generation got the batch (ms, or ""), carried in the notice
// (not the log) so that any process can measure token-to-frame latency,
// [10] the answer's length the text goes after ("" or -1: unchecked). With
// it, a retried batch whose first try was run but whose reply was lost (the
// connection broke, a timeout, go-redis's own retry) appends only what is
// missing: retries never double text. Returns {'ok', id, length after}.
var appendScript = redis.NewScript(prelude + `
local gen = ARGV[5]
if redis.call('HGET', meta, 'active') ~= gen then return {'stale'} end
local holder = redis.call('GET', lease)
if holder and holder ~= gen then return {'stale'} end
-- Renews the lease, or re-takes it after Redis was unreachable for longer
-- than the lease: nobody ended or superseded the answer (it is still gen's),
-- so its living generation goes on (see renewScript).
redis.call('SET', lease, gen, 'PX', ARGV[8])
if redis.call('HGET', meta, 'stop') == gen then return {'stop'} end
local n = redis.call('HGET', meta, 'amsg')
local tk = textkey(n)
local text = ARGV[6]
local cur = redis.call('STRLEN', tk)
local off = tonumber(ARGV[10] or '') or -1
if off >= 0 and cur ~= off then
  local landed = cur - off
  if landed < 0 or landed > #text or redis.call('GETRANGE', tk, off, cur - 1) ~= string.sub(text, 1, landed) then
    return {'stale'}
  end
  text = string.sub(text, landed + 1)
  if text == '' then return {'ok', redis.call('HGET', meta, 'last') or '0-0', tostring(cur)} end
end
if cur + #text > tonumber(ARGV[7]) then return {'full'} end
local ev = {t = 'delta', m = tonumber(n), x = text}
if ARGV[9] ~= '' then ev.a = ARGV[9] end
local id = emit({'t', 'delta', 'm', n, 'x', text}, ev)
if redis.call('APPEND', tk, text) == #text and ttl > 0 then redis.call('PEXPIRE', tk, ttl) end
redis.call('HSET', msgs, n .. '.rev', id)
return {'ok', id, tostring(cur + #text)}
`)

// finishScript ends generation ARGV[5] with status ARGV[6] and error ARGV[7],
// unless something else (stop of a dead generation, the sweeper) ended it first.
var finishScript = redis.NewScript(prelude + `
local gen = ARGV[5]
if redis.call('HGET', meta, 'active') ~= gen then return {'stale'} end
local id = finish(redis.call('HGET', meta, 'amsg'), gen, ARGV[6], ARGV[7])
return {'ok', id}
`)

// renewScript extends the lease of generation ARGV[5] by ARGV[6] ms and tells
// it whether a stop was requested: the stop flag is read on every renewal, so a
// stop is seen even if its notice was lost or came before the generation
// listened for it.
//
// A lease that ran out is taken again as long as the answer is still gen's
// (meta.active): its process is alive (it renews), Redis was only unreachable
// for longer than the lease (a pause, a restart), and nobody ended the answer
// meanwhile. Ending it (expireScript, a post or a stop over a dead lease)
// clears meta.active in one script, so an answer is either re-taken or ended,
// never both. Sweepers hold back after such an outage (sweepScript) so that
// the living generation gets there first.
var renewScript = redis.NewScript(prelude + `
local gen = ARGV[5]
if redis.call('HGET', meta, 'active') ~= gen then return 'stale' end
local holder = redis.call('GET', lease)
if holder and holder ~= gen then return 'stale' end
redis.call('SET', lease, gen, 'PX', ARGV[6])
if redis.call('HGET', meta, 'stop') == gen then return 'stop' end
return 'ok'
`)

// stopScript records a stop request for the running generation and rings its
// doorbell. When the generation has no lease any more (its process died), there
// is nobody to obey, so the answer is ended here and now.
var stopScript = redis.NewScript(prelude + `
if redis.call('EXISTS', meta) == 0 then return 'notfound' end
local active = redis.call('HGET', meta, 'active') or ''
if active == '' then return 'idle' end
if redis.call('EXISTS', lease) == 0 then
  finish(redis.call('HGET', meta, 'amsg'), active, 'stopped', '')
  return 'stopped'
end
redis.call('HSET', meta, 'stop', active)
redis.call(pubcmd, channel, cjson.encode({t = 'stop', g = active}))
return 'requested'
`)

// expireScript ends the running generation as interrupted when its lease is
// gone: its process died, or lost Redis for longer than the lease while other
// processes reached it (a sweeper calls it only outside a hold: see
// sweepScript). The text written so far is kept. ARGV[5]: the error shown to
// people.
var expireScript = redis.NewScript(prelude + `
local active = redis.call('HGET', meta, 'active') or ''
if active == '' then return 'idle' end
if redis.call('EXISTS', lease) == 1 then return 'alive' end
finish(redis.call('HGET', meta, 'amsg'), active, 'interrupted', ARGV[5])
return 'interrupted'
`)

// snapshotScript reads a conversation as of one log position, atomically: the
// position, whether cursor ARGV[1] is an entry of the log, and every message
// changed after the cursor (all of them when the cursor is "" or unknown).
// Messages change in index order (a message's rev is never older than the
// one before it), so the changed ones are a suffix found by scanning back.
//
// An answer still streaming has its text in its own key (see prelude).
//
// KEYS: meta, msgs, log. Returns nil when the conversation does not exist, else
// {last, count, active, valid, from, title, owner, then role, status, text,
// error, rev for each message from "from" on}.
var snapshotScript = redis.NewScript(textKeyLua + `
local meta, msgs, log = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', meta) == 0 then return false end
local m = redis.call('HMGET', meta, 'last', 'count', 'active', 'title', 'owner')
local last, count, active, title = m[1] or '0-0', tonumber(m[2] or '0'), m[3] or '', m[4] or ''
local cursor = ARGV[1]
local valid = 0
if cursor ~= '' and (cursor == last or #redis.call('XRANGE', log, cursor, cursor) > 0) then valid = 1 end
local function split(id)
  local d = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, d - 1)), tonumber(string.sub(id, d + 1))
end
local from = 0
if valid == 1 then
  local cm, cs = split(cursor)
  from = count
  while from > 0 do
    local rev = redis.call('HGET', msgs, (from - 1) .. '.rev') or '0-0'
    local rm, rs = split(rev)
    if rm < cm or (rm == cm and rs <= cs) then break end
    from = from - 1
  end
end
local out = {last, tostring(count), active, tostring(valid), tostring(from), title, m[5] or ''}
for i = from, count - 1 do
  local f = redis.call('HMGET', msgs, i .. '.role', i .. '.status', i .. '.text', i .. '.error', i .. '.rev')
  if f[2] == 'streaming' then f[3] = redis.call('GET', textkey(i)) or '' end
  for j = 1, 5 do out[#out + 1] = f[j] or '' end
end
return out
`)

// sweepScript is a sweeper's look for dead generations. KEYS: the sorted set
// of running generations (parley:gens), then two keys in its slot: swept
// (set by every sweep, living ARGV[3] ms) and hold. ARGV[1]: now (ms), [2]
// the most IDs to return, [3] the gap in ms after which a missing sweep
// means that no process reached Redis, [4] the hold in ms (0: none).
//
// Every process sweeps every PARLEY_SWEEP_INTERVAL, so swept only runs out
// when no process could reach Redis for longer than the gap: Redis was
// paused, stalled or restarting, or every process was down. Leases ran out
// meanwhile although their generations may be alive, so sweeps then find
// nothing for the hold (a lease), which gives each living generation the
// time to re-take its lease (renewScript) before any sweeper ends its
// answer. Both keys expire on Redis's own clock, not on the processes': the
// gap is seen by every process, whatever their clocks say, and however long
// the outage lasted (a paused Redis treats a key past its time as gone).
//
// Returns the hold left in ms ("0" when none), then the conversations whose
// lease deadline is before now (none while held).
var sweepScript = redis.NewScript(`
local gens, swept, hold = KEYS[1], KEYS[2], KEYS[3]
if tonumber(ARGV[4]) > 0 then
  if redis.call('EXISTS', swept) == 0 then
    redis.call('SET', hold, '1', 'PX', ARGV[4])
  end
  redis.call('SET', swept, '1', 'PX', ARGV[3])
  local left = redis.call('PTTL', hold)
  if left > 0 then return {tostring(left)} end
end
local out = redis.call('ZRANGEBYSCORE', gens, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
table.insert(out, 1, '0')
return out
`)
