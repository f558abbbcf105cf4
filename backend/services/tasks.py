"""Crowd tasks: lease a crop to an annotator, save label revisions, submit.

Leasing rules: a crop of an open round that is not fused yet, whose current generation has fewer
than k submitted or live leases, that this annotator has not worked on in this generation. A
share of the tasks (the project's gold fraction) are gold crops, whose expert labels are known:
their submissions score the annotator and never feed the data. A worker's first
:data:`QUALIFYING_GOLD` tasks are gold crops (while any is left for them), and a worker whose gold
submissions fix on average less than :data:`MIN_GOLD_GAIN` of what the crops' starting labels got
wrong is blocked at once, so a spammer's unchanged submissions never reach a fused crop (in
bench/simulate.py, a spammer caught only at the end of round 0 left that round's approved labels
at whole-cell F1 0.904 and nuclear 0.912 against the truth, 0.98 / 0.99 in later rounds, and the
first fine-tune learned from them). Expired leases return the crop to the pool.

A worker id is only a name anyone could type: a live task goes again (a reload) only to the browser
holding its resume secret (:func:`backend.services.tokens.resume_secret`); see :func:`lease_task`.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

import numpy as np
from sqlalchemy import and_, bindparam, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.crowd import Identity, platform_for
from backend.errors import BusyError, ConflictError, ForbiddenError, NotFoundError, TooManyRequestsError, UserError
from backend.models import Annotator, Assignment, Crop, Image, LabelRevision, Project, Round, utcnow
from backend.queue import JobQueue
from backend.services import labels_io
from backend.services.task_access import TaskAccess
from backend.services.tokens import issue_token, resume_matches, resume_secret, token_hash
from backend.storage import BlobStore


class NoTaskError(NotFoundError):
    """Nothing left for this annotator right now."""


@dataclass
class Lease:
    crop: Crop
    assignment: Assignment | None  # None for a read-only preview
    token: str
    preview: bool
    resume: str | None = None  # the browser's proof for a reload (None for a preview)


def expire_leases(session: Session, now: datetime | None = None) -> int:
    """Mark leases past their expiry as expired (bookkeeping for the console; the scheduler runs it).

    Leasing does not need it: a lease past its expiry already counts for nothing, so its crop is
    back in the pool the moment it expires.
    """
    now = now or utcnow()
    result = session.execute(
        update(Assignment)
        .where(Assignment.status == "leased", Assignment.lease_expires_at < now)
        .values(status="expired")
    )
    return result.rowcount or 0


def get_annotator(session: Session, project: Project, platform: str, worker_id: str) -> Annotator:
    annotator = session.scalar(
        select(Annotator).where(
            Annotator.project_id == project.id, Annotator.platform == platform, Annotator.worker_id == worker_id
        )
    )
    if annotator is None:
        annotator = Annotator(project_id=project.id, platform=platform, worker_id=worker_id)
        session.add(annotator)
        session.flush()
    if annotator.blocked:
        raise ForbiddenError("this worker id is no longer accepted for this project")
    return annotator


def _busy_count(crop_generation_match, now: datetime):
    """Correlated count of submissions + live leases of a crop's current generation."""
    return (
        select(func.count(Assignment.id))
        .where(
            Assignment.crop_id == Crop.id,
            Assignment.generation == Crop.generation,
            or_(
                Assignment.status == "submitted",
                and_(Assignment.status == "leased", Assignment.lease_expires_at >= now),
            ),
        )
        .correlate(Crop)
        .scalar_subquery()
    )


def _candidates(session: Session, project: Project, annotator: Annotator, now: datetime, gold: bool):
    done_by_me = (
        select(Assignment.id)
        .where(
            Assignment.crop_id == Crop.id,
            Assignment.annotator_id == annotator.id,
            Assignment.generation == Crop.generation,
            or_(Assignment.status == "submitted",
                and_(Assignment.status == "leased", Assignment.lease_expires_at >= now)),
        )
        .correlate(Crop)
        .exists()
    )
    busy = _busy_count(None, now)
    query = (
        select(Crop)
        .join(Image, Image.id == Crop.image_id)
        .join(Round, Round.id == Crop.round_id)
        .where(Image.project_id == project.id, Round.status == "open", ~done_by_me, Crop.is_gold.is_(gold))
    )
    if gold:
        query = query.order_by(busy, Crop.id)  # gold: any number of annotators, spread them
    else:
        query = query.where(Crop.status == "open", busy < project.annotators_per_crop).order_by(
            busy.desc(), Crop.id  # finish crops that are nearly done first
        )
    return query


#: A worker's first tasks in a project are this many gold crops (while any is left for them).
QUALIFYING_GOLD = 2
#: A worker whose gold gain (:func:`backend.core.crowd_simulation.gold_gain`) averages below this
#: over at least :data:`QUALIFYING_GOLD` informative gold tasks is blocked automatically (an honest
#: annotator fixes at least a twentieth of what was wrong on a crop that needed fixing).
MIN_GOLD_GAIN = 0.05


