-- message: reads the message at one position of the selected path as it is
-- stored now: its role and text (an answer's text so far while written).
-- Returns nil when there is no such message.
-- KEYS: meta, msgs (textkey.lua and path.lua are prepended)
-- ARGV: pos
local meta, msgs = KEYS[1], KEYS[2]
local pos = tonumber(ARGV[1])
local count = tonumber(redis.call('HGET', meta, 'count') or '0')
if not pos or pos < 0 or pos >= count then return false end
local n = path_nodes(pos, pos + 1)[1]
local f = redis.call('HMGET', msgs, n .. '.role', n .. '.text', n .. '.status')
if not f[1] then return false end
local text = f[2] or ''
if f[3] == 'streaming' then text = redis.call('GET', textkey(n)) or '' end
return {f[1], text}
