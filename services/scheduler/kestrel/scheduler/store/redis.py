"""The Redis ``SchedulerStore`` for cluster mode: every scheduler replica reads and writes one state.

Each ``SchedulerStore`` call is one Lua script run with EVALSHA (``bind_session`` is one ``SET``),
so each call is atomic across replicas exactly as a ``MemoryStore`` call is atomic within one
event loop. ``try_acquire`` re-checks eligibility and adds the lease in the same script: two
replicas that both saw "one slot left" cannot both get it. Semantics are those of ``MemoryStore``;
the contract suite in ``tests/scheduler/test_store_contract.py`` runs against both.

Key layout, every key under ``prefix`` (``:`` and ``%`` inside ids are %-escaped, so a model name
such as ``a:b`` cannot collide with another account's key)::

    {prefix}lease:{account}          sorted set   lease id -> expires_at
    {prefix}health:{account}         hash         errors, backoff, auth, used
    {prefix}model:{account}:{model}  hash         cool, quota, quota_until
    {prefix}session:{session}:{model} string      "{expires_at} {account}"
    {prefix}changes                  channel      account id, on release / outcome applied

A lease is live while its score is above ``now``; scripts that write a lease set first remove the
expired ones, so an edge that crashed without completing gives its slot back at the lease's expiry
with no background task. Expiry *decisions* always compare the stored instants with the caller's
``now``; Redis key TTLs only collect garbage, so nothing grows without bound: a lease set lives
until its last lease expires, a model hash until its cooldown and quota reading are over, a session
binding until its sticky TTL ends, each plus ``expiry_slack_s``. A health hash outlives its backoff
or auth block by ``idle_ttl_s``: an account untouched that long forgets its error streak and when it
was last used, the one place where this store differs from ``MemoryStore``, which keeps both
forever.

Clocks. ``now`` is the calling replica's wall clock (epoch seconds) and is the only clock the
logic reads. Replicas must agree on it to within a small skew: a replica whose clock runs ahead by
d sees leases and cooldowns end d early (the cap on in-flight attempts can be exceeded by the
leases that end in that window). Key TTLs are set relative to the writer's ``now``
(``until - now``, PEXPIRE), never as absolute instants, so the Redis server's own clock does not
matter and tests may use fixed fake instants; ``expiry_slack_s`` must exceed the replicas' skew so
that a key is not collected while a replica whose clock runs behind still treats it as live.

Redis Cluster. Every script declares all the keys it touches, and ``try_acquire`` and
``snapshot`` touch several accounts' keys at once, so they must share a hash slot: give the prefix
a hash tag (``kestrel:{sched}:``) and the whole state lives on one shard. It is small (a few keys
per account, model and live session), so one shard is enough.

Restarts. The state is soft: if Redis loses it, in-flight leases are forgotten (slots look free at
once, so up to ``max_concurrency`` extra attempts may start; completing a forgotten lease is
harmless), cooldowns, backoffs and auth blocks are forgotten (the next attempt on a limited
account gets a fresh 429 and the cooldown is learned again), and sessions lose their binding (the
next success binds them again, possibly to another account, at the cost of one prompt-cache miss).
Scripts are reloaded transparently (``NoScriptError`` makes redis-py send ``SCRIPT LOAD`` once).
"""

from __future__ import annotations

import functools
import math
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError

from ..leases import AccountView, Effect, Snapshot
from ..ratelimits import Quota
from .base import Claim, Settlement

_LUA_HELPERS = """
-- A TTL in whole milliseconds, never below 1 (PEXPIRE with 0 or less deletes the key).
local function ms(seconds)
  local m = math.ceil(seconds * 1000)
  if m < 1 then return 1 end
  return m
end
-- A stored number, or 0 for a missing field (Redis nil arrives in Lua as false).
local function num(value)
  if value then return tonumber(value) or 0 end
  return 0
end
-- Keep a lease set until its last lease expires, plus slack; an emptied set is already gone.
local function touch_leases(key, now, slack)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then redis.call('PEXPIRE', key, ms(tonumber(last[2]) - now + slack)) end
end
-- Keep a health hash while a block lasts and for `idle` seconds after.
local function touch_health(key, now, idle)
  local h = redis.call('HMGET', key, 'backoff', 'auth')
  redis.call('PEXPIRE', key, ms(math.max(num(h[1]), num(h[2]), now) - now + idle))
end
"""

