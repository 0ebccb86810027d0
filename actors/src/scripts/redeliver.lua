-- Sends a dead letter back to the one group that failed it: its original fields go
-- to that group's redelivery stream (read only by that group's routers) and the
-- dead letter is removed, in one atomic step. Optionally records what was done in
-- the audit stream. Does nothing (returns false) when the dead letter is gone.
--
-- KEYS[1] dead-letter stream, KEYS[2] the group's redelivery stream, KEYS[3] audit
-- ARGV[1] dead letter id, ARGV[2] audit note ('' for none), ARGV[3..] field, value, ...
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if not e[1] then return false end
local cmd = {'XADD', KEYS[2], '*'}
for i = 3, #ARGV do table.insert(cmd, ARGV[i]) end
local id = redis.call(unpack(cmd))
redis.call('XDEL', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then
  local audit = {'XADD', KEYS[3], 'MAXLEN', '~', 100000, '*', 'action', ARGV[2], 'redelivered_as', id}
  local f = e[1][2]
  for i = 1, #f do table.insert(audit, f[i]) end
  redis.call(unpack(audit))
end
return id
