"""Sliding-window request counters: how many requests a key made in the last ``window_s``.

:class:`RedisRateLimiter` shares the counts between every web process (a sorted set per key, one
member per request); :class:`MemoryRateLimiter` keeps them in this process, for the embedded
mode without Redis. A refused request is not counted, so a client that keeps knocking gets its
turn back as soon as its old requests leave the window.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import deque

log = logging.getLogger(__name__)


class RateLimiter:
    """``hit(key, limit, window_s)``: count one request, or refuse it."""

    def hit(self, key: str, limit: int, window_s: float = 60.0) -> float | None:
        """Count a request under ``key`` unless ``limit`` requests were counted in the last
        ``window_s`` seconds.

        Returns
        -------
        float or None
            None when the request is counted (allowed); else the seconds until the oldest
            counted request leaves the window (when asking again can succeed).
        """
        raise NotImplementedError

    def close(self) -> None:
        pass


class MemoryRateLimiter(RateLimiter):
    """Counts in this process (thread-safe); keys idle for a window are forgotten."""

    MAX_KEYS = 100_000

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, limit: int, window_s: float = 60.0) -> float | None:
        now = self._clock()
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                if len(self._hits) >= self.MAX_KEYS:
                    self._forget_idle(now, window_s)
                hits = self._hits[key] = deque()
            while hits and hits[0] <= now - window_s:
                hits.popleft()
            if len(hits) >= limit:
                return max(0.0, hits[0] + window_s - now)
            hits.append(now)
            return None

    def _forget_idle(self, now: float, window_s: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - window_s]:
            del self._hits[key]


class RedisRateLimiter(RateLimiter):
    """Counts in Redis, shared by every process (a sorted set of request times per key)."""

    def __init__(self, url: str, prefix: str = ""):
        from redis import Redis

        self._redis = Redis.from_url(url, socket_timeout=5)
        self._prefix = f"{prefix}looplabel:rate:"

    def hit(self, key: str, limit: int, window_s: float = 60.0) -> float | None:
        name = self._prefix + key
        now = time.time()
        member = f"{now:.6f}:{secrets.token_hex(4)}"
        pipe = self._redis.pipeline(transaction=True)
        pipe.zremrangebyscore(name, "-inf", now - window_s)
        pipe.zadd(name, {member: now})
        pipe.zcard(name)
        pipe.zrange(name, 0, 0, withscores=True)
        pipe.pexpire(name, int(window_s * 1000) + 1000)
        try:
            _, _, count, oldest, _ = pipe.execute()
        except Exception as exc:  # noqa: BLE001 - Redis down: serve the request, unlimited, and say so
            log.warning("rate limit %s not checked: Redis failed (%s: %s)", key, type(exc).__name__, exc)
            return None
        if count <= limit:
            return None
        self._redis.zrem(name, member)  # refused: not counted
        first = oldest[0][1] if oldest else now
        return max(0.0, first + window_s - now)

    def close(self) -> None:
        self._redis.close()


def open_rate_limiter(redis_url: str | None, prefix: str = "") -> RateLimiter:
    """Redis when the deployment has one (counts shared by all web processes), else in memory."""
    return RedisRateLimiter(redis_url, prefix) if redis_url else MemoryRateLimiter()
