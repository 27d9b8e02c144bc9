"""`redis://HOST:PORT/DB`: state shared by a fleet. Each reserve and each settle is one Lua script, so
it is atomic on the server and costs one round trip (EVALSHA); counters are hashes (`used`,
`reserved`) that expire shortly after their window ends.

Live reservations are a sorted set scored by lease end plus one record per reservation (the holds,
as JSON); every reserve first drops those whose lease has passed. Times are passed in from the
store's clock, never read on the server, so windows and leases follow the same clock everywhere.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from policyrouter.registry import Registry
from policyrouter.state.errors import StateError
from policyrouter.state.model import Check, Counter, Hold, Op
from policyrouter.state.store import StateStore

if TYPE_CHECKING:
    import redis as redis_lib

KEY_PREFIX = "policyrouter:"
SOCKET_TIMEOUT = 2.0  # seconds: an unreachable server fails fast instead of hanging a request
DONE_TTL = 86400  # seconds a finished reservation is remembered, so a retried settle counts once

# Shared by every script: KEYS[1] is the reservations sorted set; ARGV[1] the key prefix, ARGV[2] now.
_COMMON = """
local prefix = ARGV[1]
local now = tonumber(ARGV[2])
local zset = KEYS[1]

local function drop(rid)
  local rkey = prefix .. 'res:' .. rid
  local holds = redis.call('GET', rkey)
  redis.call('ZREM', zset, rid)
  if not holds then return false end
  for _, h in ipairs(cjson.decode(holds)) do
    local key = prefix .. h[1]
    if redis.call('EXISTS', key) == 1 then
      redis.call('HINCRBYFLOAT', key, 'reserved', -tonumber(h[2]))
    end
  end
  redis.call('DEL', rkey)
  return true
end

local function reap()
  local ids = redis.call('ZRANGEBYSCORE', zset, '-inf', now)
  for _, rid in ipairs(ids) do drop(rid) end
  return #ids
end
"""

_RESERVE = (
    _COMMON
    + """
