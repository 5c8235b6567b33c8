-- presence: records how many viewers process proc has on the conversation
-- until ttl_ms from now, drops counts of processes that stopped refreshing,
-- and publishes the total. It writes nothing to the log: who is watching is
-- not part of the conversation, and a page that misses a count gets the next.
-- KEYS: presence (hash of process -> 'count:deadline')
-- ARGV: pubcmd, channel, proc, n (its viewers), ttl (ms)
local key = KEYS[1]
local pubcmd, channel, proc, n, ttl = unpack(ARGV)
n, ttl = tonumber(n), tonumber(ttl)
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
