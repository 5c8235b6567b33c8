-- finish: ends generation gen with a final status, unless something else
-- (a stop of a dead generation, the sweeper) ended it first.
-- KEYS: prelude's
-- ARGV: prelude's, then finishArgv: gen, status, error (text for people, or ''),
--       cut ('1': the model stopped at its length limit)
local gen, status, err, cut = unpack(ARGV, 5)
if redis.call('HGET', meta, 'active') ~= gen then return {'stale'} end
local id = finish(redis.call('HGET', meta, 'amsg'), gen, status, err, cut)
return {'ok', id}
