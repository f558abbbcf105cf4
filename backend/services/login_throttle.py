"""Failed-login throttling per user name and per client address.

Only failures count: a correct password never adds to a counter, so scripts and people that
log in often are never slowed down. Each counter is a fixed window that opens with its first
failure and lasts ``LOGIN_FAILURE_WINDOW_S``; while a name has ``LOGIN_FAILURES_PER_NAME``
failures in its window, or an address ``LOGIN_FAILURES_PER_ADDRESS``, every attempt for that name
(from anywhere) or from that address (for any name) is refused with 429 until the window ends,
without checking the password. A name's limit stops guessing spread over many addresses; an
address's limit stops one client from trying many names, and leaves other addresses alone.

Counters live in Redis when ``REDIS_URL`` is set (shared by every web process) and in this
process otherwise (the embedded server is one process). The check and the count are separate
steps, so concurrent requests can overshoot a limit by at most the number in flight.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass

from backend.errors import UserError

log = logging.getLogger(__name__)


class TooManyLoginFailuresError(UserError):
    """Too many failed logins for a name or from an address; ``retry_after_s`` says when to retry."""

    status = 429

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def as_dict(self) -> dict:
        return {"error": self.message, "retry_after_s": self.retry_after_s}


@dataclass(frozen=True)
class ThrottleLimits:
    """Failures allowed per window (seconds) for one user name and for one client address."""

    per_name: int = 20
    per_address: int = 100
    window_s: int = 60


class MemoryCounters:
    """Fixed-window counters in this process (thread-safe)."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (failures, window end, monotonic)
        self._lock = threading.Lock()

    def read(self, keys: list[str]) -> list[tuple[int, float]]:
        """(failures, seconds left in the window) per key; (0, 0.0) for a key with none."""
        now = time.monotonic()
        with self._lock:
            out = []
            for key in keys:
                count, ends = self._counts.get(key, (0, now))
                out.append((count, ends - now) if ends > now else (0, 0.0))
            return out

    def add(self, keys: list[str], window_s: int) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._counts) > 10000:
                self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            for key in keys:
                count, ends = self._counts.get(key, (0, now))
                self._counts[key] = (count + 1, ends) if ends > now else (1, now + window_s)


class RedisCounters:
    """Fixed-window counters in Redis, shared by every process that uses the same Redis."""

    def __init__(self, redis_url: str, prefix: str = "") -> None:
        from redis import Redis

        self.connection = Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
        self.prefix = prefix

    def read(self, keys: list[str]) -> list[tuple[int, float]]:
        pipe = self.connection.pipeline(transaction=False)
        for key in keys:
            pipe.get(self.prefix + key)
            pipe.pttl(self.prefix + key)
        replies = pipe.execute()
        out = []
        for count, ttl_ms in zip(replies[0::2], replies[1::2]):
            count = int(count or 0)
            out.append((count, max(ttl_ms, 0) / 1000) if count and ttl_ms != -2 else (0, 0.0))
        return out

    def add(self, keys: list[str], window_s: int) -> None:
        pipe = self.connection.pipeline(transaction=True)
        for key in keys:
            # The window opens with the first failure (SET NX EX); INCR keeps its expiry.
            pipe.set(self.prefix + key, 0, ex=window_s, nx=True)
            pipe.incr(self.prefix + key)
        pipe.execute()


class LoginThrottle:
    """Checks and counts failed logins (form and HTTP Basic) by user name and client address."""

    def __init__(self, limits: ThrottleLimits, counters: MemoryCounters | RedisCounters) -> None:
        self.limits = limits
        self.counters = counters

    @staticmethod
    def _keys(username: str, address: str) -> list[str]:
        digest = lambda text: hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]  # noqa: E731
        return [f"login-failures:name:{digest(username)}", f"login-failures:addr:{digest(address)}"]

    def check(self, username: str, address: str) -> None:
        """Raise :class:`TooManyLoginFailuresError` when the name or the address is over its limit."""
        try:
            (name_n, name_left), (addr_n, addr_left) = self.counters.read(self._keys(username, address))
        except Exception:  # Redis down: logins still check passwords; say so in the logs
            log.warning("login throttle: counters unavailable, not throttling", exc_info=True)
            return
        waits = []
        if name_n >= self.limits.per_name:
            waits.append(name_left)
        if addr_n >= self.limits.per_address:
            waits.append(addr_left)
        if waits:
            retry = max(1, math.ceil(max(waits)))
            raise TooManyLoginFailuresError(
                f"too many failed logins for this user name or from this address; try again in {retry} s",
                retry_after_s=retry,
            )

    def record_failure(self, username: str, address: str) -> None:
        try:
            self.counters.add(self._keys(username, address), self.limits.window_s)
        except Exception:
            log.warning("login throttle: could not count a failed login", exc_info=True)


def build_login_throttle(settings) -> LoginThrottle:
    """The throttle for ``settings``: Redis counters when REDIS_URL is set, else this process's."""
    limits = ThrottleLimits(
        per_name=settings.login_failures_per_name,
        per_address=settings.login_failures_per_address,
        window_s=settings.login_failure_window_s,
    )
    if settings.redis_url:
        counters = RedisCounters(settings.redis_url, prefix=f"{settings.queue_prefix}looplabel:")
    else:
        counters = MemoryCounters()
    return LoginThrottle(limits, counters)
