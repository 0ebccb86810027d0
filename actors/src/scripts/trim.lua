-- Trims one stream by age and length without ever removing an entry that some
-- consumer group has not yet read and acknowledged; then enforces the hard cap,
-- which alone may cut past a lagging group.
--
-- KEYS[1] stream
-- ARGV[1] age cut: keep entries with id >= this ('' for no age limit)
-- ARGV[2] maxlen (0: none), ARGV[3] hard cap (0: none), ARGV[4] most entries
-- removed by length in one call, ARGV[5] '1' when the server has XTRIM ... ACKED
-- (Redis 8.2+): then Redis itself keeps every entry some group has not acked, and
-- the acked entries behind a lagging group's oldest one are freed too.
-- Returns {removed, forced, {group, needed id, lag, ...}, {group cut off, ...}}:
-- the groups listed third held trimming back; those listed fourth lost unread
-- entries to the hard cap.
local key = KEYS[1]

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms) or 0, tonumber(seq) or 0
end
local function less(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
local function after(id)
  local ms, seq = parse(id)
  return string.format('%d-%d', ms, seq + 1)
end

-- What each group still needs: its oldest pending entry, or else its first unread.
local needs = {}
local safe = nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  local need = nil
  local p = redis.call('XPENDING', key, f['name'])
  if p[1] > 0 then need = p[2] end
  local nxt = redis.call('XRANGE', key, '(' .. f['last-delivered-id'], '+', 'COUNT', 1)
  if nxt[1] and (need == nil or less(nxt[1][1], need)) then need = nxt[1][1] end
  if need then
    table.insert(needs, {f['name'], need, f['lag'] or -1})
    if safe == nil or less(need, safe) then safe = need end
  end
end

-- Where retention wants to cut (keep ids >= want).
local want = nil
if ARGV[1] ~= '' then want = ARGV[1] end
local maxlen = tonumber(ARGV[2])
local len = redis.call('XLEN', key)
if maxlen > 0 and len > maxlen then
  local excess = math.min(len - maxlen, tonumber(ARGV[4]))
  local r = redis.call('XRANGE', key, '-', '+', 'COUNT', excess)
  if #r > 0 then
    local cut = after(r[#r][1])
    if want == nil or less(want, cut) then want = cut end
  end
end

local removed = 0
local laggards = {}
if want then
  local target = want
  if safe and less(safe, want) then
    target = safe
    for _, n in ipairs(needs) do
      if less(n[2], want) then
        table.insert(laggards, n[1]); table.insert(laggards, n[2]); table.insert(laggards, n[3])
      end
    end
  end
  if ARGV[5] == '1' then
    removed = redis.call('XTRIM', key, 'MINID', want, 'ACKED')
  else
    removed = redis.call('XTRIM', key, 'MINID', target)
  end
end

local forced = 0
local cut_off = {}
local cap = tonumber(ARGV[3])
if cap > 0 and redis.call('XLEN', key) > cap then
  forced = redis.call('XTRIM', key, 'MAXLEN', cap)
  local first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
  if first[1] then
    for _, n in ipairs(needs) do
      if less(n[2], first[1][1]) then table.insert(cut_off, n[1]) end
    end
  end
end
return {removed, forced, laggards, cut_off}