-- ARGV: prefix, now, rid, lease_until, nchecks, (key, amount, limit|'')*,
--       nholds, (key, amount, ttl_ms|'')*, holds_json
reap()
local rid, lease_until = ARGV[3], ARGV[4]
local i = 6
local out = {}
local failed = 0
for c = 1, tonumber(ARGV[5]) do
  local v = redis.call('HMGET', prefix .. ARGV[i], 'used', 'reserved')
  local used, reserved = v[1] or '0', v[2] or '0'
  out[#out + 1] = used
  out[#out + 1] = reserved
  local limit = ARGV[i + 2]
  if failed == 0 and limit ~= '' then
    local lim = tonumber(limit)
    local total = tonumber(used) + tonumber(reserved) + tonumber(ARGV[i + 1])
    if total > lim + 1e-9 * math.max(1, math.abs(lim)) then failed = c end
  end
  i = i + 3
end
if failed > 0 then
  table.insert(out, 1, tostring(failed))
  return out
end
local nholds = tonumber(ARGV[i])
i = i + 1
for h = 1, nholds do
  local key = prefix .. ARGV[i]
  redis.call('HINCRBYFLOAT', key, 'reserved', ARGV[i + 1])
  if ARGV[i + 2] ~= '' then redis.call('PEXPIRE', key, ARGV[i + 2]) end
  i = i + 3
end
redis.call('SET', prefix .. 'res:' .. rid, ARGV[i])
redis.call('ZADD', zset, lease_until, rid)
table.insert(out, 1, '0')
return out
"""
)

_FINISH = (
    _COMMON
    + """
-- ARGV: prefix, now, rid|'', max_samples, done_ttl, nops, (action, key, value, ttl_ms|'')*, nread, key*
-- returns: was live ('1'/'0', '-1' if already finished), each op's value, then used, reserved per key read
reap()
local rid = ARGV[3]
local out = {'0'}
if rid ~= '' then
  local done = prefix .. 'done:' .. rid
  if redis.call('EXISTS', done) == 1 then return {'-1'} end
  if drop(rid) then out[1] = '1' end
  redis.call('SET', done, '1', 'EX', ARGV[5])
end
local i = 7
for o = 1, tonumber(ARGV[6]) do
  local action, key, value, ttl = ARGV[i], prefix .. ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if action == 'push' then
    redis.call('LPUSH', key, value)
    redis.call('LTRIM', key, 0, tonumber(ARGV[4]) - 1)
    out[#out + 1] = value
  else
    if action == 'add' then
      out[#out + 1] = redis.call('HINCRBYFLOAT', key, 'used', value)
    elseif action == 'max' then
      local kept = redis.call('HGET', key, 'used')
      if kept and tonumber(kept) >= tonumber(value) then
        value, ttl = kept, ''  -- the larger value stays, with its own expiry
      else
        redis.call('HSET', key, 'used', value)
      end
      out[#out + 1] = value
    else
      redis.call('HSET', key, 'used', value)
      out[#out + 1] = value
    end
    if ttl ~= '' then redis.call('PEXPIRE', key, ttl) end
  end
  i = i + 4
end
for r = 1, tonumber(ARGV[i]) do
  local counter = redis.call('HMGET', prefix .. ARGV[i + r], 'used', 'reserved')
  out[#out + 1] = counter[1] or '0'
  out[#out + 1] = counter[2] or '0'
end
return out
"""
)

_REAP = _COMMON + "return reap()\n"

_FORGET = (
    _COMMON
    + """
-- ARGV: prefix, now, pattern|'', suffix|'', nkeys, key*
-- deletes the keys, and those that match the pattern; a live reservation's holds on them go too
local pattern, suffix = ARGV[3], ARGV[4]
local named = {}
local n = 0
for k = 1, tonumber(ARGV[5]) do
  named[ARGV[5 + k]] = true
  n = n + redis.call('DEL', prefix .. ARGV[5 + k])
end
if pattern ~= '' then
  local cursor = '0'
  repeat
    local found = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 500)
    cursor = found[1]
    for _, key in ipairs(found[2]) do n = n + redis.call('DEL', key) end
  until cursor == '0'
end
for _, rid in ipairs(redis.call('ZRANGE', zset, 0, -1)) do
  local rkey = prefix .. 'res:' .. rid
  local holds = redis.call('GET', rkey)
  if holds then
    local kept, dropped = {}, false
    for _, h in ipairs(cjson.decode(holds)) do
      if named[h[1]] or (suffix ~= '' and h[1]:sub(-#suffix) == suffix) then
        dropped = true
      else
        kept[#kept + 1] = h
      end
    end
    if dropped then redis.call('SET', rkey, #kept > 0 and cjson.encode(kept) or '[]') end
  end
end
return n
"""
)


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" if parts.username else f":***@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


_URL_HELP = "write it like `redis://HOST:PORT/DB`, `rediss://USER:${PASSWORD}@HOST:PORT/DB` or `unix:///PATH`"


def _check_url(url: str, shown: str) -> None:
    """What redis-py would read otherwise: `/abc` or `/0/x` as database 0, a port of 99999 late."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise StateError(shown, "the port is not a number from 1 to 65535", _URL_HELP)
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise StateError(shown, f"the database `{database}` is not a number", _URL_HELP)


class RedisStore(StateStore):
    def __init__(
        self,
        registry: Registry,
        url: str,
        *,
        key_prefix: str = KEY_PREFIX,
        socket_timeout: float = SOCKET_TIMEOUT,
        **options: Any,
    ) -> None:
        super().__init__(registry, redact(url), **options)
        try:
            import redis as redis_lib
        except ImportError as e:
            raise StateError(
                self.url, "the `redis` package is not installed", "pip install 'policyrouter[redis]'"
            ) from e
        self._errors_type = redis_lib.RedisError
        self._closed = False
        self.prefix = key_prefix
        self._zset = f"{key_prefix}reservations"
        _check_url(url, self.url)
        try:
            self.client: redis_lib.Redis = redis_lib.Redis.from_url(
                url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout, decode_responses=True
            )
            pool = self.client.connection_pool  # an option it does not take fails here, not on first use
            pool.connection_class(**pool.connection_kwargs)
        except (ValueError, TypeError) as e:  # a port that is no number, an option redis-py does not take
            raise StateError(self.url, f"not a Redis URL redis-py can use: {e}", _URL_HELP) from None
        self._reserve_script = self.client.register_script(_RESERVE)
        self._finish_script = self.client.register_script(_FINISH)
        self._reap_script = self.client.register_script(_REAP)
        self._forget_script = self.client.register_script(_FORGET)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except Exception as e:
            if self._closed:  # redis-py on a connection closed under it raises what it happens to meet
                raise StateError(self.url, "the store was closed while a request used it", _CLOSED_HELP) from e
            if isinstance(e, self._errors_type):
                raise StateError(
                    self.url, f"{type(e).__name__}: {e}", "is the Redis server running and reachable?"
                ) from e
            raise

    def _argv(self, now: float) -> list[Any]:
        return [self.prefix, repr(now)]

    def _reserve(
        self, now: float, rid: str, lease_until: float, checks: Sequence[Check], holds: Sequence[Hold]
    ) -> tuple[int | None, list[Counter]]:
        args = [*self._argv(now), rid, repr(lease_until), len(checks)]
        for c in checks:
            args += [c.key, repr(c.amount), "" if c.limit is None else repr(c.limit)]
        args.append(len(holds))
        for h in holds:
            args += [h.key, repr(h.amount), _ms(h.ttl)]
        args.append(json.dumps([[h.key, repr(h.amount)] for h in holds]))
        with self._errors():
            out = self._reserve_script(keys=[self._zset], args=args)
        counters = [Counter(float(out[i]), float(out[i + 1])) for i in range(1, len(out), 2)]
        failed = int(out[0])
        return (failed - 1 if failed else None), counters

    def _run_finish(self, now: float, rid: str, ops: Sequence[Op], read: Sequence[str] = ()) -> list[str]:
        args = [*self._argv(now), rid, self.latency_samples, DONE_TTL, len(ops)]
        for op in ops:
            args += [op.action, op.key, repr(op.value), _ms(op.ttl)]
        args += [len(read), *read]
        with self._errors():
            return list(self._finish_script(keys=[self._zset], args=args))

    def _finish(self, now: float, rid: str, ops: Sequence[Op], read: Sequence[str]) -> tuple[bool, list[Counter]]:
        out = self._run_finish(now, rid, ops, read)
        if out[0] == "-1":  # finished before (a replay): nothing written, so read on their own
            return False, self._read(now, read)
        values = out[1 + len(ops) :]
        return out[0] == "1", [Counter(float(values[i]), float(values[i + 1])) for i in range(0, len(values), 2)]

    def _apply(self, now: float, ops: Sequence[Op]) -> list[float]:
        return [float(v) for v in self._run_finish(now, "", ops)[1:]]

    def _read(self, now: float, keys: Sequence[str]) -> list[Counter]:
        with self._errors():
            pipe = self.client.pipeline(transaction=False)
            for k in keys:
                pipe.hmget(self.prefix + k, "used", "reserved")
            rows = pipe.execute()
        return [Counter(float(u or 0), float(r or 0)) for u, r in rows]

    def _samples(self, key: str) -> list[float]:
        with self._errors():
            return [float(v) for v in self.client.lrange(self.prefix + key, 0, self.latency_samples - 1)]

    def _delete(self, keys: Sequence[str] | None, suffix: str | None) -> int:
        with self._errors():
            if keys is not None or suffix is not None:
                pattern = "" if suffix is None else _glob_escape(self.prefix) + "*" + _glob_escape(suffix)
                args = [*self._argv(0.0), pattern, suffix or "", len(keys or ()), *(keys or ())]
                return int(self._forget_script(keys=[self._zset], args=args))
            pattern = _glob_escape(self.prefix) + "*"
            n = 0
            batch: list[str] = []
            for key in self.client.scan_iter(match=pattern, count=500):
                batch.append(key)
                if len(batch) >= 500:
                    n += int(self.client.delete(*batch))
                    batch = []
            if batch:
                n += int(self.client.delete(*batch))
            return n

    def _keys(self, prefix: str) -> list[str]:
        pattern = _glob_escape(self.prefix + prefix) + "*"
        with self._errors():
            return [k.removeprefix(self.prefix) for k in self.client.scan_iter(match=pattern, count=500)]

    def _reap(self, now: float) -> int:
        with self._errors():
            return int(self._reap_script(keys=[self._zset], args=self._argv(now)))

    def _close(self) -> None:
        self._closed = True
        self.client.close()


_CLOSED_HELP = "close the router once the requests that use it are done (the end of its `with` block)"


def _ms(ttl: float | None) -> str:
    return "" if ttl is None else str(max(1, math.ceil(ttl * 1000)))


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)
