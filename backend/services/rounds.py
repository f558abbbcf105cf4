"""Rounds: start one (predict → crop → open crowd tasks) and follow images through it."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.errors import ConflictError, UserError
from backend.models import Image, ModelVersion, Project, Round, utcnow
from backend.queue import JobQueue

# Images that take part in a new round: everything not yet approved.
ROUND_STATUSES = ("uploaded", "predicted", "cropped", "rejected")


def current_round(session: Session, project_id: int) -> Round | None:
    return session.scalar(
        select(Round).where(Round.project_id == project_id).order_by(Round.number.desc()).limit(1)
    )


def promoted_model(session: Session, project_id: int) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion)
        .where(ModelVersion.project_id == project_id, ModelVersion.status == "promoted")
        .order_by(ModelVersion.promoted_at.desc())
        .limit(1)
    )


def waiting_images(session: Session, project: Project) -> int:
    """How many images a new round of ``project`` would take (those not approved yet)."""
    return session.scalar(select(func.count(Image.id)).where(
        Image.project_id == project.id, Image.status.in_(ROUND_STATUSES))) or 0


def start_round(session: Session, queue: JobQueue, project: Project, policy: dict | None = None,
                take: int | None = None) -> Round:
    """Open the next round: every image not yet approved is predicted, then cropped.

    Predictions use the promoted model version; before any is promoted, the generalist or the
    classical baseline, whichever scores better on the project's labelled images (measured
    afresh by the round's first predict job, as labelled images may have arrived).
    ``policy`` (checked by :func:`backend.services.crowd_policy.validate_policy`) decides which
    crops go to the crowd; None takes the project's. ``take`` (:mod:`backend.services.image_pool`):
    the round keeps only the N waiting images the model is least sure of. Raises ConflictError
    while a previous round is still open, UserError with no images.
    """
    from backend.services.crowd_policy import project_policy

    last = current_round(session, project.id)
    if last is not None and last.status == "open":
        raise ConflictError(f"round {last.number} of project {project.name!r} is still open; close it first")
    images = list(
        session.scalars(
            select(Image).where(Image.project_id == project.id, Image.status.in_(ROUND_STATUSES)).order_by(Image.id)
        )
    )
    if not images:
        raise UserError(f"project {project.name!r} has no images waiting for a round; upload some first")
    model = promoted_model(session, project.id)
    if model is None:
        project.predictor_choice = None
    rnd = Round(
        project_id=project.id,
        number=(last.number + 1) if last else 0,
        model_version_id=model.id if model else None,
        status="open",
        policy={**(policy or project_policy(project)), "images": [image.id for image in images]},
    )
    if take is not None and take < len(images):
        rnd.policy = {**rnd.policy, "take": int(take),
                      "pool_status": {str(image.id): image.status for image in images}}
    session.add(rnd)
    session.flush()
    for image in images:
        queue.enqueue(
            session, "worker.jobs.predict_image", queue="gpu", project_id=project.id,
            image_id=image.id, round_id=rnd.id,
        )
    return rnd


def close_round_if_done(session: Session, rnd: Round) -> bool:
    """Close ``rnd`` once none of its images is still in the crowd or in review."""
    open_images = session.scalar(
        select(func.count()).select_from(Image).where(
            Image.project_id == rnd.project_id,
            Image.status.in_(("predicted", "cropped", "in_crowd", "stitched", "in_review")),
        )
    )
    if open_images == 0 and rnd.status == "open":
        rnd.status, rnd.closed_at = "closed", utcnow()
        return True
    return False
