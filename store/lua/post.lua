-- post: stores a user message and an empty answer after the last message of
-- the selected path, appends the message event and takes the generation
-- lease, in one atomic step.
-- KEYS: prelude's, then idem (hash of idempotency keys), gone (tombstone)
-- ARGV: prelude's, then postArgv: create ('1' or '0'), text, gen, lease_ms,
--       idem_ttl_ms, now_ms, interrupted (error text for a dead answer),
--       owner, key (idempotency key), max_messages (0: no limit), model (the
--       deployment's default), choice (on create: the conversation's model, or '')
local create, text, gen, lease_ms, idem_ttl_ms, now_ms, interrupted, owner, key, max_messages, model, choice = unpack(ARGV, 5)
local idem, gone = KEYS[5], KEYS[6]
create = create == '1'
max_messages = tonumber(max_messages)
local exists = redis.call('EXISTS', meta) == 1
if create and (exists or redis.call('EXISTS', gone) == 1) then return {'exists'} end
if not create and not exists then return {'notfound'} end
if not create and redis.call('HGET', meta, 'owner') ~= owner then return {'forbidden'} end
local seen = redis.call('HGET', idem, key)
if seen then return {'dup', seen} end
if not end_dead(interrupted) then return {'busy'} end
upgrade()
if create and choice ~= '' then redis.call('HSET', meta, 'model', choice) end
model = answer_model(model)
local n = tonumber(redis.call('HGET', meta, 'count') or '0')
if max_messages > 0 and n + 2 > max_messages then return {'full'} end
if max_messages > 0 and tonumber(redis.call('HGET', meta, 'nodes')) + 2 > 4 * max_messages then return {'full'} end
local id = emit({'t', 'message', 'm', n, 'x', text, 'g', gen, 'o', model}, {t = 'message', m = n, x = text, g = gen, o = model})
local u, a = new_exchange(parent_at(n), text, gen, model, now_ms)
set_path(n, u, id)
start_answer(a, n + 1, gen, lease_ms)
if create then redis.call('HSET', meta, 'created', now_ms, 'owner', owner) end
redis.call('HSET', meta, 'updated', now_ms)
redis.call('HSET', idem, key, n)
redis.call('PEXPIRE', idem, idem_ttl_ms)
touch()
return {'ok', tostring(n), id}
