-- regen: writes the last answer again with generation gen: its text is
-- cleared, it is streaming again, and the lease is taken, in one step. If
-- the answer's revision is no longer rev (a double click already
-- regenerated it), nothing happens ('dup').
-- KEYS: prelude's
-- ARGV: prelude's, then regenArgv: owner, gen, rev (of the last answer, as
--       the caller saw it), lease_ms, interrupted (error text for a dead answer)
local owner, gen, rev, lease_ms, interrupted = unpack(ARGV, 5)
if redis.call('EXISTS', meta) == 0 then return {'notfound'} end
if redis.call('HGET', meta, 'owner') ~= owner then return {'forbidden'} end
local active = redis.call('HGET', meta, 'active') or ''
if active ~= '' then
  if redis.call('EXISTS', lease) == 1 then return {'busy'} end
  finish(redis.call('HGET', meta, 'amsg'), active, 'interrupted', interrupted)
end
local n = tonumber(redis.call('HGET', meta, 'count') or '0') - 1
if n < 1 or redis.call('HGET', msgs, n .. '.role') ~= 'assistant' then return {'nothing'} end
if redis.call('HGET', msgs, n .. '.rev') ~= rev then return {'dup'} end
local id = emit({'t', 'regen', 'm', n, 'g', gen}, {t = 'regen', m = n, g = gen})
redis.call('DEL', textkey(n))
redis.call('HSET', msgs, n .. '.text', '', n .. '.status', 'streaming', n .. '.error', '', n .. '.rev', id, n .. '.gen', gen)
redis.call('HSET', meta, 'active', gen, 'amsg', n, 'stop', '')
redis.call('SET', lease, gen, 'PX', lease_ms)
touch()
return {'ok', id}
