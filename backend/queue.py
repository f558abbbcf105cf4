"""Background jobs: RQ on Redis, or an in-process thread when no REDIS_URL is set.

Jobs are named by dotted path (``"worker.jobs.stitch_image"``) so the web tier never imports
the worker's heavy dependencies. Every job has a :class:`~backend.models.Job` row (status,
progress 0–1, message, error) written by :func:`run_job`, whichever queue runs it.

A job function is marked with :func:`job` and takes a :class:`JobContext` first::

    @job
    def crop_image(ctx, image_id: int) -> dict: ...
"""

from __future__ import annotations

import importlib
import inspect
import logging
import queue as stdlib_queue
import re
import threading
import traceback
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

from backend.models import Job, utcnow

if TYPE_CHECKING:  # pragma: no cover
    from backend.runtime import Runtime

log = logging.getLogger(__name__)
QUEUE_NAMES = ("default", "gpu")
JOB_TIMEOUT_S = {"default": 3600, "gpu": 24 * 3600}


class JobError(RuntimeError):
    """A job cannot be enqueued or run as asked."""


def job(func: Callable) -> Callable:
    """Mark ``func`` as a job function: only marked functions can be run by name."""
    func.is_looplabel_job = True
    return func


def resolve_job(dotted: str) -> Callable:
    """Import ``package.module.function`` and check it is a job function."""
    module_name, _, attr = dotted.rpartition(".")
    if not module_name:
        raise JobError(f"job name {dotted!r} is not a dotted path like 'worker.jobs.crop_image'")
    try:
        func = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise JobError(f"no job function {dotted!r}: {exc}") from exc
    if not getattr(func, "is_looplabel_job", False):
        raise JobError(f"{dotted!r} is not a job function (missing @job)")
    return func


