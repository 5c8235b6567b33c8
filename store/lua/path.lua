-- path: how the read scripts (snapshot, page, lastanswer) see the tree
-- (prelude.lua describes it): the node at each position of the selected
-- path, and each message's place among its versions. A conversation stored
-- before the tree has no p.i: position i is node i, the only version.
-- Expects msgs (KEYS[2]) to be set by the including script.

-- path_nodes returns the nodes at positions from..count-1 (Lua index k is
-- position from+k-1), read with HMGETs of many fields: a Lua call costs
-- more than the lookups it makes.
local function path_nodes(from, count)
  local out = {}
  for s = from, count - 1, 1000 do
    local names = {}
    for i = s, math.min(s + 999, count - 1) do names[#names + 1] = 'p.' .. i end
    local got = redis.call('HMGET', KEYS[2], unpack(names))
    for j = 1, #got do out[#out + 1] = got[j] or tostring(s + j - 1) end
  end
  return out
end

-- versions returns node n's place among its parent p's children and their
-- count (1, 1 when it has no siblings, or p is unknown).
local function versions(p, n)
  local kids = p and redis.call('HGET', KEYS[2], p .. '.kids')
  if not kids then return 1, 1 end
  local at, total = 1, 0
  for k in string.gmatch(kids, '%S+') do
    total = total + 1
    if k == n then at = total end
  end
  return at, math.max(total, 1)
end
