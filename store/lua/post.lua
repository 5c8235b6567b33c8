-- post: stores a user message and an empty assistant message, appends the
-- message event and takes the generation lease, in one atomic step.
-- KEYS: prelude's, then idem (hash of idempotency keys), gone (tombstone)
-- ARGV: prelude's, then postArgv: create ('1' or '0'), text, gen, lease_ms,
--       idem_ttl_ms, now_ms, interrupted (error text for a dead answer),
--       owner, key (idempotency key), max_messages (0: no limit)
local create, text, gen, lease_ms, idem_ttl_ms, now_ms, interrupted, owner, key, max_messages = unpack(ARGV, 5)
local idem, gone = KEYS[5], KEYS[6]
create = create == '1'
max_messages = tonumber(max_messages)
local exists = redis.call('EXISTS', meta) == 1
if create and (exists or redis.call('EXISTS', gone) == 1) then return {'exists'} end
if not create and not exists then return {'notfound'} end
if not create and redis.call('HGET', meta, 'owner') ~= owner then return {'forbidden'} end
local seen = redis.call('HGET', idem, key)
if seen then return {'dup', seen} end
local active = redis.call('HGET', meta, 'active') or ''
if active ~= '' then
  if redis.call('EXISTS', lease) == 1 then return {'busy'} end
  finish(redis.call('HGET', meta, 'amsg'), active, 'interrupted', interrupted)
end
local n = tonumber(redis.call('HGET', meta, 'count') or '0')
if max_messages > 0 and n + 2 > max_messages then return {'full'} end
local a = n + 1
local id = emit({'t', 'message', 'm', n, 'x', text, 'g', gen}, {t = 'message', m = n, x = text, g = gen})
redis.call('HSET', msgs,
  n .. '.role', 'user', n .. '.text', text, n .. '.status', 'done', n .. '.error', '', n .. '.rev', id,
  a .. '.role', 'assistant', a .. '.text', '', a .. '.status', 'streaming', a .. '.error', '', a .. '.rev', id,
  a .. '.gen', gen)
redis.call('DEL', textkey(a))
redis.call('HSET', meta, 'count', a + 1, 'active', gen, 'amsg', a, 'stop', '')
if create then redis.call('HSET', meta, 'created', now_ms, 'owner', owner) end
redis.call('HSET', meta, 'updated', now_ms)
redis.call('SET', lease, gen, 'PX', lease_ms)
redis.call('HSET', idem, key, n)
redis.call('PEXPIRE', idem, idem_ttl_ms)
touch()
return {'ok', tostring(n), id}
