"""The Lua scripts of ``gateway.shared``: each runs atomically on the Redis server."""

# Claims, batched: the calls made in one turn of the event loop go as one script.
# KEYS: every group's keys, in order; ARGV: claim ms, then per group its size and claim
# value. Per group: "done" when one of its keys is done (a duplicate), "busy" when one is
# claimed, else each key is claimed: "claimed".
CLAIM = """
local ms, out, k = ARGV[1], {}, 1
for g = 1, (#ARGV - 1) / 2 do
  local size, value = tonumber(ARGV[2 * g]), ARGV[2 * g + 1]
  local state = 'claimed'
  for i = k, k + size - 1 do
    local v = redis.call('GET', KEYS[i])
    if v == 'd' then state = 'done'; break end
    if v then state = 'busy' end
  end
  if state == 'claimed' then
    for i = k, k + size - 1 do redis.call('SET', KEYS[i], value, 'PX', ms) end
  end
  out[g] = state
  k = k + size
end
return out
"""
# Settles, batched as claims are. KEYS: every group's keys; ARGV: the window in ms (or
# "" to delete), then per group its size and claim value. Only keys still holding their
# group's claim are touched.
SETTLE = """
local ms, k = ARGV[1], 1
for g = 1, (#ARGV - 1) / 2 do
  local size, value = tonumber(ARGV[2 * g]), ARGV[2 * g + 1]
  for i = k, k + size - 1 do
    if redis.call('GET', KEYS[i]) == value then
      if ms ~= '' then redis.call('SET', KEYS[i], 'd', 'PX', ms)
      else redis.call('DEL', KEYS[i]) end
    end
  end
  k = k + size
end
return 1
"""
# A token bucket on the server's clock. KEYS[1]: the bucket; ARGV: rate, capacity.
# Returns the seconds until a token is there ("0": one was taken).
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or capacity
local at = tonumber(b[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return tostring(wait)
"""
# KEYS: lease, fence counter; ARGV: owner, ttl ms. Returns "owner|fence" or "".
ACQUIRE = """
local held = redis.call('GET', KEYS[1])
if held then
  if string.sub(held, 1, #ARGV[1] + 1) == ARGV[1] .. '|' then
    redis.call('PEXPIRE', KEYS[1], ARGV[2]); return held
  end
  return ''
end
local lease = ARGV[1] .. '|' .. redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], lease, 'PX', ARGV[2])
return lease
"""
# KEYS: lease; ARGV: "owner|fence", ttl ms. 1 when still held (and extended).
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2]); return 1
end
return 0
"""
# KEYS: lease, cursor; ARGV: "owner|fence", the cursor. 1 when committed.
COMMIT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2]); return 1
end
return 0
"""
