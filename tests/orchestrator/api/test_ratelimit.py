"""Token buckets: in memory, and in Redis (shared by replicas, atomic, failing open)."""

import asyncio
import os
import uuid

import pytest
from prometheus_client import CollectorRegistry

from orchestrator.api.ratelimit import Charge, Limiter, MemoryBuckets, Rate, retry_after_header
from orchestrator.api.shared import SharedStore, make_store
from orchestrator.errors import ApiError

ONE_A_SECOND = Rate(per_minute=60, burst=3)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def key(ident, rate=ONE_A_SECOND, cost=1.0) -> list[Charge]:
    return [Charge("key", ident, rate, cost)]


def test_burst_then_refill_at_the_rate_and_keys_are_independent():
    clock = Clock()
    buckets = MemoryBuckets(clock=clock)
    assert [buckets.take(key(1)) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = buckets.take(key(1))
    assert 0.99 <= wait <= 1.0
    assert retry_after_header(wait) == "1"
    assert buckets.take(key(2)) == 0.0  # another key has its own bucket
    clock.now += 1.0
    assert buckets.take(key(1)) == 0.0
    assert buckets.take(key(1)) > 0
    clock.now += 100.0
    assert [buckets.take(key(1)) for _ in range(4)][:3] == [0.0, 0.0, 0.0]  # capped at the burst


def test_a_request_refused_by_its_tenant_does_not_use_up_its_key():
    buckets = MemoryBuckets(clock=Clock())
    tenant = Rate(per_minute=60, burst=1)
    both = [Charge("key", 1, ONE_A_SECOND), Charge("tenant", 9, tenant)]
    assert buckets.take(both) == 0.0
    assert buckets.take(both) > 0  # the tenant's single token is gone
    assert [buckets.take(key(1)) for _ in range(3)] == [0.0, 0.0, 1.0]  # the key kept two


def test_a_negative_cost_gives_tokens_back_up_to_the_burst():
    buckets = MemoryBuckets(clock=Clock())
    assert buckets.take(key(1, cost=3)) == 0.0
    assert buckets.take(key(1)) > 0
    buckets.take(key(1, cost=-10))
    assert [buckets.take(key(1)) for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]


def redis_up() -> bool:
    try:
        import redis
    except ImportError:
        return False
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


needs_redis = pytest.mark.skipif(not redis_up(), reason=f"no Redis at {REDIS_URL}")


@needs_redis
def test_redis_buckets_are_shared_by_two_limiters_and_answer_a_wait():
    async def scenario():
        prefix = f"test-{uuid.uuid4().hex}"
        one = Limiter(CollectorRegistry(), make_store(REDIS_URL, prefix, CollectorRegistry()))
        two = Limiter(CollectorRegistry(), make_store(REDIS_URL, prefix, CollectorRegistry()))
        slow = Rate(per_minute=6, burst=2)  # one token every 10 s
        answers = [await one.take(key(5, slow)), await two.take(key(5, slow))]
        refused = await one.take(key(5, slow))
        both = [Charge("key", 6, slow), Charge("key", 5, slow)]
        tenant_full = await two.take(both)  # bucket 5 is empty, so nothing is charged ...
        alone = [await two.take(key(6, slow)) for _ in range(2)]  # ... and 6 still has two
        await one.store.close()
        await two.store.close()
        return answers, refused, tenant_full, alone

    answers, refused, tenant_full, alone = asyncio.run(scenario())
    assert answers == [0.0, 0.0]
    assert 9.0 < refused <= 10.0
    assert tenant_full > 0 and alone == [0.0, 0.0]


@needs_redis
def test_redis_shares_the_tenant_bucket_under_concurrent_requests():
    async def scenario():
        prefix = f"test-{uuid.uuid4().hex}"
        # A long timeout: this checks atomicity, not how a slow Redis is survived.
        stores = [
            SharedStore(REDIS_URL, prefix, CollectorRegistry(), timeout_s=10) for _ in range(4)
        ]
        limiters = [Limiter(CollectorRegistry(), store) for store in stores]
        rate = Rate(per_minute=1, burst=25)
        charges = [Charge("tenant", 1, rate)]
        waits = await asyncio.gather(*(limiters[i % 4].take(charges) for i in range(100)))
        for store in stores:
            await store.close()
        faults = sum(store.errors.labels("rate_limit")._value.get() for store in stores)
        return waits, faults

    waits, faults = asyncio.run(scenario())
    assert faults == 0  # every answer came from Redis
    assert waits.count(0.0) == 25  # atomic: never more than the burst, whatever the interleaving


def test_an_unreachable_redis_fails_open_to_local_buckets_and_is_counted():
    pytest.importorskip("redis")

    async def scenario():
        registry = CollectorRegistry()
        store = make_store("redis://127.0.0.1:9/0", "x", registry)  # the discard port: refused
        limiter = Limiter(CollectorRegistry(), store)
        waits = [await limiter.take(key(1)) for _ in range(4)]
        await store.close()
        return waits, registry.get_sample_value(
            "support_shared_state_errors_total", {"operation": "rate_limit"}
        )

    waits, errors = asyncio.run(scenario())
    assert waits[:3] == [0.0, 0.0, 0.0] and waits[3] > 0  # this replica's own bucket still holds
    assert errors == 1  # then Redis is left alone for a second instead of failing every request


def test_check_raises_429_with_retry_after_and_the_one_error_shape():
    limiter = Limiter(CollectorRegistry(), memory=MemoryBuckets(clock=Clock()))

    async def scenario():
        for _ in range(3):
            await limiter.check(key(1), "slow down")
        await limiter.check(key(1), "slow down")

    with pytest.raises(ApiError) as refused:
        asyncio.run(scenario())
    assert refused.value.status == 429 and refused.value.code == "rate_limited"
    assert refused.value.headers == {"Retry-After": "1"}