def _wants_gold(session: Session, project: Project, annotator: Annotator) -> bool:
    """A new worker qualifies on gold first; after that gold tasks are mixed in at the project's
    fraction, deterministically per annotator history."""
    if project.gold_fraction <= 0:
        return False
    # one query on the lease path: all their assignments, and their submitted gold tasks
    n_done, gold_done = session.execute(
        select(func.count(Assignment.id),
               func.count(case((and_(Assignment.status == "submitted", Crop.is_gold.is_(True)), Assignment.id))))
        .join(Crop, Crop.id == Assignment.crop_id).where(Assignment.annotator_id == annotator.id)
    ).one()
    if (gold_done or 0) < QUALIFYING_GOLD:
        return True
    n_done = n_done or 0
    rng = np.random.default_rng(annotator.id * 1_000_003 + n_done)
    return bool(rng.random() < project.gold_fraction)


def lease_task(
    session: Session,
    project: Project,
    params: dict,
    *,
    secret: str,
    ttl_s: int,
    now: datetime | None = None,
    resume: str | None = None,
    max_open: int | None = None,
) -> Lease:
    """Lease the next task for the worker named by the platform parameters ``params``.

    ``resume``: the secret of the browser's last lease. A live lease of this worker that the link
    still names comes back with it (a reload: fresh token, the old one retired); without it, a new
    task, or 409 when the link names the held task (a per-crop link, an MTurk assignment resent).
    ``max_open``: live leases one worker may hold (429 past it). MTurk preview: read-only, no lease.
    """
    now = now or utcnow()
    platform = platform_for(project.platform)
    identity: Identity = platform.identify(params)
    if identity.preview:
        crop = session.scalar(_candidates_any(project))
        if crop is None:
            raise NoTaskError("there are no tasks in this project right now")
        return Lease(crop=crop, assignment=None, token=issue_token(secret, crop.id, None, "preview"), preview=True)
    annotator = get_annotator(session, project, platform.name, identity.worker_id)
    live = session.scalars(
        select(Assignment)
        .where(Assignment.annotator_id == annotator.id, Assignment.status == "leased", Assignment.lease_expires_at >= now)
        .order_by(Assignment.id.desc())
    ).all()
    named = [a for a in live if _link_names(a, identity)]
    mine = next((a for a in named if resume_matches(secret, a.id, resume)), None)
    if mine is not None:  # the same browser again (a reload)
        return _issue(session, secret, session.get(Crop, mine.crop_id), mine)
    held = next((a for a in named if identity.crop_id is not None or _same_platform_assignment(a, identity)), None)
    if held is not None:
        raise ConflictError(
            "this task is open in another browser or tab; continue it there (it is held until "
            f"{held.lease_expires_at:%H:%M} UTC, then it can be opened here)")
    if max_open is not None and len(live) >= max_open:
        wait = min((a.lease_expires_at - now).total_seconds() for a in live)
        raise TooManyRequestsError(
            f"you already have {len(live)} open tasks in this project, the most one worker may hold "
            "(MAX_OPEN_LEASES_PER_WORKER); submit one of them, or wait until one expires", retry_after_s=wait)
    crop = _pick_crop(session, project, annotator, identity, now)
    assignment = Assignment(
        crop_id=crop.id,
        annotator_id=annotator.id,
        platform=platform.name,
        external_worker_id=identity.worker_id,
        platform_params=identity.params,
        lease_expires_at=now + timedelta(seconds=ttl_s),
        status="leased",
        generation=crop.generation,
        started_at=now,
    )
    session.add(assignment)
    session.flush()
    return _issue(session, secret, crop, assignment)


def _link_names(assignment: Assignment, identity: Identity) -> bool:
    """Whether the task link of ``identity`` may continue ``assignment`` (same crop, when the link
    names one; the same platform assignment, when the platform has one)."""
    if identity.crop_id is not None and assignment.crop_id != identity.crop_id:
        return False
    sent = identity.params.get("assignmentId")
    return sent is None or (assignment.platform_params or {}).get("assignmentId") == sent


def _same_platform_assignment(assignment: Assignment, identity: Identity) -> bool:
    sent = identity.params.get("assignmentId")
    return sent is not None and (assignment.platform_params or {}).get("assignmentId") == sent


def _candidates_any(project: Project):
    return (
        select(Crop)
        .join(Image, Image.id == Crop.image_id)
        .join(Round, Round.id == Crop.round_id)
        .where(Image.project_id == project.id, Round.status == "open")
        .order_by(Crop.id)
        .limit(1)
    )


