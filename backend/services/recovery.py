"""Recovery of jobs whose worker died.

A worker killed in the middle of a job (out of memory, a lost node, ``kill -9``) leaves the job's
:class:`~backend.models.Job` row ``running`` (or ``queued``) for ever: RQ notices an abandoned
job only when its heartbeat expires, then moves it to its failed registry, and it knows nothing
of LoopLabel's rows. :func:`recover_stale_jobs` finds those rows and pushes their jobs again.
Every job is idempotent (it rewrites the same keys and rows), so the second run completes the
work once. ``looplabel worker`` calls it when it starts; a periodic loop (the scheduler) can
call it too.

A ``queued`` or ``running`` row is *stale* when its RQ job

* is missing from Redis, and the row is older than ``min_age_s`` (a younger row may still be on
  its way: rows are pushed after their transaction commits);
* has failed in RQ: ``run_job`` records every failure it catches on the row before RQ marks the
  job failed, so an RQ failure under an unfinished row means the process running it died
  (RQ's clean-up of an abandoned job, or a work horse killed past its timeout);
* is started, but no live worker holds it: the execution's heartbeat expired, the worker's
  registration expired, or the worker ran on this host and its process is gone;
* is stopped or cancelled in RQ (someone stopped it by hand): the row is marked failed, not
  pushed again.

A job is pushed again at most ``max_attempts`` times (counted in Redis for a week); after that
its row is marked failed with a message, so a job that kills its worker every time (e.g. out of
memory) does not loop for ever. Only the RQ queue is handled: jobs of the in-process queue die
with their process, and nothing else could have picked them up.

Limitation: a worker on *another* host is judged by RQ's heartbeats only. A forking ``Worker``
refreshes them every 30 s (an execution expires 90 s after the last one); a ``SimpleWorker``
(the gpu queue) does not beat during a job, so its jobs are judged dead only when the job's
timeout (+60 s) has passed, or on the same host by its process id.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from backend.models import Job, utcnow

if TYPE_CHECKING:  # pragma: no cover
    from backend.queue import RQQueue
    from backend.runtime import Runtime

log = logging.getLogger(__name__)

ACTIVE_STATUSES = ("queued", "running")
LOCK_TIMEOUT_S = 300
ATTEMPTS_TTL_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Verdict:
    """What recovery makes of one active Job row.

    Attributes
    ----------
    action : str
        ``"keep"`` (its RQ job is alive or may still arrive), ``"push"`` (push it again) or
        ``"fail"`` (mark the row failed, do not push).
    reason : str
        Why, in words for the Job row's message and the log.
    """

    action: str
    reason: str


KEEP = Verdict("keep", "alive")


def recover_stale_jobs(runtime: "Runtime", *, min_age_s: float = 60.0, max_attempts: int = 3) -> list[int]:
    """Push again the jobs of ``queued`` / ``running`` Job rows whose RQ job is no longer alive.

    Parameters
    ----------
    runtime : Runtime
        The process's database and queue. With the in-process queue nothing is done.
    min_age_s : float
        A row whose RQ job is missing is left alone until it is this many seconds old.
    max_attempts : int
        Pushes per job after which its row is marked failed instead.

    Returns
    -------
    list of int
        Ids of the Job rows pushed again (ascending). Empty when another process is recovering
        at the same moment (a Redis lock makes passes exclusive) or nothing is stale.
    """
    from backend.queue import RQQueue

    queue = runtime.queue
    if not isinstance(queue, RQQueue):
        return []
    lock = queue.connection.lock(f"{queue.prefix}looplabel:recovery-lock", timeout=LOCK_TIMEOUT_S)
    if not lock.acquire(blocking=False):
        log.info("job recovery skipped: another process is recovering jobs now")
        return []
    try:
        return _recover(runtime, queue, min_age_s, max_attempts)
    finally:
        try:
            lock.release()
        except Exception:  # the lock expired meanwhile: nothing to release
            pass


def _recover(runtime: "Runtime", queue: "RQQueue", min_age_s: float, max_attempts: int) -> list[int]:
    with runtime.db.session() as s:
        rows = s.execute(
            select(Job.id, Job.created_at).where(Job.status.in_(ACTIVE_STATUSES)).order_by(Job.id)
        ).all()
    young_since = utcnow() - timedelta(seconds=min_age_s)
    pushed = []
    for job_id, created_at in rows:
        verdict = rq_job_verdict(queue, job_id)
        if verdict.action == "keep" or (verdict.reason == MISSING and created_at > young_since):
            continue
        if verdict.action == "push" and _attempts(queue, job_id) > max_attempts:
            verdict = Verdict("fail", f"{verdict.reason}; pushed again {max_attempts} times already")
        if _apply(runtime, queue, job_id, verdict):
            pushed.append(job_id)
    return pushed


MISSING = "its queue entry is missing from Redis"


def rq_job_verdict(queue: "RQQueue", job_id: int) -> Verdict:
    """Judge the RQ job of Job row ``job_id`` (see the module's rules); ``min_age_s`` is the
    caller's business (a missing job's verdict has reason :data:`MISSING`)."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job as RQJob
    from rq.job import JobStatus

    conn = queue.connection
    try:
        rq_job = RQJob.fetch(queue.queue_job_id(job_id), connection=conn)
    except NoSuchJobError:
        return Verdict("push", MISSING)
    status = rq_job.get_status(refresh=False)
    if status in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED,
                  JobStatus.CREATED, JobStatus.RATE_LIMITED, JobStatus.READY_TO_ENQUEUE):
        # (A queued job is briefly in no queue list while a worker takes it: not a sign of loss.)
        return KEEP
    if status == JobStatus.FINISHED:
        return KEEP  # run_job finishes the row before RQ finishes the job: not ours to judge
    if status == JobStatus.FAILED:
        return Verdict("push", f"its worker died while running it ({_failure_line(rq_job)})")
    if status in (JobStatus.STOPPED, JobStatus.CANCELED):
        return Verdict("fail", f"it was {status.value} in the queue")
    if status == JobStatus.STARTED:
        return _started_verdict(queue, rq_job)
    return KEEP  # a status this code does not know: leave it to RQ


