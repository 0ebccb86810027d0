-- Moves one pending entry to the dead-letter stream and acks it, in one atomic step:
-- it is never both lost and never in both places. Does nothing (returns false) when
-- the entry is not pending for this consumer: already dead-lettered (a second
-- attempt cannot duplicate it), or claimed by another consumer that runs it now
-- (only the entry's current owner may give up on it).
--
-- KEYS[1] stream, KEYS[2] dead-letter stream, KEYS[3] retry schedule
-- ARGV[1] group, ARGV[2] entry id, ARGV[3] dead-letter stream max length (0 = none),
-- ARGV[4] consumer that must own the entry, ARGV[5..] field, value, field, value ...
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1, ARGV[4])
if not p[1] then return false end
local cmd = {'XADD', KEYS[2]}
if tonumber(ARGV[3]) > 0 then
  table.insert(cmd, 'MAXLEN'); table.insert(cmd, '~'); table.insert(cmd, ARGV[3])
end
table.insert(cmd, '*')
for i = 5, #ARGV do table.insert(cmd, ARGV[i]) end
local id = redis.call(unpack(cmd))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
return id
