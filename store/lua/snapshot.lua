-- snapshot: reads a conversation as of one log position, atomically: the
-- position, whether the cursor is an entry of the log, and every message
-- changed after the cursor (all of them when the cursor is '' or unknown).
-- Messages change in index order (a message's rev is never older than the
-- one before it), so the changed ones are a suffix found by scanning back.
-- Returns nil when the conversation does not exist, else {last, count,
-- active, valid, from, title, owner, then role, status, text, error, rev for
-- each message from "from" on}.
-- KEYS: meta, msgs, log (textkey.lua is prepended)
-- ARGV: cursor (a log entry ID, or '')
local meta, msgs, log = KEYS[1], KEYS[2], KEYS[3]
local cursor = ARGV[1]
if redis.call('EXISTS', meta) == 0 then return false end
local m = redis.call('HMGET', meta, 'last', 'count', 'active', 'title', 'owner')
local last, count, active, title = m[1] or '0-0', tonumber(m[2] or '0'), m[3] or '', m[4] or ''
local valid = 0
if cursor ~= '' and (cursor == last or #redis.call('XRANGE', log, cursor, cursor) > 0) then valid = 1 end
local function split(id)
  local d = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, d - 1)), tonumber(string.sub(id, d + 1))
end
local from = 0
if valid == 1 then
  local cm, cs = split(cursor)
  from = count
  while from > 0 do
    local rev = redis.call('HGET', msgs, (from - 1) .. '.rev') or '0-0'
    local rm, rs = split(rev)
    if rm < cm or (rm == cm and rs <= cs) then break end
    from = from - 1
  end
end
local out = {last, tostring(count), active, tostring(valid), tostring(from), title, m[5] or ''}
for i = from, count - 1 do
  local f = redis.call('HMGET', msgs, i .. '.role', i .. '.status', i .. '.text', i .. '.error', i .. '.rev')
  -- An answer still streaming has its text in its own key.
  if f[2] == 'streaming' then f[3] = redis.call('GET', textkey(i)) or '' end
  for j = 1, 5 do out[#out + 1] = f[j] or '' end
end
return out
