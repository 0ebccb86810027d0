-- Trims one stream by age and length without ever removing an entry that some
-- consumer group has not yet read and acknowledged; then enforces the hard cap,
-- which alone may cut past a lagging group. No entry is read into the script: the
-- cuts are entry ids (MINID) or lengths, worked out from XINFO and XPENDING
-- summaries, so the cost does not grow with the number of entries removed.
--
-- KEYS[1] stream
-- ARGV[1] age cut: keep entries with id >= this ('' for no age limit)
-- ARGV[2] maxlen (0: none), ARGV[3] hard cap (0: none), ARGV[4] '1' when the
-- server has XTRIM ... ACKED (Redis 8.2+): then Redis itself keeps every entry some group has not acked, and
-- the acked entries behind a lagging group's oldest one are freed too.
-- ARGV[5] '1' to remove everything every group has finished (a redelivery stream,
-- which holds nothing worth keeping once handled).
-- Returns {removed, forced, {group, needed id, lag, ...}, {group cut off, ...},
-- {group, ...}}: the groups listed third held trimming back; those listed fourth
-- lost unread entries to the hard cap; the fifth list names every group (whose
-- redelivery streams the caller trims next, without asking Redis again).
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return {0, 0, {}, {}, {}} end

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

local info = redis.call('XINFO', 'STREAM', key)
local s = {}
for i = 1, #info, 2 do s[info[i]] = info[i + 1] end
local len = s['length']
local last = s['last-generated-id']

-- What each group still needs: its oldest pending entry, or else its first unread
-- (the entry after its last-delivered id).
local needs = {}
local names = {}
local safe = nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  table.insert(names, f['name'])
  local need = nil
  local p = redis.call('XPENDING', key, f['name'])
  if p[1] > 0 then
    need = p[2]
  elseif less(f['last-delivered-id'], last) then
    need = after(f['last-delivered-id'])
  end
  if need then
    table.insert(needs, {f['name'], need, f['lag'] or -1})
    if safe == nil or less(need, safe) then safe = need end
  end
end

-- Where retention wants to cut (keep ids >= want).
local want = nil
if ARGV[1] ~= '' then want = ARGV[1] end
if ARGV[5] == '1' then want = after(last) end
local maxlen = tonumber(ARGV[2])
local by_length = nil
if maxlen > 0 and len > maxlen then
  if ARGV[4] == '1' then
    by_length = maxlen
  else
    -- The id at a position is unknown without reading entries. A small excess is
    -- read exactly (at most 1,000 entries). A large one is
    -- estimated from the ids' times, assuming an even rate between the first and
    -- the last entry, a little short of the excess so that about maxlen entries
    -- stay; the next ticks correct what this one misjudged, exactly once the
    -- excess is small.
    local excess = len - maxlen
    local cut = nil
    if excess > 1000 then
      local fm = parse(s['first-entry'][1])
      local lm = parse(last)
      local est = fm + math.floor((lm - fm) * (excess / len) * 0.98)
      if est > fm then cut = string.format('%d-0', est) end
    end
    if cut == nil then
      local r = redis.call('XRANGE', key, '-', '+', 'COUNT', math.min(excess, 10000))
      if #r > 0 then cut = after(r[#r][1]) end
    end
    if cut and (want == nil or less(want, cut)) then want = cut end
  end
end

local removed = 0
local laggards = {}
local function note_laggards(cut)
  for _, n in ipairs(needs) do
    if less(n[2], cut) then
      table.insert(laggards, n[1]); table.insert(laggards, n[2]); table.insert(laggards, n[3])
    end
  end
end
if ARGV[4] == '1' then
  if by_length then
    removed = removed + redis.call('XTRIM', key, 'MAXLEN', by_length, 'ACKED')
  end
  if want then
    removed = removed + redis.call('XTRIM', key, 'MINID', want, 'ACKED')
    note_laggards(want)
  elseif by_length and safe and redis.call('XLEN', key) > by_length then
    -- Entries not yet acked kept the stream longer than maxlen (the trim is
    -- exact): the group with the oldest need holds it back.
    note_laggards(after(safe))
  end
elseif want then
  local target = want
  if safe and less(safe, want) then
    target = safe
    note_laggards(want)
  end
  removed = redis.call('XTRIM', key, 'MINID', target)
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
return {removed, forced, laggards, cut_off, names}
