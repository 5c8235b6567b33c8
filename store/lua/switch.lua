-- switch: shows version v (1-based, in order of creation) of the message at
-- position pos: the path runs through it and then each message's selected
-- version, and the branch event says the page changed from pos. Refused
-- while an answer is being written ('busy'): the answer's place must stay put.
-- A page that is behind ('nothing'): rev, when given, must be the revision of
-- the message now at pos, as the page showed it.
-- KEYS: prelude's
-- ARGV: prelude's, then switchArgv: owner, pos, version, interrupted, rev
local owner, pos, version, interrupted, rev = unpack(ARGV, 5)
if redis.call('EXISTS', meta) == 0 then return {'notfound'} end
if redis.call('HGET', meta, 'owner') ~= owner then return {'forbidden'} end
if not end_dead(interrupted) then return {'busy'} end
upgrade()
local count = tonumber(redis.call('HGET', meta, 'count') or '0')
pos, version = tonumber(pos), tonumber(version)
if pos < 0 or pos >= count then return {'nothing'} end
if rev ~= '' and redis.call('HGET', msgs, node_at(pos) .. '.rev') ~= rev then return {'nothing'} end
local parent = parent_at(pos)
local kids = {}
for k in string.gmatch(redis.call('HGET', msgs, parent .. '.kids') or '', '%S+') do kids[#kids + 1] = k end
local target = kids[version]
if not target then return {'nothing'} end
if target == node_at(pos) then return {'same', redis.call('HGET', meta, 'last') or '0-0'} end
local id = emit({'t', 'branch', 'm', pos}, {t = 'branch', m = pos})
redis.call('HSET', msgs, parent .. '.sel', target)
set_path(pos, target, id)
touch()
return {'ok', id}
