-- renew: extends the lease of generation gen and tells it whether a stop was
-- requested: the stop flag is read on every renewal, so a stop is seen even
-- if its notice was lost or came before the generation listened for it. A
-- lease that ran out is taken again as long as the answer is still gen's
-- (meta.active): see renewScript in scripts.go.
-- KEYS: prelude's
-- ARGV: prelude's, then renewArgv: gen, lease_ms
local gen, lease_ms = unpack(ARGV, 5)
if redis.call('HGET', meta, 'active') ~= gen then return 'stale' end
local holder = redis.call('GET', lease)
if holder and holder ~= gen then return 'stale' end
redis.call('SET', lease, gen, 'PX', lease_ms)
if redis.call('HGET', meta, 'stop') == gen then return 'stop' end
return 'ok'