# KEYS: the (session, model) binding when ARGV[2] is '1', then per account: lease set, health
# hash, (account, model) hash. ARGV: now, has_session.
# Returns one JSON array: the binding (or false), then per account: in_flight, errors, backoff,
# auth, used, cool, quota, quota_until. Stored numbers stay strings, so no precision is lost; one
# JSON string parses far faster client-side than a RESP array of 8 replies per account (redis-py's
# parser is pure Python). Read-only: expired leases are not counted but are left for a write to reap.
_SNAPSHOT = """
local out = {false}
local first = 1
if ARGV[2] == '1' then
  out[1] = redis.call('GET', KEYS[1])
  first = 2
end
local live = '(' .. ARGV[1]
for i = first, #KEYS, 3 do
  out[#out + 1] = redis.call('ZCOUNT', KEYS[i], live, '+inf')
  local h = redis.call('HMGET', KEYS[i + 1], 'errors', 'backoff', 'auth', 'used')
  local p = redis.call('HMGET', KEYS[i + 2], 'cool', 'quota', 'quota_until')
  for _, v in ipairs({h[1], h[2], h[3], h[4], p[1], p[2], p[3]}) do out[#out + 1] = v end
end
return cjson.encode(out)
"""

# KEYS: per claim, in preference order: lease set, health hash, (account, model) hash.
# ARGV: now, expires_at, lease_id, slack_s, idle_s, then each claim's max_concurrency.
# Returns the 1-based index of the granted claim, 0 when none is eligible. The eligibility test is
# ``leases.block_of``: no auth block, cooldown or backoff beyond now, and fewer live leases than
# max_concurrency.
_TRY_ACQUIRE = """
local now, lease_id = tonumber(ARGV[1]), ARGV[3]
local slack, idle = tonumber(ARGV[4]), tonumber(ARGV[5])
local claims = #KEYS / 3
for i = 1, claims do
  redis.call('ZREMRANGEBYSCORE', KEYS[3 * i - 2], '-inf', ARGV[1])
  if redis.call('ZSCORE', KEYS[3 * i - 2], lease_id) then
    return redis.error_reply('lease already held')
  end
end
for i = 1, claims do
  local leases, health, pair = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local h = redis.call('HMGET', health, 'backoff', 'auth')
  if num(h[1]) <= now and num(h[2]) <= now and num(redis.call('HGET', pair, 'cool')) <= now
      and redis.call('ZCARD', leases) < tonumber(ARGV[5 + i]) then
    redis.call('ZADD', leases, ARGV[2], lease_id)
    touch_leases(leases, now, slack)
    redis.call('HSET', health, 'used', ARGV[1])
    touch_health(health, now, idle)
    return i
  end
end
return 0
"""

# KEYS: the account's lease set. ARGV: now, lease_id, expires_at, slack_s. Returns 1 or 0.
_RENEW = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[2])
touch_leases(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[4]))
return 1
"""

# KEYS: the account's lease set. ARGV: now, lease_id, channel, account_id. Returns 1 or 0.
# Publishes when a slot was freed, by this release or by reaping expired leases. The set's TTL is
# left as it is: it only ever outlives the leases left in it.
_RELEASE = """
local reaped = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local released = redis.call('ZREM', KEYS[1], ARGV[2])
if released + reaped > 0 then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return released
"""

# KEYS: health hash, (account, model) hash.
# ARGV: now, cool_until, backoff_base, backoff_max, clear_errors ('1'/'0'), auth_until,
# quota_fraction, quota_until, slack_s, idle_s, channel, account_id; '' = not in this effect.
# Mirrors ``MemoryStore.apply`` step by step, in the same order; times only ever extend.
_APPLY = """
local now = tonumber(ARGV[1])
local health, pair = KEYS[1], KEYS[2]
if ARGV[2] ~= '' and tonumber(ARGV[2]) > num(redis.call('HGET', pair, 'cool')) then
  redis.call('HSET', pair, 'cool', ARGV[2])
end
if ARGV[3] ~= '' then
  -- leases.backoff_delay: base * 2**(n-1) capped at max, n >= 1, exponent capped at 62
  local errors = redis.call('HINCRBY', health, 'errors', 1)
  local exponent = math.min(math.max(errors, 1) - 1, 62)
  local ends = now + math.min(tonumber(ARGV[3]) * 2 ^ exponent, tonumber(ARGV[4]))
  if ends > num(redis.call('HGET', health, 'backoff')) then
    redis.call('HSET', health, 'backoff', string.format('%.17g', ends))
  end
end
if ARGV[5] == '1' then redis.call('HSET', health, 'errors', 0, 'backoff', 0) end
if ARGV[6] ~= '' and tonumber(ARGV[6]) > num(redis.call('HGET', health, 'auth')) then
  redis.call('HSET', health, 'auth', ARGV[6])
end
if ARGV[7] ~= '' then redis.call('HSET', pair, 'quota', ARGV[7], 'quota_until', ARGV[8]) end
touch_health(health, now, tonumber(ARGV[10]))
local p = redis.call('HMGET', pair, 'cool', 'quota_until')
if p[1] or p[2] then
  redis.call('PEXPIRE', pair, ms(math.max(num(p[1]), num(p[2]), now) - now + tonumber(ARGV[9])))
