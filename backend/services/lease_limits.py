"""How fast the anonymous crowd may take tasks: lease requests per client address and per project
platform in a sliding minute (``LEASES_PER_ADDRESS_PER_MIN``, ``LEASES_PER_PLATFORM_PER_MIN``).

A request over either limit is refused with 429 and the seconds until it can succeed
(``Retry-After``) before it touches the database (the address) or leases anything (the platform).
How many live leases one worker id may hold is :func:`backend.services.tasks.lease_task`'s
``max_open`` (``MAX_OPEN_LEASES_PER_WORKER``).
"""

from __future__ import annotations

from backend.config import Settings
from backend.errors import TooManyRequestsError
from backend.rate_limits import RateLimiter

WINDOW_S = 60.0


def check_address(limiter: RateLimiter, settings: Settings, address: str) -> None:
    """Count a lease request from ``address``; 429 when it made the limit already this minute."""
    limit = settings.leases_per_address_per_min
    wait = limiter.hit(f"lease:addr:{address}", limit, WINDOW_S)
    if wait is not None:
        raise TooManyRequestsError(
            f"too many tasks were requested from your network address: at most {limit} a minute "
            f"(LEASES_PER_ADDRESS_PER_MIN); try again in {max(1, round(wait))} s", retry_after_s=wait)


def check_platform(limiter: RateLimiter, settings: Settings, project_id: int, platform: str) -> None:
    """Count a lease request of a project's crowd platform (all addresses together)."""
    limit = settings.leases_per_platform_per_min
    wait = limiter.hit(f"lease:project:{project_id}:{platform}", limit, WINDOW_S)
    if wait is not None:
        raise TooManyRequestsError(
            f"this project's {platform} crowd is starting tasks faster than allowed: at most {limit} "
            f"a minute (LEASES_PER_PLATFORM_PER_MIN); try again in {max(1, round(wait))} s",
            retry_after_s=wait)
