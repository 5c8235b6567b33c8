-- prelude: the start of every script that writes a conversation (scripts.go
-- prepends it, after textkey.lua).
-- KEYS: meta, msgs, log, lease (then the script's own)
-- ARGV: pubcmd (PUBLISH or SPUBLISH), channel, maxlen (log MAXLEN ~),
--       ttl (conversation TTL in ms, 0 keeps it), then the script's own from ARGV[5]
local meta, msgs, log, lease = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local pubcmd, channel, maxlen, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])

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
