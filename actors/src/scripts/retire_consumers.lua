-- Removes the consumers of a group that have been silent for min_idle ms and own no
-- pending entry. Atomic, so an entry cannot be handed to a consumer between the
-- check and the delete (XGROUP DELCONSUMER drops what the consumer owns).
--
-- KEYS[1] stream; ARGV[1] group, ARGV[2] min_idle_ms
-- Returns the names removed.
local removed = {}
local min_idle = tonumber(ARGV[2])
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  -- 'inactive' (Redis 7.2+) counts from the last successful read, and is -1 for a
  -- consumer that never read anything; 'idle' counts from any interaction.
  local silent = f['inactive']
  if silent == nil or silent < 0 then silent = f['idle'] end
  if f['pending'] == 0 and silent ~= nil and silent >= min_idle then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    table.insert(removed, f['name'])
  end
end
return removed
