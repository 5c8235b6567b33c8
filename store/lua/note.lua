-- note: shows text on the answer generation gen is writing, while it
-- waits (its error field, which its end replaces): "Retrying in 4 s".
-- KEYS: prelude's
-- ARGV: prelude's, then noteArgv: gen, text
local gen, text = unpack(ARGV, 5)
if redis.call('HGET', meta, 'active') ~= gen then return {'stale'} end
local n, pos = redis.call('HGET', meta, 'amsg'), active_pos()
local id = emit({'t', 'note', 'm', pos, 'x', text, 'g', gen}, {t = 'note', m = pos, x = text, g = gen})
redis.call('HSET', msgs, n .. '.error', text, n .. '.rev', id)
return {'ok', id}
