-- lastanswer: returns the length of the text of the last message of the
-- conversation's selected path.
-- KEYS: meta, msgs (path.lua is prepended)
-- ARGV: none
local meta, msgs = KEYS[1], KEYS[2]
local count = tonumber(redis.call('HGET', meta, 'count') or '0')
if count == 0 then return 0 end
return redis.call('HSTRLEN', msgs, path_nodes(count - 1, count)[1] .. '.text')
