-- Publishes an event unless the same event id was published to this stream within
-- the de-duplication window: a producer that retries after a timeout gets the first
-- entry's id back instead of creating a second event.
--
-- KEYS[1] stream, KEYS[2] marker of this event id
-- ARGV[1] window ms, ARGV[2..] field, value, ...
-- Returns {entry id, 1 if new else 0}.
local seen = redis.call('GET', KEYS[2])
if seen then return {seen, 0} end
local cmd = {'XADD', KEYS[1], '*'}
for i = 2, #ARGV do table.insert(cmd, ARGV[i]) end
local id = redis.call(unpack(cmd))
redis.call('SET', KEYS[2], id, 'PX', ARGV[1])
return {id, 1}
