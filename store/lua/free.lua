-- free: takes bytes off an owner's stored count, never below zero, and gives
-- a count it creates a lifetime (a decrement of a count that expired must
-- not leave a permanent credit).
-- KEYS: stored (the owner's byte count)
-- ARGV: bytes, ttl_ms (0: none)
local stored = KEYS[1]
local bytes, ttl_ms = unpack(ARGV)
local n = redis.call('DECRBY', stored, bytes)
if n < 0 then redis.call('SET', stored, 0, 'KEEPTTL') end
if redis.call('PTTL', stored) == -1 and tonumber(ttl_ms) > 0 then redis.call('PEXPIRE', stored, ttl_ms) end
return 0