end
redis.call('PUBLISH', ARGV[11], ARGV[12])
return 1
"""

_FIELDS_PER_ACCOUNT = 8


class RedisStore:
    """Scheduler state in Redis, shared by every replica; implements ``SchedulerStore``.

    The client is borrowed, not owned: whoever built it closes it. It may decode responses or
    not. ``changes()`` makes this store a ``ChangeFeed`` (see ``service``), which lets a waiting
    ``SchedulerService`` wake when another replica frees a slot.
    """

    remote = True
    """A grant is a network round trip: the service shields it against cancellation."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str = "kestrel:",
        *,
        expiry_slack_s: float = 60.0,
        idle_ttl_s: float = 86_400.0,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._slack = repr(float(expiry_slack_s))
        self._slack_ms = max(math.ceil(expiry_slack_s * 1000), 1)
        self._idle = repr(float(idle_ttl_s))
        self.channel = f"{prefix}changes"
        """Where releases and applied outcomes are published (the account id is the message)."""
        self._snapshot = client.register_script(_SNAPSHOT)
        self._try_acquire = client.register_script(_LUA_HELPERS + _TRY_ACQUIRE)
        self._renew = client.register_script(_LUA_HELPERS + _RENEW)
        self._release = client.register_script(_RELEASE)
        self._apply = client.register_script(_LUA_HELPERS + _APPLY)

    async def snapshot(
        self, account_ids: Sequence[str], model: str, session_id: str, now: float
    ) -> Snapshot:
        keys: list[str | bytes] = [self._session_key(session_id, model)] if session_id else []
        keys += _account_keys(self._prefix, tuple(account_ids), model)
        reply = orjson.loads(await self._snapshot(keys=keys, args=[repr(now), "1" if session_id else "0"]))
        views: dict[str, AccountView] = {}
        for index, account_id in enumerate(account_ids):
            start = 1 + index * _FIELDS_PER_ACCOUNT
            in_flight, errors, backoff, auth, used, cool, fraction, quota_until = reply[
                start : start + _FIELDS_PER_ACCOUNT
            ]
            views[account_id] = AccountView(
                in_flight=int(in_flight),
                cooling_until=_float(cool),
                backoff_until=_float(backoff),
                consecutive_errors=int(errors) if errors else 0,
                auth_until=_float(auth),
                last_used=_float(used),
                quota=Quota(float(fraction), _float(quota_until)) if fraction else None,
            )
        return Snapshot(accounts=views, sticky_account=_bound(reply[0], now))

    async def try_acquire(
        self, claims: Sequence[Claim], model: str, lease_id: str, ttl_s: float, now: float
    ) -> str | None:
        if not claims:
            return None
        keys = _account_keys(self._prefix, tuple(claim.account_id for claim in claims), model)
        args = [repr(now), repr(now + ttl_s), lease_id, self._slack, self._idle]
        args += [str(claim.max_concurrency) for claim in claims]
        try:
            granted = int(await self._try_acquire(keys=keys, args=args))
        except ResponseError as exc:
            if "lease already held" in str(exc):
                raise ValueError(f"lease {lease_id!r} is already held") from exc
            raise
        return claims[granted - 1].account_id if granted else None

    async def renew(self, account_id: str, lease_id: str, ttl_s: float, now: float) -> bool:
        args = [repr(now), lease_id, repr(now + ttl_s), self._slack]
        return bool(await self._renew(keys=[self._lease_key(account_id)], args=args))

    async def release(self, account_id: str, lease_id: str, now: float) -> bool:
        args = [repr(now), lease_id, self.channel, account_id]
        return bool(await self._release(keys=[self._lease_key(account_id)], args=args))

    async def apply(self, account_id: str, model: str, effect: Effect, now: float) -> None:
        if effect.empty:
            return
        await self._apply(keys=self._apply_keys(account_id, model), args=self._apply_args(account_id, effect, now))

    def _apply_keys(self, account_id: str, model: str) -> list[str]:
        return [self._health_key(account_id), self._model_key(account_id, model)]

    def _apply_args(self, account_id: str, effect: Effect, now: float) -> list[str]:
        backoff, quota = effect.backoff, effect.quota
        return [
            repr(now),
            _arg(effect.cool_until),
            _arg(backoff.base_s if backoff else None),
            _arg(backoff.max_s if backoff else None),
            "1" if effect.clear_errors else "0",
            _arg(effect.auth_until),
            _arg(quota.remaining_fraction if quota else None),
            _arg(quota.expires_at if quota else None),
            self._slack,
            self._idle,
            self.channel,
            account_id,
        ]

    async def bind_session(
        self, session_id: str, model: str, account_id: str, ttl_s: float, now: float
    ) -> None:
        if not session_id:
            return
        # One SET is atomic on its own. The expiry instant is stored with the account because the
        # key TTL is only garbage collection: the binding ends at now + ttl_s on the callers' clock.
        key, value, ttl_ms = self._binding(session_id, model, account_id, ttl_s, now)
        await self._client.set(key, value, px=ttl_ms)

    def _binding(self, session_id: str, model: str, account_id: str, ttl_s: float, now: float) -> tuple[str, str, int]:
        """Key, value and key TTL (ms) of a binding."""
        ttl_ms = max(math.ceil(ttl_s * 1000), 0) + self._slack_ms
        return self._session_key(session_id, model), f"{now + ttl_s!r} {account_id}", ttl_ms

    async def settle(self, settlement: Settlement, now: float) -> None:
        """The three scripts in one pipelined round trip (not a transaction: each is atomic alone).

        Scripts go as EVALSHA of their known digests; after a Redis restart (scripts flushed) the
        ones refused with NOSCRIPT run again one by one, which loads them.
        """
        account_id, model = settlement.account_id, settlement.model
        effect = settlement.effect if settlement.effect is not None and not settlement.effect.empty else None
        release_keys = [self._lease_key(account_id)]
        release_args = [repr(now), settlement.lease_id, self.channel, account_id]
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.evalsha(self._release.sha, 1, *release_keys, *release_args)
            if effect is not None:
                keys, args = self._apply_keys(account_id, model), self._apply_args(account_id, effect, now)
                pipe.evalsha(self._apply.sha, len(keys), *keys, *args)
            if settlement.session_id:
                ttl_s = settlement.sticky_ttl_s
                key, value, ttl_ms = self._binding(settlement.session_id, model, account_id, ttl_s, now)
                pipe.set(key, value, px=ttl_ms)
            results = await pipe.execute(raise_on_error=False)
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, NoScriptError):
                raise result
        if isinstance(results[0], NoScriptError):
            await self._release(keys=release_keys, args=release_args)
        if effect is not None and isinstance(results[1], NoScriptError):
            await self.apply(account_id, model, effect, now)

    async def changes(self) -> AsyncIterator[str]:
        """Follow releases and applied outcomes from every replica, until the caller stops.

        Yields ``""`` once the subscription is live (anything before it was missed, so look
        again), then the account id of each change. Uses a connection of its own from the
        client's pool; connection errors propagate, and the caller resubscribes.
        """
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            async for message in pubsub.listen():
                kind = _text(message["type"])
                if kind == "subscribe":
                    yield ""
                elif kind == "message":
                    yield _text(message["data"])
        finally:
            await pubsub.aclose()

    def _lease_key(self, account_id: str) -> str:
        return f"{self._prefix}lease:{_part(account_id)}"

    def _health_key(self, account_id: str) -> str:
        return f"{self._prefix}health:{_part(account_id)}"

    def _model_key(self, account_id: str, model: str) -> str:
        return f"{self._prefix}model:{_part(account_id)}:{_part(model)}"

    def _session_key(self, session_id: str, model: str) -> str:
        return f"{self._prefix}session:{_part(session_id)}:{_part(model)}"


