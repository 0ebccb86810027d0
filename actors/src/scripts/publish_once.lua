-- Publishes events to one stream unless the same event id was published to it
-- within the de-duplication window: a producer that retries after a timeout gets
-- the first entry's id back instead of creating a second event. One call carries a
-- whole batch, so the cost per event stays close to a plain XADD.
--
-- KEYS[1] stream, KEYS[1 + i] marker of event i
-- ARGV[1] window ms, then per event: field count n, then n field/value pairs
-- Returns per event {entry id, 1 if new else 0}.
local out = {}
local a = 2
for i = 2, #KEYS do
  local n = tonumber(ARGV[a])
  local seen = redis.call('GET', KEYS[i])
  if seen then
    table.insert(out, {seen, 0})
  else
    local cmd = {'XADD', KEYS[1], '*'}
    for j = a + 1, a + 2 * n do table.insert(cmd, ARGV[j]) end
    local id = redis.call(unpack(cmd))
    redis.call('SET', KEYS[i], id, 'PX', ARGV[1])
    table.insert(out, {id, 1})
  end
  a = a + 1 + 2 * n
end
return out
