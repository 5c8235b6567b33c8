-- lastanswer: returns the length of the conversation's last message's text.
-- KEYS: meta, msgs
-- ARGV: none
local meta, msgs = KEYS[1], KEYS[2]
local count = tonumber(redis.call('HGET', meta, 'count') or '0')
if count == 0 then return 0 end
return redis.call('HSTRLEN', msgs, (count - 1) .. '.text')
