-- page: reads a whole conversation (its selected path) for a page,
-- atomically, skipping the messages the reader already holds. The reply
-- lists only the messages not held at their current revision, each as
-- index, rev, role, status, text, error, model, cut, version, versions.
-- Returns nil when the conversation does not exist, else {last, count,
-- active, title, owner, model, sysset, sys, then the messages as above}.
--
-- A Lua call costs more than the lookups it makes: fields are read with a
-- few HMGETs of many fields rather than one per message, and when the held
-- revisions are a prefix of the conversation's (nothing changed, or
-- messages were added: the common case) one string comparison settles it.
-- KEYS: meta, msgs (textkey.lua and path.lua are prepended)
-- ARGV: nheld (how many messages the reader holds), heldrevs (their revisions by
--       index, joined by spaces; '-' for a message it does not hold)
local meta, msgs = KEYS[1], KEYS[2]
local nheld, heldrevs = unpack(ARGV)
nheld = tonumber(nheld) or 0
if redis.call('EXISTS', meta) == 0 then return false end
local m = redis.call('HMGET', meta, 'last', 'count', 'active', 'title', 'owner', 'model', 'sys')
local count = tonumber(m[2] or '0')
local sysset = '0'
if m[7] then sysset = '1' end
local out = {m[1] or '0-0', tostring(count), m[3] or '', m[4] or '', m[5] or '', m[6] or '', sysset, m[7] or ''}
if count == 0 then return out end
-- hmget reads names from msgs, in chunks: unpack has a stack limit.
local function hmget(names)
  local got = {}
  for s = 1, #names, 1000 do
    local part = redis.call('HMGET', msgs, unpack(names, s, math.min(s + 999, #names)))
    for j = 1, #part do got[#got + 1] = part[j] or '' end
  end
  return got
end
local nodes = path_nodes(0, count)
local names = {}
for i = 1, count do names[i] = nodes[i] .. '.rev' end
local revs = hmget(names)
local held = {} -- by position (index + 1); nil: compare nothing, all of 1..prefix are held
local prefix = 0
if nheld > 0 and nheld <= count and table.concat(revs, ' ', 1, nheld) == heldrevs then
  prefix = nheld
elseif nheld > 0 then
  for r in string.gmatch(heldrevs, '[^ ]+') do held[#held + 1] = r end
end
local todo = {}
names = {}
for i = prefix + 1, count do
  if held[i] ~= revs[i] then
    todo[#todo + 1] = i
    local p = nodes[i] .. '.'
    names[#names + 1] = p .. 'role'
    names[#names + 1] = p .. 'status'
    names[#names + 1] = p .. 'text'
    names[#names + 1] = p .. 'error'
    names[#names + 1] = p .. 'model'
    names[#names + 1] = p .. 'cut'
  end
end
local f = hmget(names)
for k, i in ipairs(todo) do
  local b = (k - 1) * 6
  local status, text = f[b + 2], f[b + 3]
  if status == 'streaming' then text = redis.call('GET', textkey(nodes[i])) or '' end
  local parent = 'r'
  if i > 1 then parent = nodes[i - 1] end
  local v, vn = versions(parent, nodes[i])
  out[#out + 1] = tostring(i - 1)
  out[#out + 1] = revs[i]
  out[#out + 1] = f[b + 1]
  out[#out + 1] = status
  out[#out + 1] = text
  out[#out + 1] = f[b + 4]
  out[#out + 1] = f[b + 5]
  out[#out + 1] = f[b + 6]
  out[#out + 1] = tostring(v)
  out[#out + 1] = tostring(vn)
end
return out
