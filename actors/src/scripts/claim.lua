-- Hands this consumer the entries it should run next, beyond new ones:
--   1. retries that are due (the group's retry schedule, a sorted set);
--   2. entries left pending by a consumer that has been silent for min_idle ms,
--      unless they wait in the retry schedule (their backoff is honoured even when
--      the consumer that failed them is gone).
-- The scan of the pending list looks at no more than `scan` entries per call and
-- goes on from the cursor next time, so a long pending list costs the same each
-- tick instead of being read whole every second.
-- Returns {next_cursor, {{id, fields, deliveries}...}, gone}, where deliveries is the
-- delivery count including this one, and gone counts pending ids whose entry had
-- already been trimmed (they are acked here: nothing can ever run them).
--
-- KEYS[1] stream, KEYS[2] retry schedule
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] min_idle_ms, ARGV[4] count,
-- ARGV[5] now_ms, ARGV[6] cursor for the scan of the pending list ('-' to start),
-- ARGV[7] most pending entries to look at in this call
local stream, schedule = KEYS[1], KEYS[2]
local group, me, min_idle = ARGV[1], ARGV[2], tonumber(ARGV[3])
local count = tonumber(ARGV[4])
local scan = tonumber(ARGV[7])
local out, gone = {}, 0

local function take(id, min, deliveries)
  local claimed = redis.call('XCLAIM', stream, group, me, min, id)
  local entry = claimed[1]
  if entry and entry[2] then
    table.insert(out, {entry[1], entry[2], deliveries + 1})
  else
    -- The entry was trimmed or deleted while pending.
    redis.call('XACK', stream, group, id)
    gone = gone + 1
  end
end

local due = redis.call('ZRANGEBYSCORE', schedule, '-inf', ARGV[5], 'LIMIT', 0, count)
for _, id in ipairs(due) do
  redis.call('ZREM', schedule, id)
  local p = redis.call('XPENDING', stream, group, id, id, 1)
  if p[1] then take(id, 0, p[1][4]) end
end

local room = count - #out
local cursor = ARGV[6]
if room > 0 then
  local rows = redis.call('XPENDING', stream, group, cursor, '+', scan)
  for _, p in ipairs(rows) do
    cursor = '(' .. p[1]
    if p[3] >= min_idle and not redis.call('ZSCORE', schedule, p[1]) then
      take(p[1], min_idle, p[4])
      if #out >= count then break end
    end
  end
  if #rows < scan then cursor = '-' end
end
return {cursor, out, gone}
