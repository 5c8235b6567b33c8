-- append: appends text to the answer of generation gen and renews its lease
-- (re-taking it if it ran out while nobody ended the answer). A stale
-- generation (its answer ended or superseded) is refused in the same step
-- that would append, so it never writes after another process ended its
-- answer. Its cost does not depend on the answer's length: the text is
-- APPENDed to the answer's own key. Returns {'ok', id, length after},
-- {'stop'}, {'full'} or {'stale'}.
-- KEYS: prelude's
-- ARGV: prelude's, then appendArgv: gen, text, max_bytes (of an answer),
--       lease_ms, got_ms (when the generation got the text, or ''),
--       offset (the answer's length the text goes after; -1: unchecked)
local gen, text, max_bytes, lease_ms, got_ms, offset = unpack(ARGV, 5)
if redis.call('HGET', meta, 'active') ~= gen then return {'stale'} end
local holder = redis.call('GET', lease)
if holder and holder ~= gen then return {'stale'} end
-- Renews the lease, or re-takes it after Redis was unreachable for longer
-- than the lease: nobody ended or superseded the answer (it is still gen's),
-- so its living generation goes on (see renew.lua).
redis.call('SET', lease, gen, 'PX', lease_ms)
if redis.call('HGET', meta, 'stop') == gen then return {'stop'} end
local n = redis.call('HGET', meta, 'amsg')
local tk = textkey(n)
local cur = redis.call('STRLEN', tk)
local off = tonumber(offset or '') or -1
if off >= 0 and cur ~= off then
  -- A retried batch whose first try ran but whose reply was lost: append
  -- only what is missing, so retries never double text.
  local landed = cur - off
  if landed < 0 or landed > #text or redis.call('GETRANGE', tk, off, cur - 1) ~= string.sub(text, 1, landed) then
    return {'stale'}
  end
  text = string.sub(text, landed + 1)
  if text == '' then return {'ok', redis.call('HGET', meta, 'last') or '0-0', tostring(cur)} end
end
if cur + #text > tonumber(max_bytes) then return {'full'} end
local pos = active_pos()
local ev = {t = 'delta', m = pos, x = text}
-- Carried in the notice, not the log: any process can measure token-to-frame latency.
if got_ms ~= '' then ev.a = got_ms end
local id = emit({'t', 'delta', 'm', pos, 'x', text}, ev)
if redis.call('APPEND', tk, text) == #text and ttl > 0 then redis.call('PEXPIRE', tk, ttl) end
redis.call('HSET', msgs, n .. '.rev', id)
return {'ok', id, tostring(cur + #text)}
