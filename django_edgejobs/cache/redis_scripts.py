"""Lua scripts of RedisEdgeCache: each write of a value and its metadata key is one script, so
Redis runs it atomically and in one round trip.

Every script takes the value key and its metadata key in pairs (``KEYS[1]``, ``KEYS[2]``, ...);
a metadata key always sits beside its value key (same shard, same Cluster hash slot).
"""

from __future__ import annotations

import hashlib
from typing import Any

from redis.exceptions import NoScriptError


class LuaScript:
    """A script called by SHA, loaded on first use (EVAL caches it in the server)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, conn: Any, keys: list[Any], args: list[Any]) -> Any:
        try:
            return conn.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return conn.eval(self.source, len(keys), *keys, *args)


# KEYS: value/metadata pairs. ARGV: px ("" = no expiry), condition ("", "nx", "xx"),
# metadata mode ("k" keep, "r" replace), metadata JSON, then one encoded value per pair.
# "keep" drops metadata left from a key that no longer exists, and moves it to the new TTL.
SET = LuaScript("""
local px = tonumber(ARGV[1])
local cond, mode, meta = ARGV[2], ARGV[3], ARGV[4]
local out = {}
for i = 1, #KEYS, 2 do
  local v, m = KEYS[i], KEYS[i + 1]
  local existed = redis.call('EXISTS', v) == 1
  if (cond == 'nx' and existed) or (cond == 'xx' and not existed) then
    out[#out + 1] = 0
  else
    local value = ARGV[4 + (i + 1) / 2]
    if px then redis.call('SET', v, value, 'PX', px) else redis.call('SET', v, value) end
    if mode == 'r' then
      if px then redis.call('SET', m, meta, 'PX', px) else redis.call('SET', m, meta) end
    elseif not existed then
      redis.call('DEL', m)
    elseif px then
      redis.call('PEXPIRE', m, px)
    else
      redis.call('PERSIST', m)
    end
    out[#out + 1] = 1
  end
end
return out
""")

# The same as SET for one pair, without the loop: set() is the hot path, and the general
# script's loop and argument arithmetic cost more than the Redis commands themselves.
# Returns 1 when written, 0 when the condition refused.
SET_ONE = LuaScript("""
local v, m, px, cond = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local existed = redis.call('EXISTS', v) == 1
if (cond == 'nx' and existed) or (cond == 'xx' and not existed) then return 0 end
if px == '' then redis.call('SET', v, ARGV[5]) else redis.call('SET', v, ARGV[5], 'PX', px) end
if ARGV[3] == 'r' then
  if px == '' then redis.call('SET', m, ARGV[4]) else redis.call('SET', m, ARGV[4], 'PX', px) end
elseif not existed then
  redis.call('DEL', m)
elseif px == '' then
  redis.call('PERSIST', m)
else
  redis.call('PEXPIRE', m, px)
end
return 1
""")

# KEYS: value, metadata. ARGV: operation ("px", "pxat", "persist"), its number.
# Returns 1 when the key existed (its expiry is now the asked one), else 0.
EXPIRY = LuaScript("""
local v, m, op, n = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
if redis.call('EXISTS', v) == 0 then
  redis.call('DEL', m)
  return 0
end
if op == 'persist' then
  redis.call('PERSIST', v)
  redis.call('PERSIST', m)
elseif op == 'pxat' then
  redis.call('PEXPIREAT', v, n)
  redis.call('PEXPIREAT', m, n)
else
  redis.call('PEXPIRE', v, n)
  redis.call('PEXPIRE', m, n)
end
return 1
""")

# KEYS: value, metadata. Give the metadata the value's current expiry (after a client method
# that changed it on its own, such as HerdClient.touch).
SYNC = LuaScript("""
local t = redis.call('PTTL', KEYS[1])
if t == -2 then redis.call('DEL', KEYS[2])
elseif t == -1 then redis.call('PERSIST', KEYS[2])
else redis.call('PEXPIRE', KEYS[2], t) end
return t
""")

# KEYS: value, metadata. ARGV: amount, px on creation ("" = none), must exist ("1"/"0"),
# heal ("1": give a key without expiry the px, as a rate-limit window must end).
# Returns {new value, pttl}, or nil when the key must exist and does not.
INCREMENT = LuaScript("""
local v, m = KEYS[1], KEYS[2]
local existed = redis.call('EXISTS', v) == 1
if ARGV[3] == '1' and not existed then return nil end
local n = redis.call('INCRBY', v, ARGV[1])
local px = tonumber(ARGV[2])
if not existed then
  redis.call('DEL', m)
  if px then redis.call('PEXPIRE', v, px) end
end
local t = redis.call('PTTL', v)
if t == -1 and px and ARGV[4] == '1' then
  redis.call('PEXPIRE', v, px)
  t = px
end
return {n, t}
""")

# KEYS: old value, old metadata, new value, new metadata. Moves a key and its metadata to a
# new version, keeping the expiry. Returns 0 when the old key does not exist.
RENAME = LuaScript("""
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[3])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('RENAME', KEYS[2], KEYS[4])
else
  redis.call('DEL', KEYS[4])
end
return 1
""")
