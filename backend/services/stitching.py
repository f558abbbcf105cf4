"""Crop an image into crowd tasks, fuse each crop's submissions, stitch the crops back.

These are the use cases behind the ``crop_image``, ``fuse_crop`` and ``stitch_image`` jobs.
Each is idempotent: re-running it rewrites the same rows and keys and creates no duplicates;
arrays are written before the rows that point at them, so a crash leaves the previous state.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.core.consensus import fuse_annotations
from backend.core.imaging import channels_to_uint8
from backend.core.metrics import contingency
from backend.core.tiling import CropWindow, crop_plan, stitch_crops
from backend.errors import NotFoundError
from backend.models import (
    FEATURES,
    Annotator,
    Assignment,
    Crop,
    Image,
    Job,
    LabelRevision,
    Project,
    Round,
    Stitch,
    utcnow,
)
from backend.services import labels_io
from backend.storage import BlobStore


def _load(session: Session, image_id: int, round_id: int) -> tuple[Image, Round, Project]:
    image, rnd = session.get(Image, image_id), session.get(Round, round_id)
    if image is None or rnd is None:
        raise NotFoundError(f"image {image_id} or round {round_id} does not exist")
    return image, rnd, session.get(Project, image.project_id)


def gold_indices(n_crops: int, fraction: float, seed: int) -> set[int]:
    """Which crops of a plan become gold: ``round(fraction * n)`` of them, drawn by ``seed``.

    At least one when the fraction is positive and the image has more than one crop (an image
    that is a single crop is never all gold: its data would never reach the dataset's stitch).
    """
    if fraction <= 0 or n_crops == 0:
        return set()
    n_gold = max(1, int(round(fraction * n_crops)))
    n_gold = min(n_gold, n_crops)
    rng = np.random.default_rng(seed)
    return set(int(i) for i in rng.choice(n_crops, size=n_gold, replace=False))


def crop_image(session: Session, store: BlobStore, image_id: int, round_id: int) -> list[Crop]:
    """Cut an image and its round's predicted labels into the project's crop plan.

    Each crop stores ``channels`` (C,h,w) uint8 (after the image's display range, so every crop of
    an image looks alike) and ``labels`` (2,h,w) int32 (the prediction) under ``crops/<id>.npz``.
    Crops of images with ground truth become gold in the project's fraction: their expert
    labels (``gold/<id>.npz``) are what they fuse to, and crowd submissions on them only score
    the annotator.
    """
    image, rnd, project = _load(session, image_id, round_id)
    raw = store.get_array(image.raw_key)
    predicted = labels_io.get_labels(store, labels_io.prediction_key(image.id, rnd.number))
    channels = channels_to_uint8(raw, np.asarray(image.display_range, dtype=np.float64))
    truth = labels_io.get_labels(store, image.ground_truth_key) if image.ground_truth_key else None
    plan = crop_plan((image.height, image.width), project.crop_size, project.overlap)
    gold = gold_indices(len(plan), project.gold_fraction, seed=image.id * 7919 + rnd.number) if truth is not None else set()
    existing = {
        c.index: c
        for c in session.scalars(select(Crop).where(Crop.image_id == image.id, Crop.round_id == rnd.id))
    }
    crops = []
    for index, window in enumerate(plan):
        crop = existing.pop(index, None)
        if crop is None:
            crop = Crop(image_id=image.id, round_id=rnd.id, index=index, key="")
            session.add(crop)
        crop.y0, crop.x0, crop.y1, crop.x1 = window.y0, window.x0, window.y1, window.x1
        session.flush()
        ys, xs = window.slices
        if crop.generation == 0:  # a crop reopened by review keeps the start it was reopened with
            crop.key = labels_io.crop_key(crop.id)
            store.put_arrays(crop.key, channels=channels[:, ys, xs], labels=predicted[:, ys, xs])
        crop.is_gold = index in gold
        if crop.is_gold:
            crop.gold_key = f"gold/{crop.id}.npz"
            labels_io.put_labels(store, crop.gold_key, truth[:, ys, xs])
            fused = labels_io.fused_key(crop.id, crop.generation)
            labels_io.put_labels(store, fused, truth[:, ys, xs])
            crop.fused_key, crop.status = fused, "fused"
        else:
            crop.gold_key = None
            if crop.status != "fused":
                crop.status = "open"
        crops.append(crop)
    for stale in existing.values():  # the plan shrank (project settings changed): drop leftovers
        session.delete(stale)
    image.status = "in_crowd"
    session.flush()
    return crops


def submissions_for(session: Session, crop: Crop) -> list[Assignment]:
    """Submitted assignments of the crop's current generation, by annotators not blocked, oldest first."""
    return list(
        session.scalars(
            select(Assignment)
            .join(Annotator, Annotator.id == Assignment.annotator_id)
            .where(
                Assignment.crop_id == crop.id,
                Assignment.status == "submitted",
                Assignment.generation == crop.generation,
                Annotator.blocked.is_(False),
            )
            .order_by(Assignment.submitted_at, Assignment.id)
        )
    )


def latest_revision(session: Session, assignment_id: int) -> LabelRevision | None:
    return session.scalar(
        select(LabelRevision)
        .where(LabelRevision.assignment_id == assignment_id)
        .order_by(LabelRevision.number.desc())
        .limit(1)
    )


def fuse_crop(session: Session, store: BlobStore, crop_id: int) -> bool:
    """Fuse the crop's k submissions once it has them; returns whether the crop is fused.

    Gold crops are fused at crop time (to their expert labels). A submission without any saved
    revision counts as the unchanged prediction. Each used assignment gets its agreement with
    the consensus (mean matched IoU, missed and extra objects).
    """
    crop = session.get(Crop, crop_id)
    if crop is None:
        raise NotFoundError(f"no crop with id {crop_id}")
    if crop.is_gold:
        return crop.status == "fused"
    project = session.get(Project, session.get(Image, crop.image_id).project_id)
    subs = submissions_for(session, crop)[: project.annotators_per_crop]
    if len(subs) < project.annotators_per_crop:
        return False
    predicted = labels_io.get_labels(store, crop.key)
    arrays = []
    for a in subs:
        rev = latest_revision(session, a.id)
        arrays.append(labels_io.get_labels(store, rev.key) if rev else predicted)
    result = fuse_annotations(arrays, quorum=project.quorum)
    key = labels_io.fused_key(crop.id, crop.generation)
    labels_io.put_labels(store, key, result.labels)
    for a, agreement in zip(subs, result.agreement):
        a.agreement = {
            "mean_iou": float(agreement.mean_iou),
            "matched": int(agreement.matched),
            "missed": int(agreement.missed),
            "extra": int(agreement.extra),
            "score": float(agreement.score),
        }
    crop.fused_key, crop.status = key, "fused"
    session.flush()
    return True


def image_crops(session: Session, image_id: int, round_id: int) -> list[Crop]:
    return list(
        session.scalars(select(Crop).where(Crop.image_id == image_id, Crop.round_id == round_id).order_by(Crop.index))
    )


def all_fused(session: Session, image_id: int, round_id: int) -> bool:
    crops = image_crops(session, image_id, round_id)
    return bool(crops) and all(c.status == "fused" for c in crops)


STITCH_JOB = "worker.jobs.stitch_image"


def stitch_due(session: Session, image_id: int, round_id: int) -> bool:
    """Whether the image's stitch is to be queued now: every crop of the round is fused, the image
    has no stitch in review or approved, and no stitch job of it is queued or running.

    Locks the image's row (``SELECT ... FOR UPDATE`` on PostgreSQL) until the caller's commit, so
    of two callers that finish the image's last crops at once exactly one sees the stitch due —
    provided each committed its own fuse before asking (then the later one sees both fuses).
    """
    session.execute(select(Image.id).where(Image.id == image_id).with_for_update())
    if not all_fused(session, image_id, round_id):
        return False
    status = session.scalar(select(Stitch.status).where(Stitch.image_id == image_id, Stitch.round_id == round_id))
    if status is not None and status != "rejected":
        return False
    pending = session.scalars(
        select(Job.args).where(Job.func == STITCH_JOB, Job.status.in_(("queued", "running")))
    )
    return not any(args.get("image_id") == image_id and args.get("round_id") == round_id for args in pending)


def queue_stitch_if_due(session: Session, queue, image_id: int, round_id: int) -> bool:
    """Queue the image's ``stitch_image`` job when :func:`stitch_due`; returns whether it did."""
    if not stitch_due(session, image_id, round_id):
        return False
    project_id = session.get(Image, image_id).project_id
    queue.enqueue(session, STITCH_JOB, project_id=project_id, image_id=image_id, round_id=round_id)
    return True


def start_labels(store: BlobStore, crops: list[Crop], shape: tuple[int, int]):
    """The stitch of what each crop's crowd started from: its starting labels (the prediction, or
    the labels a review reopened it with; a gold crop: its expert labels, which are also what it
    fuses to). Stitching the fused crops gives the same result when nobody edited anything, so
    comparing the two counts the crowd's edits and the seams the crowd made disagree."""
    plan = [CropWindow(c.y0, c.x0, c.y1, c.x1) for c in crops]
    starts = [labels_io.get_labels(store, c.fused_key if c.is_gold else c.key) for c in crops]
    return stitch_crops(plan, starts, shape)


def feature_planes(project: Project) -> list[int]:
    """Indexes in a (2,H,W) label stack of the features the project annotates."""
    return [FEATURES.index(f) for f in project.features]


def changed_cells(before: np.ndarray, after: np.ndarray, keep_iou: float = 0.95) -> int:
    """How many cells an edit changed between two (H,W) label images.

    A cell of ``after`` counts when no cell of ``before`` matches it with IoU ≥ ``keep_iou``
    (drawn, redrawn, split or merged); a cell of ``before`` counts when nothing in ``after``
    overlaps it with IoU ≥ 0.5 (deleted, or absorbed into a merge).
    """
    best_before, best_after = contingency(before, after).best_iou()
    return int((best_after < keep_iou).sum() + (best_before < 0.5).sum())


def stitch_image(session: Session, store: BlobStore, image_id: int, round_id: int) -> Stitch | None:
    """Stitch the fused crops of an image (None while some crop is not fused).

    Stores the stitched labels, and beside the conflict map the stitch of what the crowd started
    from (:func:`start_labels`); the figures count the crowd's work only: ``n_changed_cells``
    against that start, over the project's features, and ``n_conflict_pixels`` (and the stored
    conflict map) only where the start's own seams agreed — a gold crop's expert labels meeting the
    prediction at its border are no crowd conflict. Then it puts the image in review. A rejected image that comes back is
    re-stitched into the same Stitch row: the new stitch becomes its next review revision, under
    keys of its own (the earlier revisions keep their labels). A stitch in review or approved is
    returned as it is: a repeated job neither rewrites what the reviewer sees nor takes an
    approved image back into review. Of concurrent re-stitches one claims the revision (a
    conditional update); they write the same labels under the same keys.
    """
    image, rnd, project = _load(session, image_id, round_id)
    crops = image_crops(session, image.id, rnd.id)
    if not crops or any(c.status != "fused" for c in crops):
        return None
    stitch = session.scalar(select(Stitch).where(Stitch.image_id == image.id, Stitch.round_id == rnd.id))
    if stitch is not None and stitch.status != "rejected":
        return stitch
    plan = [CropWindow(c.y0, c.x0, c.y1, c.x1) for c in crops]
    label_crops = [labels_io.get_labels(store, c.fused_key) for c in crops]
    result = stitch_crops(plan, label_crops, (image.height, image.width))
    start = start_labels(store, crops, (image.height, image.width))
    conflicts = np.asarray(result.conflicts, dtype=bool) & ~start.conflicts
    revision = 0 if stitch is None else stitch.revision + 1
    labels_key, conflicts_key = labels_io.stitch_keys(image.id, rnd.number, revision)
    labels_io.put_labels(store, labels_key, result.labels)
    store.put_arrays(conflicts_key, conflicts=conflicts, start=start.labels)
    if stitch is None:
        stitch = Stitch(image_id=image.id, round_id=rnd.id, key=labels_key, conflicts_key=conflicts_key)
        session.add(stitch)
    else:
        # back from the crowd: the new stitch becomes the newest review revision
        claimed = session.execute(
            update(Stitch)
            .where(Stitch.id == stitch.id, Stitch.status == "rejected", Stitch.revision == revision - 1)
            .values(status="in_review", revision=revision, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
        session.refresh(stitch)
        if claimed != 1:
            return stitch  # a concurrent run of this job re-stitched it
        session.add(LabelRevision(stitch_id=stitch.id, number=revision, key=labels_key, author="stitch"))
    stitch.key, stitch.conflicts_key = labels_key, conflicts_key
    planes = feature_planes(project)
    stitch.n_cells = int(len(np.unique(result.labels[planes[0]])) - (result.labels[planes[0]] == 0).any())
    stitch.n_conflict_pixels = int(np.count_nonzero(conflicts[planes]))
    stitch.n_changed_cells = sum(changed_cells(start.labels[f], result.labels[f]) for f in planes)
    stitch.status = "in_review"
    image.status = "in_review"
    image.labels_key = labels_key
    session.flush()
    return stitch
