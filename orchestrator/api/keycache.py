"""Recently checked API keys, kept in memory so that a request does not query the database.

Valid keys are kept for `ORCHESTRATOR_KEY_CACHE_S`; unknown or revoked digests for as long in a
separate, bounded negative cache, so that a flood of bad keys does not query the database per
request. A key revoked through this process is forgotten at once; one revoked on another
replica or by the CLI is forgotten when the shared revocation epoch moves (Redis, about a
second), else when its entry expires.

A lookup that began before a revocation must not put the revoked key back: every
`forget`/`clear` moves a generation counter, and `put` refuses an entry read under an older
generation than the current one.
"""

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """What a route needs to know of the key that called it."""

    id: int
    tenant_id: int
    scope_set: frozenset[str]
    # orchestrator.environments.Environment: which configuration its requests meet. Fixed
    # when the key is made, so a cached Caller never holds a stale one.
    environment: str = "production"

    @property
    def platform(self) -> bool:
        """A platform admin (a key of the platform tenant with the `platform` scope)."""
        return "platform" in self.scope_set


def caller_of(key, platform_tenant: bool) -> Caller:
    """The Caller of an ApiKey row. A stored `platform` scope counts only for a key of the
    platform tenant."""
    scopes = key.scope_set if platform_tenant else key.scope_set - {"platform"}
    return Caller(key.id, key.tenant_id, frozenset(scopes), key.environment)


class KeyCache:
    def __init__(self, ttl_s: float, max_entries: int = 10_000, negative_max_entries: int = 10_000):
        self.ttl_s, self.max_entries, self.negative_max_entries = (
            ttl_s,
            max_entries,
            negative_max_entries,
        )
        self._entries: dict[str, tuple[Caller, float]] = {}  # digest -> (caller, expiry)
        self._unknown: OrderedDict[str, float] = OrderedDict()  # digest -> expiry
        self._generation = 0
        self._lock = threading.Lock()

    def generation(self) -> int:
        """Read before a database lookup; hand it to `put`/`put_unknown` after."""
        return self._generation

    def get(self, digest: str) -> Caller | None:
        entry = self._entries.get(digest)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def is_unknown(self, digest: str) -> bool:
        expiry = self._unknown.get(digest)
        return expiry is not None and expiry >= time.monotonic()

    def put(self, digest: str, caller: Caller, generation: int) -> bool:
        """Keep `caller`, unless a revocation happened since `generation` was read."""
        if self.ttl_s <= 0:
            return False
        with self._lock:
            if generation != self._generation:
                return False
            if len(self._entries) >= self.max_entries:
                self._entries.pop(next(iter(self._entries)))  # the oldest insertion
            self._entries[digest] = (caller, time.monotonic() + self.ttl_s)
            return True

    def put_unknown(self, digest: str, generation: int) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            if generation != self._generation:
                return
            self._unknown.pop(digest, None)
            while len(self._unknown) >= self.negative_max_entries:
                self._unknown.popitem(last=False)
            self._unknown[digest] = time.monotonic() + self.ttl_s

    def forget(self, key_id: int) -> None:
        with self._lock:
            self._generation += 1
            for digest in [d for d, (c, _) in self._entries.items() if c.id == key_id]:
                del self._entries[digest]

    def clear(self) -> None:
        """Forget everything: a key was revoked or created elsewhere."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self._unknown.clear()
