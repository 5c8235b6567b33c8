-- sweep: a sweeper's look for dead generations (see sweepScript in
-- scripts.go for the hold). Returns the hold left in ms ('0' when none),
-- then the conversations whose lease deadline is before now (none while held).
-- KEYS: gens (sorted set of running generations), then two keys in its
--       slot: swept (set by every sweep), hold
-- ARGV: now_ms, limit (the most IDs to return), gap_ms (after which a
--       missing sweep means no process reached Redis), hold_ms (0: none)
local gens, swept, hold = KEYS[1], KEYS[2], KEYS[3]
local now_ms, limit, gap_ms, hold_ms = unpack(ARGV)
if tonumber(hold_ms) > 0 then
  if redis.call('EXISTS', swept) == 0 then
    redis.call('SET', hold, '1', 'PX', hold_ms)
  end
  redis.call('SET', swept, '1', 'PX', gap_ms)
  local left = redis.call('PTTL', hold)
  if left > 0 then return {tostring(left)} end
end
local out = redis.call('ZRANGEBYSCORE', gens, '-inf', now_ms, 'LIMIT', 0, tonumber(limit))
table.insert(out, 1, '0')
return out
