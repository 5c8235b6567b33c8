-- edit: stores text as a new version of the user message at position pos
-- (a sibling of it, selected) with an empty answer after it, ending the
-- path there, appends the branch event and takes the generation lease, in
-- one step. The old version and everything after it stay on their branch.
-- KEYS: prelude's, then idem (hash of idempotency keys)
-- ARGV: prelude's, then editArgv: owner, pos, text, gen, key (idempotency
--       key), lease_ms, idem_ttl_ms, now_ms, interrupted, model (the
--       deployment's default),
--       max_messages (0: no limit), rev (the message's revision as the page showed it)
local owner, pos, text, gen, key, lease_ms, idem_ttl_ms, now_ms, interrupted, model, max_messages, rev = unpack(ARGV, 5)
local idem = KEYS[5]
if redis.call('EXISTS', meta) == 0 then return {'notfound'} end
if redis.call('HGET', meta, 'owner') ~= owner then return {'forbidden'} end
local seen = redis.call('HGET', idem, key)
if seen then return {'dup', seen} end
if not end_dead(interrupted) then return {'busy'} end
upgrade()
model = answer_model(model)
local count = tonumber(redis.call('HGET', meta, 'count') or '0')
pos = tonumber(pos)
if pos < 0 or pos >= count then return {'nothing'} end
local old = node_at(pos)
-- The page that asked must show the message as it is: an older page's
-- position may now hold another message.
if redis.call('HGET', msgs, old .. '.role') ~= 'user' or redis.call('HGET', msgs, old .. '.rev') ~= rev then return {'nothing'} end
max_messages = tonumber(max_messages)
if max_messages > 0 and tonumber(redis.call('HGET', meta, 'nodes')) + 2 > 4 * max_messages then return {'full'} end
local id = emit({'t', 'branch', 'm', pos, 'g', gen}, {t = 'branch', m = pos, g = gen})
local u, a = new_exchange(parent_at(pos), text, gen, model, now_ms)
set_path(pos, u, id)
start_answer(a, pos + 1, gen, lease_ms)
redis.call('HSET', meta, 'updated', now_ms)
redis.call('HSET', idem, key, pos)
redis.call('PEXPIRE', idem, idem_ttl_ms)
touch()
return {'ok', tostring(pos), id}
