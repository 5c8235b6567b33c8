-- stop: records a stop request for the running generation and rings its
-- doorbell; a generation without a lease (its process died) is ended here.
-- KEYS: prelude's
-- ARGV: prelude's only
if redis.call('EXISTS', meta) == 0 then return 'notfound' end
local active = redis.call('HGET', meta, 'active') or ''
if active == '' then return 'idle' end
if redis.call('EXISTS', lease) == 0 then
  finish(redis.call('HGET', meta, 'amsg'), active, 'stopped', '')
  return 'stopped'
end
redis.call('HSET', meta, 'stop', active)
redis.call(pubcmd, channel, cjson.encode({t = 'stop', g = active}))
return 'requested'
