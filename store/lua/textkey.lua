-- textkey(n): the key of answer n's text while it is being written,
-- {c:ID}:t:N, built from the meta key {c:ID}:meta in KEYS[1] (same hash tag,
-- so the same cluster slot as the declared keys).
local function textkey(n) return string.sub(KEYS[1], 1, #KEYS[1] - 4) .. 't:' .. n end
