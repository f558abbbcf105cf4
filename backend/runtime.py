"""The services one process talks to: database, blob store and job queue, built from Settings."""

from __future__ import annotations

import threading

from backend.config import Settings
from backend.db import Database


class Runtime:
    """Database + BlobStore + JobQueue (+ the request rate limiter) for one set of settings (one per process)."""

    def __init__(self, settings: Settings):
        from backend.queue import InlineQueue, RQQueue
        from backend.rate_limits import open_rate_limiter
        from backend.storage import open_store

        self.settings = settings
        self.db = Database(settings.database_url)
        self.store = open_store(settings.storage_url, s3_endpoint_url=settings.s3_endpoint_url)
        if settings.redis_url:
            self.queue = RQQueue(self, settings.redis_url, prefix=settings.queue_prefix)
        else:
            self.queue = InlineQueue(self)
        self.rate_limiter = open_rate_limiter(settings.redis_url, settings.queue_prefix)

    def health(self) -> dict[str, str]:
        """``{"database": "ok" | error, "storage": ..., "queue": ...}``."""
        parts = {}
        for name, check in (
            ("database", self.db.check),
            ("storage", self.store.check),
            ("queue", self.queue.check),
        ):
            try:
                check()
                parts[name] = "ok"
            except Exception as exc:  # the message is the health report
                parts[name] = f"error: {type(exc).__name__}: {exc}"[:300]
        return parts

    def close(self) -> None:
        self.queue.close()
        self.rate_limiter.close()
        self.db.dispose()


_process_runtime: Runtime | None = None
_lock = threading.Lock()


def process_runtime() -> Runtime:
    """The runtime of this worker process, built once from the environment."""
    global _process_runtime
    with _lock:
        if _process_runtime is None:
            _process_runtime = Runtime(Settings.from_env())
        return _process_runtime