class JobContext:
    """What a running job gets: the process runtime and a way to report progress."""

    def __init__(self, runtime: "Runtime", job_id: int):
        self.runtime = runtime
        self.job_id = job_id

    @property
    def db(self):
        return self.runtime.db

    @property
    def store(self):
        return self.runtime.store

    @property
    def queue(self):
        return self.runtime.queue

    @property
    def settings(self):
        return self.runtime.settings

    def progress(self, fraction: float, message: str = "") -> None:
        """Record progress (0–1) and a short message on the Job row, in its own transaction."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        with self.db.session() as s:
            row = s.get(Job, self.job_id)
            if row is not None:
                row.progress = fraction
                if message:
                    row.message = message


def run_job(job_id: int, runtime: "Runtime | None" = None) -> Any:
    """Run the job of row ``job_id`` and record its outcome on the row.

    Used by both queues (RQ calls it by name in the worker process). A failure records a
    traceback summary on the row and re-raises; the job function itself is responsible for
    writing its outputs only once they are complete, so earlier data stays intact.
    """
    if runtime is None:
        from backend.runtime import process_runtime

        runtime = process_runtime()
    with runtime.db.session() as s:
        row = s.get(Job, job_id)
        if row is None:
            log.warning("job %s vanished before it ran", job_id)
            return None
        row.status, row.started_at, row.error = "running", utcnow(), None
        row.progress, row.ended_at = 0.0, None
        func_name, kwargs = row.func, dict(row.args or {})
    try:
        func = resolve_job(func_name)
        result = func(JobContext(runtime, job_id), **kwargs)
    except Exception as exc:
        summary = _traceback_summary(exc)
        log.error("job %s (%s) failed: %s", job_id, func_name, summary.splitlines()[-1])
        with runtime.db.session() as s:
            row = s.get(Job, job_id)
            if row is not None:
                row.status, row.error, row.ended_at = "failed", summary, utcnow()
                row.message = f"failed: {exc}"[:500]
        raise
    with runtime.db.session() as s:
        row = s.get(Job, job_id)
        if row is not None:
            row.status, row.progress, row.ended_at = "finished", 1.0, utcnow()
            row.result = result if isinstance(result, dict) else None
            if not row.message or not row.message.startswith("done"):
                row.message = "done"
    return result


def _traceback_summary(exc: BaseException, frames: int = 6) -> str:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    head, body, tail = lines[:1], lines[1:-1], lines[-1:]
    return "".join(head + body[-frames:] + tail)[-4000:]


class JobQueue(ABC):
    """Enqueue jobs by dotted name; each gets a Job row, pushed to the queue after commit."""

    def __init__(self, runtime: "Runtime"):
        self.runtime = runtime

    def enqueue(
        self,
        session: Session,
        func: str,
        *,
        queue: str = "default",
        project_id: int | None = None,
        kind: str | None = None,
        **kwargs: Any,
    ) -> Job:
        """Add a Job row to ``session``; the job is pushed when that session commits.

        Arguments must be JSON-serialisable (they are stored on the row). If the session rolls
        back, nothing is pushed and no row remains.
        """
        if queue not in QUEUE_NAMES:
            raise JobError(f"unknown queue {queue!r}; use one of {', '.join(QUEUE_NAMES)}")
        target = resolve_job(func)  # fail at enqueue time, not in the worker
        if project_id is not None and "project_id" in inspect.signature(target).parameters:
            kwargs["project_id"] = project_id  # the row's project is also the job's argument
        row = Job(
            func=func,
            kind=kind or func.rpartition(".")[2],
            queue_name=queue,
            project_id=project_id,
            args=kwargs,
            status="queued",
        )
        session.add(row)
        session.flush()
        row.queue_id = self.queue_job_id(row.id)
        job_id = row.id

        def _push(_session):
            self._push(job_id, queue)

        event.listen(session, "after_commit", _push, once=True)
        return row

    def queue_job_id(self, job_id: int) -> str:
        """The id of Job row ``job_id`` in the queue backend (stored as ``Job.queue_id``)."""
        return f"looplabel-job-{job_id}"

    def push_again(self, job_id: int, queue: str = "default") -> None:
        """Push an existing Job row once more (recovery of a job whose worker died).

        Jobs are idempotent, so running one again rewrites the same outputs. The caller makes
        sure the row is committed as ``queued`` and that no live copy of the job is pending.
        """
        if queue not in QUEUE_NAMES:
            raise JobError(f"unknown queue {queue!r}; use one of {', '.join(QUEUE_NAMES)}")
        self._push(job_id, queue)

    @abstractmethod
    def _push(self, job_id: int, queue: str) -> None: ...

    @abstractmethod
    def depth(self, queue: str = "default") -> int:
        """Jobs waiting in ``queue``."""

    @abstractmethod
    def check(self) -> None:
        """Raise if the queue backend is unreachable (health check)."""

    def close(self) -> None:
        pass


class InlineQueue(JobQueue):
    """Runs jobs one at a time in a background thread of this process (embedded default)."""

    def __init__(self, runtime: "Runtime"):
        super().__init__(runtime)
        self._pending: stdlib_queue.Queue[int | None] = stdlib_queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _push(self, job_id: int, queue: str) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="looplabel-inline-jobs", daemon=True
                )
                self._thread.start()
        self._pending.put(job_id)

    def _loop(self) -> None:
        while True:
            job_id = self._pending.get()
            try:
                if job_id is None:
                    return
                try:
                    run_job(job_id, self.runtime)
                except Exception:  # recorded on the Job row by run_job
                    pass
            finally:
                self._pending.task_done()

    def join(self) -> None:
        """Block until every pushed job (and the jobs they enqueued) has run."""
        self._pending.join()

    def depth(self, queue: str = "default") -> int:
        return self._pending.qsize()

    def check(self) -> None:
        return None

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._pending.put(None)
            self._thread.join(timeout=5)


class RQQueue(JobQueue):
    """Jobs on Redis through RQ; ``looplabel worker`` processes them."""

    def __init__(self, runtime: "Runtime", redis_url: str, prefix: str = ""):
        super().__init__(runtime)
        from redis import Redis

        self.redis_url = redis_url
        self.prefix = prefix
        self.connection = Redis.from_url(redis_url, socket_connect_timeout=5)

    def rq_queue(self, name: str):
        from rq import Queue

        return Queue(self.prefix + name, connection=self.connection)

    def queue_job_id(self, job_id: int) -> str:
        """RQ job ids are global in Redis: the queue prefix keeps deployments that share a Redis
        (and their job rows numbered from 1) apart. RQ allows only ``[A-Za-z0-9_-]`` in ids."""
        return re.sub(r"[^A-Za-z0-9_-]", "-", self.prefix) + f"looplabel-job-{job_id}"

    def _push(self, job_id: int, queue: str) -> None:
        self.rq_queue(queue).enqueue(
            "backend.queue.run_job",
            job_id,
            job_id=self.queue_job_id(job_id),
            job_timeout=JOB_TIMEOUT_S[queue],
            result_ttl=3600,
            failure_ttl=7 * 24 * 3600,
        )

    def depth(self, queue: str = "default") -> int:
        return self.rq_queue(queue).count

    def check(self) -> None:
        self.connection.ping()

    def close(self) -> None:
        self.connection.close()