def _pick_crop(session: Session, project: Project, annotator: Annotator, identity: Identity, now: datetime) -> Crop:
    if identity.crop_id is not None:  # per-crop URL (one platform row per crop)
        crop = session.get(Crop, identity.crop_id)
        image = session.get(Image, crop.image_id) if crop else None
        if crop is None or image.project_id != project.id:
            raise NotFoundError(f"no crop {identity.crop_id} in this project")
        allowed = session.scalar(
            _candidates(session, project, annotator, now, crop.is_gold).where(Crop.id == crop.id)
        )
        if allowed is None:
            raise NoTaskError("this crop needs no more annotations from you; thank you")
        return _lock(session, crop)
    order = [True, False] if _wants_gold(session, project, annotator) else [False, True]
    # Concurrent leases all want the crop nearest completion: one takes it, the others move on
    # to the next instead of queueing behind its lock. A lease never waits for a lock while it
    # holds one (two leases could wait for each other): when every candidate is being leased
    # right now, it looks again a moment later.
    for pause_s in LEASE_RETRY_PAUSES_S:
        contended = False
        for gold in order:
            for crop in session.scalars(_candidates(session, project, annotator, now, gold).limit(20)):
                locked = _lock(session, crop, skip_locked=True)
                if locked is None:
                    contended = True
                elif gold or _still_needed(session, locked, project, now):
                    return locked
        if not contended:
            raise NoTaskError("there is no task left for you in this project right now; thank you")
        time.sleep(pause_s)
    raise BusyError("many annotators are starting tasks at this moment; please try again in a few seconds")


LEASE_RETRY_PAUSES_S = (0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8)  # 1.6 s in all


def _lock(session: Session, crop: Crop, skip_locked: bool = False) -> Crop | None:
    """Row-lock the crop (PostgreSQL) so two leases cannot both take its last slot.

    With ``skip_locked``, None when another transaction holds the lock (SQLite, which serialises
    writers instead, always returns the crop).
    """
    locking = select(Crop).where(Crop.id == crop.id).with_for_update(skip_locked=skip_locked)
    return session.scalar(locking.execution_options(populate_existing=True))  # as of the lock


def _still_needed(session: Session, crop: Crop, project: Project, now: datetime) -> bool:
    busy = session.scalar(
        select(func.count(Assignment.id)).where(
            Assignment.crop_id == crop.id,
            Assignment.generation == crop.generation,
            or_(Assignment.status == "submitted",
                and_(Assignment.status == "leased", Assignment.lease_expires_at >= now)),
        )
    )
    return crop.status == "open" and busy < project.annotators_per_crop


def _issue(session: Session, secret: str, crop: Crop, assignment: Assignment) -> Lease:
    token = issue_token(secret, crop.id, assignment.id, "edit")
    assignment.token_hash = token_hash(token)
    session.flush()
    return Lease(crop=crop, assignment=assignment, token=token, preview=False,
                 resume=resume_secret(secret, assignment.id))


# --- revisions -----------------------------------------------------------------------------------
LabelReader = Callable[[str], np.ndarray]
_NEWEST_REVISION = (
    select(LabelRevision.key, LabelRevision.number)
    .where(LabelRevision.assignment_id == bindparam("assignment_id"))
    .order_by(LabelRevision.number.desc())
    .limit(1)
)


def newest_labels_ref(session: Session, crop: Crop, assignment: Assignment | None,
                      preloaded: tuple[str, int] | None = None) -> tuple[str, int]:
    """Where the newest labels of a task are, without reading them.

    ``preloaded``: the answer when the caller loaded it with the task (:attr:`TaskAccess.newest`).

    Returns
    -------
    (str, int)
        The blob key of the assignment's latest revision and its number, or the crop's key and
        0 (the prediction) when it has none (or for a preview, ``assignment`` None).
    """
    if preloaded is not None:
        return preloaded
    if assignment is not None:
        row = session.execute(_NEWEST_REVISION, {"assignment_id": assignment.id}).first()
        if row is not None:
            return row.key, row.number
    return crop.key, 0


def current_labels(session: Session, store: BlobStore, crop: Crop, assignment: Assignment | None,
                   read: LabelReader | None = None, preloaded: tuple[str, int] | None = None) -> tuple[np.ndarray, int]:
    """The newest labels of this assignment (or the crop's prediction) and their revision number.

    ``read(key)`` returns the (2,h,w) int32 labels stored under ``key``; default: from ``store``
    (a caller with a cache of immutable revisions passes its own). ``preloaded``: see
    :func:`newest_labels_ref`.
    """
    key, number = newest_labels_ref(session, crop, assignment, preloaded)
    return (read or (lambda k: labels_io.get_labels(store, k)))(key), number


