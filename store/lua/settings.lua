-- settings: sets a conversation's model and/or its instructions (the
-- system prompt), and logs a settings event carrying both, so every viewer
-- shows them.
-- KEYS: prelude's
-- ARGV: prelude's, then settingsArgv: owner, set_model ('1' or '0'), model,
--       set_sys ('1' or '0'), sys, reset_sys ('1': back to the deployment's default)
local owner, set_model, model, set_sys, sys, reset_sys = unpack(ARGV, 5)
if redis.call('EXISTS', meta) == 0 then return {'notfound'} end
if redis.call('HGET', meta, 'owner') ~= owner then return {'forbidden'} end
if set_model == '1' then redis.call('HSET', meta, 'model', model) end
if reset_sys == '1' then
  redis.call('HDEL', meta, 'sys')
elseif set_sys == '1' then
  redis.call('HSET', meta, 'sys', sys)
end
local cur = redis.call('HMGET', meta, 'model', 'sys')
local sysset = '0'
if cur[2] then sysset = '1' end
local id = emit({'t', 'settings', 'o', cur[1] or '', 'x', cur[2] or '', 's', sysset},
  {t = 'settings', o = cur[1] or '', x = cur[2] or '', s = sysset})
touch()
return {'ok', id}
