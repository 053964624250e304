"""The optional Redis that replicas share (`REDIS_URL`): rate-limit buckets and revocations.

Redis is a helper, never a dependency that fails requests: every caller catches `FAULTS`,
counts it, logs it at most every few seconds, and carries on with this replica's own state.
After a fault Redis is left alone for `BACKOFF_S`, so that an unreachable server does not add
a connect timeout to every request.
"""

import asyncio
import logging
import time

from prometheus_client import CollectorRegistry, Counter

log = logging.getLogger(__name__)

BACKOFF_S = 1.0
TIMEOUT_S = 0.5  # a limiter check must not hold a request up for longer
LOG_EVERY_S = 10.0


def _faults() -> tuple[type[BaseException], ...]:
    try:
        from redis.exceptions import RedisError
    except ImportError:  # the package is only needed when REDIS_URL is set
        return (OSError, asyncio.TimeoutError)
    return (RedisError, OSError, asyncio.TimeoutError)


FAULTS = _faults()


class SharedStore:
    """One async Redis client with a key prefix, and the bookkeeping of its faults."""

    def __init__(
        self, url: str, prefix: str, registry: CollectorRegistry, timeout_s: float = TIMEOUT_S
    ):
        import redis.asyncio as redis

        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self.prefix = prefix
        self._down_until = 0.0
        self._logged_at = -LOG_EVERY_S
        self.errors = Counter(
            "support_shared_state_errors_total",
            "Redis calls that failed; the replica then used its own state (fail open)",
            ("operation",),
            registry=registry,
        )

    def key(self, *parts: object) -> str:
        return ":".join((self.prefix, *map(str, parts)))

    def usable(self) -> bool:
        return time.monotonic() >= self._down_until

    def failed(self, operation: str, error: BaseException) -> None:
        self.errors.labels(operation).inc()
        now = time.monotonic()
        self._down_until = now + BACKOFF_S
        if now - self._logged_at >= LOG_EVERY_S:
            self._logged_at = now
            log.warning("Redis %s failed (%r); using this replica's own state", operation, error)

    async def close(self) -> None:
        await self.client.aclose()


def make_store(url: str | None, prefix: str, registry: CollectorRegistry) -> SharedStore | None:
    return SharedStore(url, prefix, registry) if url else None
