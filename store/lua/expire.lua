-- expire: ends the running generation as interrupted when its lease is gone
-- (its process died, or lost Redis for longer than the lease while others
-- reached it; a sweeper calls it only outside a hold), keeping the text
-- written so far.
-- KEYS: prelude's
-- ARGV: prelude's, then expireArgv: interrupted (the error shown to people)
local interrupted = unpack(ARGV, 5)
local active = redis.call('HGET', meta, 'active') or ''
if active == '' then return 'idle' end
if redis.call('EXISTS', lease) == 1 then return 'alive' end
finish(redis.call('HGET', meta, 'amsg'), active, 'interrupted', interrupted)
return 'interrupted'
