-- rate: counts one hit in a fixed window that starts with the first hit.
-- Returns {hits so far, ms left in the window}.
-- KEYS: counter
-- ARGV: window_ms
local counter, window_ms = KEYS[1], ARGV[1]
local n = redis.call('INCR', counter)
if n == 1 then redis.call('PEXPIRE', counter, window_ms) end
local ttl = redis.call('PTTL', counter)
if ttl < 0 then redis.call('PEXPIRE', counter, window_ms); ttl = tonumber(window_ms) end
return {n, ttl}
