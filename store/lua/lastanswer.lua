-- lastanswer: returns the bytes the last message of the conversation's
-- selected path added to what it holds.
-- KEYS: meta, msgs (path.lua is prepended)
-- ARGV: none
local meta, msgs = KEYS[1], KEYS[2]
local count = tonumber(redis.call('HGET', meta, 'count') or '0')
if count == 0 then return 0 end
-- A continued answer's text before its continuation was counted already.
local n = path_nodes(count - 1, count)[1]
return redis.call('HSTRLEN', msgs, n .. '.text') - tonumber(redis.call('HGET', msgs, n .. '.kept') or '0')
