"""Recently checked API keys, kept in memory so that a request does not query the database.

A key revoked through this process's API is forgotten at once; one revoked elsewhere (another
replica, the CLI) stops working here within the cache's lifetime (`ORCHESTRATOR_KEY_CACHE_S`).
Only valid keys are kept, so random keys cannot fill the cache.
"""

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """What a route needs to know of the key that called it."""

    id: int
    tenant_id: int
    scope_set: frozenset[str]


class KeyCache:
    def __init__(self, ttl_s: float, max_entries: int = 10_000):
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self._entries: dict[str, tuple[Caller, float]] = {}  # digest -> (caller, expiry)
        self._lock = threading.Lock()

    def get(self, digest: str) -> Caller | None:
        entry = self._entries.get(digest)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, digest: str, caller: Caller) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.pop(next(iter(self._entries)))  # the oldest insertion
            self._entries[digest] = (caller, time.monotonic() + self.ttl_s)

    def forget(self, key_id: int) -> None:
        with self._lock:
            for digest in [d for d, (c, _) in self._entries.items() if c.id == key_id]:
                del self._entries[digest]
