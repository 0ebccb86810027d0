-- Sends a dead letter back to the one group that failed it: its original fields go
-- to that group's redelivery stream (read only by that group's routers) and the
-- dead letter is removed, in one atomic step. Optionally records what was done in
-- the audit stream, with the dead letter's entry id (`dlq_entry_id`) and all its
-- fields, so a reader of the audit knows exactly which one went where. Does
-- nothing (returns false) when the dead letter is gone.
--
-- KEYS[1] dead-letter stream, KEYS[2] the group's redelivery stream, KEYS[3] audit
-- ARGV[1] dead letter id, ARGV[2] audit note ('' for none), ARGV[3] 'copy' (send
-- the dead letter's own fields but dlq_* and reprocessed, byte for byte) or
-- 'given' (send only the fields that follow), ARGV[4..] field, value, ...
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if not e[1] then return false end
local cmd = {'XADD', KEYS[2], '*'}
if ARGV[3] == 'copy' then
  local f = e[1][2]
  for i = 1, #f, 2 do
    local k = f[i]
    if string.sub(k, 1, 4) ~= 'dlq_' and k ~= 'reprocessed' then
      table.insert(cmd, k); table.insert(cmd, f[i + 1])
    end
  end
end
for i = 4, #ARGV do table.insert(cmd, ARGV[i]) end
local id = redis.call(unpack(cmd))
redis.call('XDEL', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then
  local audit = {'XADD', KEYS[3], 'MAXLEN', '~', 100000, '*', 'action', ARGV[2], 'redelivered_as', id, 'dlq_entry_id', ARGV[1]}
  local f = e[1][2]
  for i = 1, #f do table.insert(audit, f[i]) end
  redis.call(unpack(audit))
end
return id
