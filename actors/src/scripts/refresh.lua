-- Keeps this consumer's leases: resets the idle time of each given entry that this
-- consumer still owns, so nobody takes it for abandoned. An entry that another
-- consumer owns now (it claimed it while we could not reach Redis) or that is no
-- longer pending is left alone and returned as lost: its handler here must stop.
--
-- KEYS[1] stream; ARGV[1] group, ARGV[2] consumer, ARGV[3..] entry ids
-- Returns the ids that are no longer ours.
local lost = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2])
  if p[1] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
  else
    table.insert(lost, id)
  end
end
return lost
