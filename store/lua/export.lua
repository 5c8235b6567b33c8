-- export: reads the whole tree of a conversation at once: every field of
-- its meta and msgs hashes, and the text so far of the answer being written.
-- Returns nil when the conversation does not exist, else {meta's HGETALL,
-- msgs' HGETALL, the streaming text}.
-- KEYS: meta, msgs (textkey.lua is prepended)
-- ARGV: none
local meta, msgs = KEYS[1], KEYS[2]
if redis.call('EXISTS', meta) == 0 then return false end
local a = redis.call('HGET', meta, 'amsg') or ''
local text = ''
if a ~= '' then text = redis.call('GET', textkey(a)) or '' end
return {redis.call('HGETALL', meta), redis.call('HGETALL', msgs), text}