def check_label_stack(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Validate an uploaded (2,h,w) int32 stack for a crop of ``shape``."""
    if labels.ndim != 3 or labels.shape[0] != 2 or tuple(labels.shape[1:]) != tuple(shape):
        raise UserError(f"labels must have shape (2, {shape[0]}, {shape[1]}), got {tuple(labels.shape)}")
    if labels.size and labels.min() < 0:
        raise UserError("label ids must be ≥ 0")
    return labels


def save_revision(session: Session, store: BlobStore, access: TaskAccess, labels: np.ndarray, base: int,
                  edit_count: int | None = None, read: LabelReader | None = None,
                  zlib_stream: bytes | None = None) -> LabelRevision:
    """Save a new revision on top of ``base``; a stale base is a 409, never a silent overwrite.

    The revision's row is flushed before its labels are written, so of two concurrent saves on
    the same base only the one holding the row writes the blob (the other waits on the unique
    (assignment, number) index, then gets a 409); a save that fails later (or whose process
    dies) leaves no row, and a revision row never names labels another request wrote.
    ``read`` is passed to :func:`current_labels` for the previous labels; ``zlib_stream``, the
    labels as received in the wire format, is stored as is (:func:`labels_io.put_labels`).
    """
    crop, assignment = access.crop, access.assignment
    labels = check_label_stack(labels, (crop.y1 - crop.y0, crop.x1 - crop.x0))
    previous, current = current_labels(session, store, crop, assignment, read, access.newest)
    if base != current:
        raise ConflictError(f"revision {base} is stale: the task is at revision {current}; reload it")
    number = current + 1
    key = labels_io.revision_key(assignment.id, number)
    rev = LabelRevision(assignment_id=assignment.id, number=number, key=key,
                        author=assignment.external_worker_id,
                        changed_pixels=int(np.count_nonzero(previous != labels)))
    session.add(rev)
    if edit_count is not None:
        assignment.edit_count = max(0, int(edit_count))
    try:
        session.flush()
    except IntegrityError:  # a concurrent save took this number first
        session.rollback()
        raise ConflictError(f"revision {base} is stale: another save landed first; reload it") from None
    labels_io.put_labels(store, key, labels, zlib_stream)
    return rev


def _block_if_unqualified(session: Session, project: Project, annotator: Annotator) -> None:
    """Block a worker whose gold gains so far average below :data:`MIN_GOLD_GAIN` (over at least
    :data:`QUALIFYING_GOLD` gold tasks whose start needed fixing); their pending work is dropped."""
    from backend.services.annotators import set_blocked

    gains = [g for g in session.scalars(select(Assignment.gold_gain).where(
        Assignment.annotator_id == annotator.id, Assignment.status == "submitted",
        Assignment.gold_gain.isnot(None)))]
    if not annotator.blocked and len(gains) >= QUALIFYING_GOLD and float(np.mean(gains)) < MIN_GOLD_GAIN:
        set_blocked(session, project.id, annotator.id, True)


def submit(session: Session, store: BlobStore, queue: JobQueue, access: TaskAccess, *,
           active_seconds: float, edit_count: int, now: datetime | None = None) -> dict:
    """Freeze the assignment, record effort, score gold, fuse when the crop has k submissions.

    Returns the completion the page performs (platform handshake) and the completion code.
    """
    now = now or utcnow()
    assignment, crop = access.assignment, access.crop
    if not 0 <= active_seconds <= 24 * 3600:
        raise UserError("active_seconds must be between 0 and 86400", field="active_seconds")
    assignment.status, assignment.submitted_at = "submitted", now
    assignment.active_seconds = float(active_seconds)
    assignment.edit_count = max(int(edit_count), assignment.edit_count or 0)
    assignment.completion_code = secrets.token_hex(6).upper()
    image = session.get(Image, crop.image_id)
    project = session.get(Project, image.project_id)
    if crop.is_gold and crop.gold_key:
        from backend.core.crowd_simulation import gold_gain
        from backend.core.metrics import object_metrics

        labels, _ = current_labels(session, store, crop, assignment)
        gold = labels_io.get_labels(store, crop.gold_key)
        f1s = [object_metrics(gold[f], labels[f]).f1 for f in range(2) if gold[f].any() or labels[f].any()]
        assignment.gold_score = float(np.mean(f1s)) if f1s else 1.0
        start, _ = current_labels(session, store, crop, None)
        assignment.gold_gain = gold_gain(start, labels, gold)
        session.flush()
        _block_if_unqualified(session, project, session.get(Annotator, assignment.annotator_id))
    else:
        queue.enqueue(session, "worker.jobs.fuse_crop", project_id=project.id, crop_id=crop.id)
    action = platform_for(assignment.platform).completion(
        assignment.completion_code, assignment.platform_params or {}, project.platform_settings or {}
    )
    session.flush()
    return {"completion": action.as_dict(), "assignment_id": assignment.id}
