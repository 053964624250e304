"""Rate limits: token buckets per API key, per tenant, per client IP, and for all anonymous
traffic together; shared by every replica through Redis when `REDIS_URL` is set.

A request is charged to several buckets at once (key and tenant, or IP and the anonymous
total), all or nothing: a request refused by its tenant's bucket does not use up its key's.
In Redis that is one Lua script (EVALSHA), so the check and the charge are atomic across
replicas and use Redis's clock. When Redis fails, the limiter falls back to this replica's
own buckets (limits per replica instead of per deployment) and counts the fault; a request
never fails because Redis did.
"""

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from orchestrator.api.shared import FAULTS, SharedStore
from orchestrator.errors import ApiError

LIMITS = ("key", "tenant", "ip", "anonymous", "llm_tokens", "llm_concurrency")


@dataclass(frozen=True)
class Rate:
    per_minute: float
    burst: float

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0


@dataclass(frozen=True)
class Charge:
    """`cost` tokens from the bucket `limit`/`ident` (a negative cost gives tokens back)."""

    limit: str  # one of LIMITS: a fixed metric label
    ident: str | int
    rate: Rate
    cost: float = 1.0

    @property
    def bucket(self) -> str:
        return f"{self.limit}:{self.ident}"


class MemoryBuckets:
    """This replica's own buckets. Idle buckets are dropped once full again."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_buckets: int = 100_000):
        self.clock, self.max_buckets = clock, max_buckets
        self._buckets: dict[str, tuple[float, float]] = {}  # bucket -> (tokens, last refill)
        self._lock = threading.Lock()

    def take(self, charges: Sequence[Charge]) -> float:
        """0 when every charge was taken, else the seconds until all could be (none taken)."""
        return self.verdict(charges)[0]

    def verdict(self, charges: Sequence[Charge]) -> tuple[float, int]:
        """The wait as `take`, and the index of the charge that needs the longest wait."""
        now = self.clock()
        with self._lock:
            levels = [self._level(c, now) for c in charges]
            waits = [
                (c.cost - t) / c.rate.per_second if c.cost > t else 0.0
                for c, t in zip(charges, levels, strict=True)
            ]
            longest = max(range(len(waits)), key=waits.__getitem__)
            if waits[longest] > 0:
                return waits[longest], longest
            if len(self._buckets) > self.max_buckets:
                self._prune(now)
            for charge, tokens in zip(charges, levels, strict=True):
                self._buckets[charge.bucket] = (min(charge.rate.burst, tokens - charge.cost), now)
            return 0.0, 0

    def _level(self, charge: Charge, now: float) -> float:
        tokens, last = self._buckets.get(charge.bucket, (charge.rate.burst, now))
        return min(charge.rate.burst, tokens + (now - last) * charge.rate.per_second)

    def _prune(self, now: float) -> None:
        # A bucket untouched for 10 minutes is full again for any rate of 6/min and more.
        stale = [b for b, (_, last) in self._buckets.items() if now - last > 600]
        for bucket in stale or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[bucket]


# KEYS: bucket names; ARGV: per bucket (tokens per second, burst, cost). Returns "<wait in
# seconds> <1-based index of the bucket that needs it>" as a string (a Lua number would be
# truncated to an integer reply).
TOKEN_BUCKETS_LUA = (  # nosec B105  # a Lua script, not a password
    """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local levels, wait, which = {}, 0, 1
for i = 1, #KEYS do
  local rate, burst, cost = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local tokens, at = tonumber(state[1]), tonumber(state[2])
  if tokens == nil then tokens, at = burst, now end
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
  levels[i] = tokens
  if cost > tokens and (cost - tokens) / rate > wait then
    wait, which = (cost - tokens) / rate, i
  end
end
if wait > 0 then return tostring(wait) .. ' ' .. which end
for i = 1, #KEYS do
  local rate, burst, cost = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  redis.call('HSET', KEYS[i], 'tokens', tostring(math.min(burst, levels[i] - cost)), 'at',
             tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(burst / rate * 1000) + 1000)
end
return '0 1'
"""
)


class Limiter:
    """Charges buckets in Redis when there is one (and it answers), else in memory."""

    def __init__(
        self,
        registry: CollectorRegistry,
        store: SharedStore | None = None,
        memory: MemoryBuckets | None = None,
    ):
        self.store = store
        self.memory = memory or MemoryBuckets()
        self._script = store.client.register_script(TOKEN_BUCKETS_LUA) if store else None
        self.limited = Counter(
            "support_rate_limited_total",
            "Requests refused with 429, by the limit that refused them",
            ("limit",),
            registry=registry,
        )

    async def take(self, charges: Sequence[Charge]) -> float:
        """0 when the request may go ahead, else the seconds until it may."""
        return (await self._verdict(charges))[0]

    async def _verdict(self, charges: Sequence[Charge]) -> tuple[float, int]:
        verdict = await self._shared(charges) if self.store and self.store.usable() else None
        return verdict if verdict is not None else self.memory.verdict(charges)

    async def _shared(self, charges: Sequence[Charge]) -> tuple[float, int] | None:
        keys = [self.store.key("rl", c.bucket) for c in charges]
        args = [v for c in charges for v in (c.rate.per_second, c.rate.burst, c.cost)]
        try:
            answer = await self._script(keys=keys, args=args)  # EVALSHA; EVAL once per server
        except FAULTS as error:
            self.store.failed("rate_limit", error)
            return None
        wait, which = answer.split()
        return float(wait), int(which) - 1

    async def check(self, charges: Sequence[Charge], message: str) -> None:
        """Raise 429 (with Retry-After) naming the first limit that refused."""
        wait, which = await self._verdict(charges)
        if wait > 0:
            self.limited.labels(charges[which].limit).inc()
            raise too_many(message, wait)


@dataclass(frozen=True)
class Policy:
    """The rates from the settings, and which buckets a request is charged to."""

    key: Rate
    tenant: Rate
    ip: Rate
    anonymous: Rate

    def authenticated(self, key_id: int, tenant_id: int) -> list[Charge]:
        return [Charge("key", key_id, self.key), Charge("tenant", tenant_id, self.tenant)]

    def unauthenticated(self, client_ip: str) -> list[Charge]:
        return [Charge("ip", client_ip, self.ip), Charge("anonymous", "all", self.anonymous)]


def too_many(message: str, wait_s: float, code: str = "rate_limited") -> ApiError:
    return ApiError(
        429,
        message,
        type="rate_limit_error",
        code=code,
        headers={"Retry-After": retry_after_header(wait_s)},
    )


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
