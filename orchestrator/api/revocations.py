"""Revocations reach every replica: a shared epoch in Redis, bumped on each revocation.

Each replica reads the epoch every `ORCHESTRATOR_REVOCATION_POLL_S` (1 s) in the background,
one GET per replica whatever the traffic, and empties its key cache when the epoch moved. When
Redis cannot be read the cache is emptied anyway: keys are then checked against the database
about once a second instead of trusting entries that may have been revoked.
"""

import asyncio
import logging

from orchestrator.api.keycache import KeyCache
from orchestrator.api.shared import FAULTS, SharedStore

log = logging.getLogger(__name__)
EPOCH = "keys:revocation_epoch"


class Revocations:
    def __init__(self, cache: KeyCache, store: SharedStore | None, poll_s: float):
        self.cache, self.store, self.poll_s = cache, store, poll_s
        self._seen: bytes | None = None

    async def publish(self) -> None:
        """After a revocation is committed: tell the other replicas."""
        if self.store is None:
            return
        try:
            await self.store.client.incr(self.store.key(EPOCH))
        except FAULTS as error:
            self.store.failed("revocation", error)

    async def poll_once(self) -> None:
        try:
            epoch = await self.store.client.get(self.store.key(EPOCH))
        except FAULTS as error:
            self.store.failed("revocation", error)
            self.cache.clear()
            self._seen = None
            return
        if epoch != self._seen:
            self.cache.clear()
            self._seen = epoch

    async def run(self) -> None:
        """Until cancelled; a no-op without Redis (the cache's lifetime bounds staleness)."""
        if self.store is None:
            return
        while True:
            await self.poll_once()
            await asyncio.sleep(self.poll_s)


def publish_sync(url: str | None, prefix: str) -> bool:
    """For the CLI: bump the epoch so that running replicas drop their cached keys."""
    if not url:
        return False
    import redis  # only needed with REDIS_URL

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.incr(f"{prefix}:{EPOCH}")
        return True
    except (redis.RedisError, OSError):
        log.warning("could not publish the revocation to Redis", exc_info=True)
        return False
    finally:
        client.close()
