-- delete: removes every key of a conversation (see docs/redis.md), leaves
-- its tombstone and rings the doorbell so that open pages say so. Returns
-- 'ok:BYTES' (the text it held), 'notfound' or 'forbidden'.
-- KEYS: prelude's, then presence (hash), gone (tombstone: set to the
--       deletion time, it makes post.lua refuse to create the ID again)
-- ARGV: prelude's, then deleteArgv: owner, now_ms, gone_ms (the tombstone's life)
local owner, now_ms, gone_ms = unpack(ARGV, 5)
local presence, gone = KEYS[5], KEYS[6]
if redis.call('EXISTS', meta) == 0 then return 'notfound' end
if redis.call('HGET', meta, 'owner') ~= owner then return 'forbidden' end
-- Every node, on the selected path or not (a conversation stored before
-- the tree has count nodes and no meta.nodes).
local nodes = tonumber(redis.call('HGET', meta, 'nodes') or redis.call('HGET', meta, 'count') or '0')
local bytes = 0
for i = 0, nodes - 1 do
  bytes = bytes + redis.call('HSTRLEN', msgs, i .. '.text') + redis.call('STRLEN', textkey(i))
  redis.call('DEL', textkey(i))
end
redis.call('DEL', meta, msgs, log, lease, presence, string.sub(meta, 1, #meta - 4) .. 'idem')
redis.call('SET', gone, now_ms, 'PX', gone_ms)
redis.call(pubcmd, channel, cjson.encode({t = 'deleted'}))
return 'ok:' .. bytes
