-- continue: makes the last answer, which the model ended at its length
-- limit, streaming again for generation gen, its text kept (the generation
-- appends to it), and takes the lease, in one step; 'dup' when its revision
-- is no longer rev.
-- KEYS: prelude's
-- ARGV: prelude's, then continueArgv: owner, gen, rev, lease_ms, interrupted, now_ms
local owner, gen, rev, lease_ms, interrupted, now_ms = unpack(ARGV, 5)
if redis.call('EXISTS', meta) == 0 then return {'notfound'} end
if redis.call('HGET', meta, 'owner') ~= owner then return {'forbidden'} end
if not end_dead(interrupted) then return {'busy'} end
upgrade()
local pos = tonumber(redis.call('HGET', meta, 'count') or '0') - 1
if pos < 1 then return {'nothing'} end
local a = node_at(pos)
if redis.call('HGET', msgs, a .. '.rev') ~= rev then return {'dup'} end
if redis.call('HGET', msgs, a .. '.cut') ~= '1' then return {'nothing'} end
local id = emit({'t', 'branch', 'm', pos, 'g', gen}, {t = 'branch', m = pos, g = gen})
local text = redis.call('HGET', msgs, a .. '.text') or ''
start_answer(a, pos, gen, lease_ms)
redis.call('SET', textkey(a), text)
if ttl > 0 then redis.call('PEXPIRE', textkey(a), ttl) end
-- kept: the length it had, which finish and lastanswer read (prelude.lua).
redis.call('HSET', msgs, a .. '.text', '', a .. '.status', 'streaming', a .. '.error', '', a .. '.cut', '',
  a .. '.rev', id, a .. '.gen', gen, a .. '.kept', #text)
redis.call('HSET', meta, 'updated', now_ms)
touch()
return {'ok', id, tostring(#text)}
