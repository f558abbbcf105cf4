"""Model versions: start a retraining round, promote, roll back, and the automatic promotion rule."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.errors import ConflictError, NotFoundError, UserError
from backend.models import DatasetVersion, Image, Job, ModelVersion, Project, utcnow
from backend.queue import JobQueue

BACKBONES = ("resnet50", "small")


def model_dict(mv: ModelVersion) -> dict:
    return {
        "id": mv.id, "project_id": mv.project_id, "version": mv.version, "parent_id": mv.parent_id,
        "dataset_id": mv.dataset_id, "backbone": mv.backbone, "status": mv.status, "metrics": mv.metrics,
        "config": mv.config, "postprocess": mv.postprocess, "scale": mv.scale, "error": mv.error, "created_at": mv.created_at.isoformat() + "Z",
        "promoted_at": mv.promoted_at.isoformat() + "Z" if mv.promoted_at else None,
    }


def promoted(session: Session, project_id: int) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(ModelVersion.project_id == project_id, ModelVersion.status == "promoted")
        .order_by(ModelVersion.promoted_at.desc()).limit(1)
    )


def training_in_progress(session: Session, project_id: int) -> bool:
    return bool(session.scalar(
        select(func.count(Job.id)).where(
            Job.project_id == project_id, Job.kind.in_(("build_dataset", "train_model")),
            Job.status.in_(("queued", "running")),
        )
    ))


def start_retraining(session: Session, queue: JobQueue, project: Project, *, steps: int, backbone: str,
                     reason: str = "admin") -> Job:
    """Enqueue build_dataset → train_model (fine-tuning the promoted version when there is one)."""
    if backbone not in BACKBONES:
        raise UserError(f"backbone must be one of {', '.join(BACKBONES)}", field="backbone")
    if not 1 <= steps <= 10**7:
        raise UserError("steps must be a positive number", field="steps")
    if training_in_progress(session, project.id):
        raise ConflictError(f"a retraining of project {project.name!r} is already running")
    n_approved = session.scalar(
        select(func.count(Image.id)).where(Image.project_id == project.id, Image.status == "approved")
    )
    if not n_approved:
        raise UserError(f"project {project.name!r} has no approved images yet; review some first")
    return queue.enqueue(session, "worker.jobs.build_dataset", project_id=project.id,
                         then_train={"steps": steps, "backbone": backbone, "reason": reason})


def new_model_version(session: Session, project_id: int, dataset_id: int, backbone: str, config: dict) -> ModelVersion:
    parent = promoted(session, project_id)
    version = (session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.project_id == project_id)) or 0) + 1
    mv = ModelVersion(project_id=project_id, version=version, parent_id=parent.id if parent else None,
                      dataset_id=dataset_id, backbone=backbone, config=config, status="training")
    session.add(mv)
    session.flush()
    return mv


def promote(session: Session, model_version_id: int) -> ModelVersion:
    """Make a ready version the one that predicts the next round; the previous one stays ready."""
    mv = session.get(ModelVersion, model_version_id)
    if mv is None:
        raise NotFoundError(f"no model version {model_version_id}")
    if mv.status not in ("ready", "promoted", "retired"):
        raise ConflictError(f"model version {mv.version} is {mv.status} and cannot be promoted")
    if not mv.key:
        raise ConflictError(f"model version {mv.version} has no stored weights")
    for other in session.scalars(select(ModelVersion).where(
            ModelVersion.project_id == mv.project_id, ModelVersion.status == "promoted", ModelVersion.id != mv.id)):
        other.status = "ready"
    mv.status, mv.promoted_at = "promoted", utcnow()
    session.flush()
    return mv


def roll_back(session: Session, project_id: int) -> ModelVersion | None:
    """Retire the promoted version and promote the one promoted before it (None: back to baseline)."""
    current = promoted(session, project_id)
    if current is None:
        raise ConflictError("no model version is promoted; the baseline is already serving")
    current.status = "retired"
    previous = session.scalar(
        select(ModelVersion).where(
            ModelVersion.project_id == project_id, ModelVersion.status == "ready",
            ModelVersion.promoted_at.isnot(None), ModelVersion.id != current.id,
        ).order_by(ModelVersion.promoted_at.desc()).limit(1)
    )
    if previous is not None:
        previous.status, previous.promoted_at = "promoted", utcnow()
    session.flush()
    return previous


def headline_score(metrics: dict) -> float | None:
    """The figure versions are compared by: the mean object F1 over the project's features
    (:func:`worker.training.headline`); whole-cell F1 for versions measured before it existed."""
    metrics = metrics or {}
    value = metrics.get("headline", metrics.get("f1"))
    return float(value) if value is not None else None


def apply_promotion_rule(session: Session, mv: ModelVersion) -> bool:
    """Auto-promote when the project allows it and the new version beats what it would replace.

    The training job measures the candidate and the predictor the next round would otherwise
    use — the promoted version, else the better of the generalist and the classical baseline —
    through the same predict path on the same held-out images (judged by the lab's ground truth
    where it uploaded one, else by the approved labels). A candidate without a
    measured reference, or one that does not score strictly higher, is never promoted.
    """
    project = session.get(Project, mv.project_id)
    if not project.auto_promote or mv.status != "ready":
        return False
    new = headline_score(mv.metrics)
    reference = headline_score((mv.metrics or {}).get("reference") or {})
    if new is None or reference is None or new <= reference:
        return False
    promote(session, mv.id)
    return True


def retraining_due(session: Session, project: Project, now=None) -> str | None:
    """Why the scheduler should retrain ``project`` now, or None.

    Due when at least ``retrain_min_images`` images were approved since the newest dataset, or
    when ``retrain_every_hours`` have passed since the newest model version and something new
    was approved.
    """
    now = now or utcnow()
    last_ds = session.scalar(select(DatasetVersion).where(DatasetVersion.project_id == project.id)
                             .order_by(DatasetVersion.version.desc()).limit(1))
    used = set()
    if last_ds is not None:
        for ids in (last_ds.image_ids or {}).values():
            used.update(ids)
        used.update((last_ds.qc or {}).get("dropped_images", []))
    approved = set(session.scalars(select(Image.id).where(Image.project_id == project.id, Image.status == "approved")))
    fresh = len(approved - used)
    if fresh == 0:
        return None
    if fresh >= project.retrain_min_images:
        return f"{fresh} newly approved images (threshold {project.retrain_min_images})"
    if project.retrain_every_hours:
        last_mv = session.scalar(select(ModelVersion).where(ModelVersion.project_id == project.id)
                                 .order_by(ModelVersion.created_at.desc()).limit(1))
        since = last_mv.created_at if last_mv else (last_ds.created_at if last_ds else None)
        if since is None or (now - since).total_seconds() >= project.retrain_every_hours * 3600:
            return f"{project.retrain_every_hours} h since the last training and {fresh} new images"
    return None
