-- regen: writes the answer at position pos again as a new version, with
-- generation gen: a new sibling of the answer, selected and streaming, with
-- the path ending at it (the later messages stay on the old version's
-- branch), and the lease taken, in one step. If the answer's revision is no
-- longer rev (a double click already regenerated it), nothing happens ('dup').
-- KEYS: prelude's
-- ARGV: prelude's, then regenArgv: owner, gen, rev (of the answer, as the
--       caller saw it), lease_ms, interrupted (error text for a dead answer),
--       pos (position of the answer; 0: the last message), model (the deployment's default), now_ms,
--       max_nodes (0: no limit)
local owner, gen, rev, lease_ms, interrupted, pos, model, now_ms, max_nodes = unpack(ARGV, 5)
if redis.call('EXISTS', meta) == 0 then return {'notfound'} end
if redis.call('HGET', meta, 'owner') ~= owner then return {'forbidden'} end
if not end_dead(interrupted) then return {'busy'} end
upgrade()
model = answer_model(model)
local count = tonumber(redis.call('HGET', meta, 'count') or '0')
pos = tonumber(pos)
if pos <= 0 then pos = count - 1 end
if pos < 1 or pos >= count then return {'nothing'} end
local old = node_at(pos)
if redis.call('HGET', msgs, old .. '.role') ~= 'assistant' then return {'nothing'} end
if redis.call('HGET', msgs, old .. '.rev') ~= rev then return {'dup'} end
max_nodes = tonumber(max_nodes)
if max_nodes > 0 and tonumber(redis.call('HGET', meta, 'nodes')) + 1 > max_nodes then return {'full'} end
local id = emit({'t', 'branch', 'm', pos, 'g', gen}, {t = 'branch', m = pos, g = gen})
local a = new_answer(parent_at(pos), gen, model, now_ms)
set_path(pos, a, id)
start_answer(a, pos, gen, lease_ms)
redis.call('HSET', meta, 'updated', now_ms)
touch()
return {'ok', id}
