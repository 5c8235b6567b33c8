-- refund: takes back one hit counted by rate.lua for a request that another
-- limit refused. A counter whose window has ended is left alone (a DECR
-- would make a new one, with no expiry).
-- KEYS: counter
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end
return 0