# The same few (accounts, model) combinations come back on every acquire, and building and
# encoding 3 keys per account was a tenth of a snapshot's client-side cost.
@functools.lru_cache(maxsize=1024)
def _account_keys(prefix: str, account_ids: tuple[str, ...], model: str) -> tuple[bytes, ...]:
    """Each account's lease set, health hash and (account, model) hash, in order, encoded."""
    keys: list[bytes] = []
    for account_id in account_ids:
        part = _part(account_id)
        keys += (f"{prefix}lease:{part}".encode(), f"{prefix}health:{part}".encode())
        keys.append(f"{prefix}model:{part}:{_part(model)}".encode())
    return tuple(keys)


def _part(text: str) -> str:
    """An id made safe as one ``:``-separated part of a key name."""
    return text.replace("%", "%25").replace(":", "%3A")


def _arg(value: float | None) -> str:
    """A float script argument, exactly (repr round-trips); ``''`` when absent."""
    return "" if value is None else repr(float(value))


def _float(value: Any) -> float:
    """A stored number; missing fields arrive as ``None`` (RESP) or ``False`` (JSON)."""
    return float(value) if value else 0.0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _bound(raw: Any, now: float) -> str | None:
    """The account of a stored ``"{expires_at} {account}"`` binding that is still live."""
    if not raw:
        return None
    expires_at, _, account_id = _text(raw).partition(" ")
    return account_id if float(expires_at) > now else None
