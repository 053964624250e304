from orchestrator.api.ratelimit import RateLimiter, retry_after_header


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_the_rate_and_keys_are_independent():
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)  # one a second
    assert [limiter.acquire(1) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire(1)
    assert 0.99 <= wait <= 1.0
    assert retry_after_header(wait) == "1"
    assert limiter.acquire(2) == 0.0  # another key has its own bucket
    clock.now += 1.0
    assert limiter.acquire(1) == 0.0
    assert limiter.acquire(1) > 0
    clock.now += 100.0
    assert [limiter.acquire(1) for _ in range(4)][:3] == [0.0, 0.0, 0.0]  # capped at the burst
