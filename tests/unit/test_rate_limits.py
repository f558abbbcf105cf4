"""backend.rate_limits: sliding-window counts in memory and in Redis."""

from __future__ import annotations

import uuid

import pytest

from backend.rate_limits import MemoryRateLimiter, RedisRateLimiter


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_memory_limiter_counts_a_sliding_window_and_not_refusals():
    clock = Clock()
    limiter = MemoryRateLimiter(clock)
    for _ in range(3):
        assert limiter.hit("a", 3, 60) is None
        clock.now += 10
    assert limiter.hit("a", 3, 60) == pytest.approx(30)  # the first hit leaves the window at t+60
    assert limiter.hit("b", 3, 60) is None  # keys are separate
    clock.now += 29
    assert limiter.hit("a", 3, 60) == pytest.approx(1)  # refusals were not counted
    clock.now += 1
    assert limiter.hit("a", 3, 60) is None


def test_memory_limiter_forgets_idle_keys():
    clock = Clock()
    limiter = MemoryRateLimiter(clock)
    limiter.MAX_KEYS = 4
    for i in range(4):
        limiter.hit(f"k{i}", 1, 60)
    clock.now += 61
    limiter.hit("new", 1, 60)
    assert set(limiter._hits) == {"new"}


@pytest.mark.redis
def test_redis_limiter_shares_counts_between_instances(redis_url):
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    one, two = RedisRateLimiter(redis_url, prefix), RedisRateLimiter(redis_url, prefix)
    try:
        assert one.hit("addr", 2, 60) is None
        assert two.hit("addr", 2, 60) is None
        wait = one.hit("addr", 2, 60)
        assert wait is not None and 59 <= wait <= 60
        assert two.hit("other", 2, 60) is None
        assert one._redis.zcard(f"{prefix}looplabel:rate:addr") == 2  # the refusal was not kept
        assert 0 < one._redis.pttl(f"{prefix}looplabel:rate:addr") <= 61_000
    finally:
        one._redis.delete(f"{prefix}looplabel:rate:addr", f"{prefix}looplabel:rate:other")
        one.close()
        two.close()


def test_redis_limiter_lets_requests_through_when_redis_is_down():
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0")
    assert limiter.hit("addr", 1, 60) is None
