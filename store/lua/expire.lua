-- expire: ends the running generation as interrupted when its lease is gone,
-- keeping the text written so far.
-- KEYS: prelude's
-- ARGV: prelude's, then expireArgv: interrupted (the error shown to people)
local interrupted = unpack(ARGV, 5)
local active = redis.call('HGET', meta, 'active') or ''
if active == '' then return 'idle' end
if redis.call('EXISTS', lease) == 1 then return 'alive' end
finish(redis.call('HGET', meta, 'amsg'), active, 'interrupted', interrupted)
return 'interrupted'
