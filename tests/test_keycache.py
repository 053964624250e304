"""The key cache: entries expire, revoked keys are forgotten, size stays bounded."""

import time

from orchestrator.api.keycache import Caller, KeyCache


def test_entries_expire_and_revocation_forgets_them():
    cache = KeyCache(ttl_s=0.05)
    caller = Caller(id=7, tenant_id=1, scope_set=frozenset({"chat"}))
    cache.put("digest-a", caller)
    assert cache.get("digest-a") == caller
    cache.forget(7)
    assert cache.get("digest-a") is None
    cache.put("digest-a", caller)
    time.sleep(0.06)
    assert cache.get("digest-a") is None


def test_the_cache_stays_bounded_and_a_zero_ttl_disables_it():
    cache = KeyCache(ttl_s=60, max_entries=3)
    for i in range(10):
        cache.put(f"d{i}", Caller(id=i, tenant_id=1, scope_set=frozenset()))
    assert [cache.get(f"d{i}") is not None for i in range(10)].count(True) == 3
    off = KeyCache(ttl_s=0)
    off.put("d", Caller(id=1, tenant_id=1, scope_set=frozenset()))
    assert off.get("d") is None
