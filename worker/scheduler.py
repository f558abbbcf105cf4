"""Periodic retraining trigger: start a round of training when a project is due.

Run as ``looplabel scheduler`` (a loop) or ``looplabel scheduler --once`` (e.g. from cron).
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import select

from backend.errors import UserError
from backend.models import Project
from backend.services import registry, review, tasks

log = logging.getLogger(__name__)


def run_once(runtime) -> list[dict]:
    """Mark expired crowd leases, sweep leftovers of interrupted storage writes, and start
    retraining for every project that is due; returns what was started."""
    started = []
    with runtime.db.session() as s:
        expired = tasks.expire_leases(s)
        project_ids = list(s.scalars(select(Project.id)))
    if expired:
        log.info("%d crowd leases expired", expired)
    swept = runtime.store.sweep_partial_writes()
    if swept:
        log.info("removed %d temporary files of interrupted storage writes", swept)
    with runtime.db.session() as s:
        orphans = review.sweep_orphan_review_blobs(s, runtime.store)
    if orphans:
        log.info("removed %d review files that no revision names (saves that lost or crashed)", orphans)
    for project_id in project_ids:
        with runtime.db.session() as s:
            project = s.get(Project, project_id)
            reason = registry.retraining_due(s, project)
            if reason is None or registry.training_in_progress(s, project_id):
                continue
            try:
                job = registry.start_retraining(s, runtime.queue, project, steps=runtime.settings.train_steps,
                                                backbone=runtime.settings.train_backbone, reason=f"scheduler: {reason}")
            except UserError as exc:
                log.info("project %s not retrained: %s", project.name, exc)
                continue
            started.append({"project": project.name, "job_id": job.id, "reason": reason})
            log.info("retraining %s: %s", project.name, reason)
    return started


def run_forever(runtime, interval_s: float = 300.0) -> None:
    from backend.services.recovery import recover_stale_jobs

    while True:
        try:
            if runtime.settings.redis_url:
                recover_stale_jobs(runtime)  # jobs whose worker died are pushed again (idempotent)
            run_once(runtime)
        except Exception:  # keep the scheduler alive; the error is logged
            log.exception("scheduler pass failed")
        time.sleep(interval_s)
