-- snapshot: reads a conversation as of one log position, atomically: the
-- position, whether the cursor is an entry of the log, and every message of
-- the selected path changed after the cursor (all of them when the cursor
-- is '' or unknown). Messages change in position order (a message's rev is
-- never older than the one before it: a branch marks every message it puts
-- on the path), so the changed ones are a suffix found by scanning back.
-- Returns nil when the conversation does not exist, else {last, count,
-- active, valid, from, title, owner, model, sysset ('1' when the
-- conversation has its own instructions), sys, then role, status, text,
-- error, rev, model, cut, version, versions for each message from "from" on}.
-- KEYS: meta, msgs, log (textkey.lua and path.lua are prepended)
-- ARGV: cursor (a log entry ID, or '')
local meta, msgs, log = KEYS[1], KEYS[2], KEYS[3]
local cursor = ARGV[1]
if redis.call('EXISTS', meta) == 0 then return false end
local m = redis.call('HMGET', meta, 'last', 'count', 'active', 'title', 'owner', 'model', 'sys')
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
    local n = redis.call('HGET', msgs, 'p.' .. (from - 1)) or tostring(from - 1)
    local rm, rs = split(redis.call('HGET', msgs, n .. '.rev') or '0-0')
    if rm < cm or (rm == cm and rs <= cs) then break end
    from = from - 1
  end
end
local sysset = '0'
if m[7] then sysset = '1' end
local out = {last, tostring(count), active, tostring(valid), tostring(from), title, m[5] or '', m[6] or '', sysset, m[7] or ''}
local nodes = path_nodes(math.max(from - 1, 0), count)
local off = 0
if from > 0 then off = 1 end
for i = from, count - 1 do
  local n = nodes[i - from + 1 + off]
  local f = redis.call('HMGET', msgs, n .. '.role', n .. '.status', n .. '.text', n .. '.error', n .. '.rev', n .. '.model', n .. '.cut')
  -- An answer still streaming has its text in its own key.
  if f[2] == 'streaming' then f[3] = redis.call('GET', textkey(n)) or '' end
  local parent = 'r'
  if i > 0 then parent = nodes[i - from + off] end
  local v, vn = versions(parent, n)
  f[8], f[9] = tostring(v), tostring(vn)
  for j = 1, 9 do out[#out + 1] = f[j] or '' end
end
return out
