"""The key cache: entries expire, revoked keys are forgotten, size stays bounded, and a lookup
that began before a revocation cannot put the revoked key back."""

import time

from orchestrator.api.keycache import Caller, KeyCache

CALLER = Caller(id=7, tenant_id=1, scope_set=frozenset({"chat"}))


def test_entries_expire_and_revocation_forgets_them():
    cache = KeyCache(ttl_s=0.05)
    cache.put("digest-a", CALLER, cache.generation())
    assert cache.get("digest-a") == CALLER
    cache.forget(7)
    assert cache.get("digest-a") is None
    cache.put("digest-a", CALLER, cache.generation())
    time.sleep(0.06)
    assert cache.get("digest-a") is None


def test_a_lookup_that_started_before_a_revocation_does_not_cache_the_revoked_key():
    cache = KeyCache(ttl_s=60)
    # The interleaving of deps.current_key and a DELETE /v1/admin/keys, forced step by step:
    generation = cache.generation()  # 1. a request reads the generation, then the database
    #                                   (the key is still valid there) in a worker thread
    cache.forget(CALLER.id)  # 2. the key is revoked and forgotten meanwhile
    assert cache.put("digest-a", CALLER, generation) is False  # 3. the lookup finishes late
    assert cache.get("digest-a") is None
    # The same holds when another replica's revocation empties the cache (Redis epoch).
    generation = cache.generation()
    cache.clear()
    assert cache.put("digest-a", CALLER, generation) is False
    assert cache.get("digest-a") is None
    assert cache.put("digest-a", CALLER, cache.generation()) is True  # a fresh lookup may


def test_unknown_digests_are_remembered_bounded_and_forgotten_on_clear():
    cache = KeyCache(ttl_s=60, negative_max_entries=3)
    for i in range(10):
        cache.put_unknown(f"bad{i}", cache.generation())
    assert [cache.is_unknown(f"bad{i}") for i in range(10)] == [False] * 7 + [True] * 3
    generation = cache.generation()
    cache.clear()
    assert not cache.is_unknown("bad9")
    cache.put_unknown("bad9", generation)  # read before the clear: not kept
    assert not cache.is_unknown("bad9")


def test_the_cache_stays_bounded_and_a_zero_ttl_disables_it():
    cache = KeyCache(ttl_s=60, max_entries=3)
    for i in range(10):
        cache.put(f"d{i}", Caller(id=i, tenant_id=1, scope_set=frozenset()), cache.generation())
    assert [cache.get(f"d{i}") is not None for i in range(10)].count(True) == 3
    off = KeyCache(ttl_s=0)
    off.put("d", Caller(id=1, tenant_id=1, scope_set=frozenset()), off.generation())
    off.put_unknown("e", off.generation())
    assert off.get("d") is None and not off.is_unknown("e")