def _failure_line(rq_job) -> str:
    try:
        result = rq_job.latest_result()
    except Exception:  # results are best effort
        result = None
    text = (getattr(result, "exc_string", None) or "").strip()
    return text.splitlines()[-1][:200] if text else "no traceback"


def _started_verdict(queue: "RQQueue", rq_job) -> Verdict:
    """A started job is alive while some execution of it has an unexpired heartbeat and a worker
    that is registered and, when it ran on this host, still has a process."""
    from rq.executions import Execution
    from rq.registry import StartedJobRegistry
    from rq.worker import Worker

    conn = queue.connection
    registry = StartedJobRegistry(rq_job.origin, connection=conn)
    now = time.time()
    entries = [
        (member.decode() if isinstance(member, bytes) else member, score)
        for member, score in conn.zrange(registry.key, 0, -1, withscores=True)
    ]
    entries = [(member, score) for member, score in entries if member.startswith(rq_job.id + ":")]
    if not entries:
        return Verdict("push", "it is marked started but no worker holds it")
    for member, score in entries:
        if not math.isinf(score) and score < now:
            continue  # heartbeat expired
        execution_id = member[len(rq_job.id) + 1:]
        try:
            execution = Execution.fetch(execution_id, rq_job.id, connection=conn)
        except ValueError:
            continue  # the execution's record expired with its heartbeat
        if not execution.worker_name:
            return KEEP  # cannot tell who runs it
        worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + execution.worker_name, connection=conn)
        if worker is None:
            continue  # the worker's registration expired
        if worker.hostname == socket.gethostname() and worker.pid and not _process_alive(worker.pid):
            try:
                worker.register_death()
            except Exception:  # cosmetic: RQ's worker list would drop it at its TTL anyway
                pass
            continue
        return KEEP
    return Verdict("push", "its worker died while running it")


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie (nor this process: a
    worker that recovers has not registered yet, so a registration with its pid is a dead one's)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _attempts(queue: "RQQueue", job_id: int) -> int:
    key = f"{queue.prefix}looplabel:recoveries:{job_id}"
    with queue.connection.pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, ATTEMPTS_TTL_S)
        count, _ = pipe.execute()
    return int(count)


def _apply(runtime: "Runtime", queue: "RQQueue", job_id: int, verdict: Verdict) -> bool:
    """Reset the row and push it (True), or mark it failed; re-checks the row under a lock."""
    with runtime.db.session() as s:
        row = s.get(Job, job_id, with_for_update=True)
        if row is None or row.status not in ACTIVE_STATUSES:
            return False  # it ended meanwhile (its own process recorded the outcome)
        if verdict.action == "fail":
            row.status, row.ended_at = "failed", utcnow()
            row.error = row.error or f"recovery: {verdict.reason}"
            row.message = f"failed: {verdict.reason}"[:500]
            log.warning("job %s (%s) marked failed: %s", job_id, row.kind, verdict.reason)
            return False
        row.status, row.started_at, row.ended_at, row.progress = "queued", None, None, 0.0
        row.message = f"re-queued: {verdict.reason}"[:500]
        row.queue_id = queue.queue_job_id(job_id)
        queue_name = row.queue_name
    _forget_rq_job(queue, job_id)
    queue.push_again(job_id, queue_name)
    log.warning("job %s re-queued on %s: %s", job_id, queue_name, verdict.reason)
    return True


def _forget_rq_job(queue: "RQQueue", job_id: int) -> None:
    """Delete the dead RQ job and every trace of its executions, so RQ's own clean-up never
    mistakes the new run (same job id) for the abandoned one."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job as RQJob
    from rq.registry import StartedJobRegistry

    from backend.queue import QUEUE_NAMES

    conn = queue.connection
    rq_id = queue.queue_job_id(job_id)
    try:
        RQJob.fetch(rq_id, connection=conn).delete()
    except NoSuchJobError:
        pass
    for name in QUEUE_NAMES:
        key = StartedJobRegistry(queue.prefix + name, connection=conn).key
        for member in conn.zrange(key, 0, -1):
            text = member.decode() if isinstance(member, bytes) else member
            if text.startswith(rq_id + ":"):
                conn.zrem(key, member)
