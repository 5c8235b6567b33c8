-- prelude: the start of every script that writes a conversation (scripts.go
-- prepends it, after textkey.lua).
-- KEYS: meta, msgs, log, lease (then the script's own)
-- ARGV: pubcmd (PUBLISH or SPUBLISH), channel, maxlen (log MAXLEN ~),
--       ttl (conversation TTL in ms, 0 keeps it), then the script's own from ARGV[5]
local meta, msgs, log, lease = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local pubcmd, channel, maxlen, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])

-- emit appends one event to the log and publishes it, carrying its own id and
-- the id before it, so that a room can tell when it missed a notice.
local function emit(fields, ev)
  local prev = redis.call('HGET', meta, 'last') or '0-0'
  local id = redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*', unpack(fields))
  redis.call('HSET', meta, 'last', id)
  ev.i = id
  ev.p = prev
  redis.call(pubcmd, channel, cjson.encode(ev))
  return id
end

local function touch()
  if ttl > 0 then
    redis.call('PEXPIRE', meta, ttl)
    redis.call('PEXPIRE', msgs, ttl)
    redis.call('PEXPIRE', log, ttl)
  end
end

-- The tree (docs/redis.md): every message is a node N of msgs (N.role,
-- N.text, ..., N.parent, N.kids, N.sel), and the conversation as shown is
-- the selected path: position i holds node p.i. The root's children are
-- the kids of the pseudo-node 'r'. meta.count is the path's length,
-- meta.nodes the number of nodes.

-- upgrade gives a conversation stored before the tree (position i was
-- message i, no p.i) its tree fields, once, before a script changes it.
local function upgrade()
  if redis.call('HEXISTS', meta, 'nodes') == 1 then return end
  local count = tonumber(redis.call('HGET', meta, 'count') or '0')
  local prev = 'r'
  for i = 0, count - 1 do
    local n = tostring(i)
    redis.call('HSET', msgs, 'p.' .. n, n, n .. '.parent', prev, prev .. '.kids', n, prev .. '.sel', n)
    prev = n
  end
  redis.call('HSET', meta, 'nodes', count)
end

local function node_at(i) return redis.call('HGET', msgs, 'p.' .. i) end
local function parent_at(i) if i == 0 then return 'r' end return node_at(i - 1) end

-- new_node allocates a node whose parent is p, as p's newest and selected child.
local function new_node(p)
  local n = tostring(redis.call('HINCRBY', meta, 'nodes', 1) - 1)
  local kids = redis.call('HGET', msgs, p .. '.kids') or ''
  if kids ~= '' then kids = kids .. ' ' end
  redis.call('HSET', msgs, p .. '.kids', kids .. n, p .. '.sel', n, n .. '.parent', p)
  return n
end

-- new_answer adds an empty answer after node p, streaming for generation
-- gen with model; it returns its node.
local function new_answer(p, gen, model, now_ms)
  local a = new_node(p)
  redis.call('HSET', msgs, a .. '.role', 'assistant', a .. '.text', '', a .. '.status', 'streaming',
    a .. '.error', '', a .. '.at', now_ms, a .. '.gen', gen, a .. '.model', model)
  return a
end

-- new_exchange adds a user message with text after node p, and its empty
-- answer (new_answer); it returns both nodes.
local function new_exchange(p, text, gen, model, now_ms)
  local u = new_node(p)
  redis.call('HSET', msgs, u .. '.role', 'user', u .. '.text', text, u .. '.status', 'done',
    u .. '.error', '', u .. '.at', now_ms)
  return u, new_answer(u, gen, model, now_ms)
end

-- set_path makes the path from position i run through node n and then each
-- node's selected child down to a leaf, marking each node with revision id
-- (it is shown anew there), and drops the positions after it. It returns
-- the path's length.
local function set_path(i, n, id)
  local count = tonumber(redis.call('HGET', meta, 'count') or '0')
  while n do
    redis.call('HSET', msgs, 'p.' .. i, n, n .. '.rev', id)
    i = i + 1
    n = redis.call('HGET', msgs, n .. '.sel')
  end
  for j = i, count - 1 do redis.call('HDEL', msgs, 'p.' .. j) end
  redis.call('HSET', meta, 'count', i)
  return i
end

-- active_pos is the position of the answer being written (an answer started
-- before the tree has none stored: its node was its position).
local function active_pos()
  local p = redis.call('HGET', meta, 'apos')
  if not p or p == '' then p = redis.call('HGET', meta, 'amsg') end
  return tonumber(p)
end

-- answer_model is the model a new answer is written by: the
-- conversation's choice, else the deployment's default.
local function answer_model(default)
  local m = redis.call('HGET', meta, 'model')
  if m and m ~= '' then return m end
  return default
end

-- start_answer makes node a, at position pos, the answer generation gen writes.
local function start_answer(a, pos, gen, lease_ms)
  redis.call('DEL', textkey(a))
  redis.call('HSET', meta, 'active', gen, 'amsg', a, 'apos', pos, 'stop', '')
  redis.call('SET', lease, gen, 'PX', lease_ms)
end

-- finish ends generation gen of answer node n with a final status; cut
-- ('1') marks a done answer the model stopped at its length limit. The answer's
-- text moves from its own key into the hash: one copy per answer.
local function finish(n, gen, status, err, cut)
  local pos = active_pos()
  cut = cut or ''
  if redis.call('HEXISTS', msgs, n .. '.kept') == 1 and status ~= 'done' then
    -- A continuation that did not finish: the answer it went on with was
    -- done, so it stays done (stopped, if a person stopped it) and can be
    -- continued again; the reason shows with it.
    cut = '1'
    if status ~= 'stopped' then status = 'done' end
  end
  -- c: cut at the length limit, so a room shows the cut line and Continue.
  local fields, ev = {'t', 'end', 'm', pos, 's', status, 'e', err, 'g', gen}, {t = 'end', m = pos, s = status, e = err, g = gen}
  if cut == '1' then
    fields[#fields + 1], fields[#fields + 2], ev.c = 'c', '1', true
  end
  local id = emit(fields, ev)
  local tk = textkey(n)
  local text = redis.call('GET', tk)
  if text then
    redis.call('HSET', msgs, n .. '.text', text)
    redis.call('DEL', tk)
  end
  redis.call('HSET', msgs, n .. '.status', status, n .. '.error', err, n .. '.rev', id, n .. '.cut', cut)
  redis.call('HSET', meta, 'active', '', 'amsg', '', 'apos', '', 'stop', '')
  redis.call('DEL', lease)
  touch()
  return id
end

-- end_dead ends the answer of a generation whose lease ran out; it reports
-- false when one is alive (the caller is busy).
local function end_dead(interrupted)
  local active = redis.call('HGET', meta, 'active') or ''
  if active == '' then return true end
  if redis.call('EXISTS', lease) == 1 then return false end
  finish(redis.call('HGET', meta, 'amsg'), active, 'interrupted', interrupted)
  return true
end
