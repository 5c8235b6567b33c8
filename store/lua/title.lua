-- title: sets the title and logs it, so every tab shows it live and a page
-- that reconnects gets it in its catch-up. Returns {'ok', id, owner} (the
-- caller rings the owner's channel, outside the conversation's slot),
-- {'kept'}, {'notfound'} or {'forbidden'}.
-- KEYS: prelude's
-- ARGV: prelude's, then titleArgv: title, if_empty ('1': a generated title
--       never overwrites one the owner chose, only a provisional one), owner
--       (required owner, or ''), provisional ('1': the first message's first
--       words, while no answer has text)
local title, if_empty, want_owner, provisional = unpack(ARGV, 5)
if redis.call('EXISTS', meta) == 0 then return {'notfound'} end
local owner = redis.call('HGET', meta, 'owner') or ''
if want_owner ~= '' and owner ~= want_owner then return {'forbidden'} end
if if_empty == '1' and (redis.call('HGET', meta, 'title') or '') ~= '' and redis.call('HGET', meta, 'tprov') ~= '1' then
  return {'kept'}
end
local id = emit({'t', 'title', 'x', title}, {t = 'title', x = title})
redis.call('HSET', meta, 'title', title, 'tprov', provisional)
touch()
return {'ok', id, owner}
