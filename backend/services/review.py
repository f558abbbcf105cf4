"""Expert review of stitched images: queue, edits with optimistic concurrency, approve, reject.

A rejection sends the chosen crops back to the crowd with the reason (their generation is
bumped, so new annotators work on them and old submissions no longer count); once they are fused
again the image is re-stitched and returns to the queue by itself — nobody reassigns by hand.
"""

from __future__ import annotations

import secrets
import time

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.core.metrics import contingency
from backend.errors import ConflictError, NotFoundError, UserError
from backend.models import Crop, Image, LabelRevision, Review, Round, Stitch, User, utcnow
from backend.services import labels_io
from backend.services.rounds import close_round_if_done
from backend.storage import BlobStore


def get_stitch(session: Session, stitch_id: int) -> Stitch:
    stitch = session.get(Stitch, stitch_id)
    if stitch is None:
        raise NotFoundError(f"no stitched image with id {stitch_id}")
    return stitch


def review_queue(session: Session, project_id: int | None = None) -> list[dict]:
    """Stitched images waiting for review, oldest first, with what needs the expert's eye."""
    query = (
        select(Stitch, Image)
        .join(Image, Image.id == Stitch.image_id)
        .where(Stitch.status == "in_review")
        .order_by(Stitch.updated_at, Stitch.id)
    )
    if project_id is not None:
        query = query.where(Image.project_id == project_id)
    return [
        {
            "stitch_id": st.id, "image_id": im.id, "image_name": im.name, "project_id": im.project_id,
            "height": im.height, "width": im.width, "n_cells": st.n_cells,
            "n_conflict_pixels": st.n_conflict_pixels, "n_changed_cells": st.n_changed_cells,
            "revision": st.revision, "waiting_since": st.updated_at.isoformat() + "Z",
        }
        for st, im in session.execute(query)
    ]


def current_review_labels(session: Session, store: BlobStore, stitch: Stitch) -> tuple[np.ndarray, int]:
    """The newest reviewed labels (or the stitch itself) and the revision number."""
    if stitch.revision:
        rev = session.scalar(
            select(LabelRevision).where(LabelRevision.stitch_id == stitch.id, LabelRevision.number == stitch.revision)
        )
        if rev is not None:
            return labels_io.get_labels(store, rev.key), stitch.revision
    return labels_io.get_labels(store, stitch.key), stitch.revision


def save_review_revision(session: Session, store: BlobStore, stitch: Stitch, labels: np.ndarray, base: int,
                         author: str, zlib_stream: bytes | None = None) -> LabelRevision:
    """Save a reviewer's labels on top of revision ``base``; a stale base (another reviewer saved
    first) is a 409 and changes nothing. ``zlib_stream``: the labels in the wire format, stored
    as is (:func:`labels_io.put_labels`).

    Of concurrent saves on one base exactly one wins. Each writes its labels first, under a key of
    its own (:func:`labels_io.review_revision_key`), then claims the revision with a conditional
    update of the stitch; only the winner adds the revision's row, and a loser deletes only its
    own blob. A process killed between the two leaves an orphan blob and no row
    (:func:`sweep_orphan_review_blobs` removes it), never a row without its labels.
    """
    image = session.get(Image, stitch.image_id)
    if labels.shape != (2, image.height, image.width):
        raise UserError(f"labels must have shape (2, {image.height}, {image.width}), got {labels.shape}")
    if stitch.status != "in_review":
        raise ConflictError(f"this image is {stitch.status}, not in review")
    previous, current = current_review_labels(session, store, stitch)
    if base != current:
        raise ConflictError(f"revision {base} is stale: another reviewer saved revision {current}; reload")
    number = current + 1
    changed_pixels = int(np.count_nonzero(previous != labels))
    key = labels_io.review_revision_key(stitch.id, number, time.time(), secrets.token_hex(8))
    labels_io.put_labels(store, key, labels, zlib_stream)
    try:
        _claim(session, stitch, base, revision=number)
        rev = LabelRevision(stitch_id=stitch.id, number=number, key=key, author=author,
                            changed_pixels=changed_pixels)
        session.add(rev)
        session.flush()
    except IntegrityError:  # a concurrent save added revision `number` first
        session.rollback()
        store.delete(key)
        raise ConflictError(f"revision {base} is stale: another reviewer saved first; reload") from None
    except BaseException:
        store.delete(key)  # this save failed: its row is rolled back with the session
        raise
    return rev


def _claim(session: Session, stitch: Stitch, revision_seen: int, **values) -> None:
    """Change the stitch only while it is still in review at ``revision_seen`` (a conditional
    update: of concurrent requests that saw the same state one changes it); a 409 otherwise.

    ``values``: the columns to set (``revision=``, ``status=``).
    """
    claimed = session.execute(
        update(Stitch)
        .where(Stitch.id == stitch.id, Stitch.revision == revision_seen, Stitch.status == "in_review")
        .values(updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        raise ConflictError(f"revision {revision_seen} is stale or the image left review: another reviewer "
                            "changed it first; reload")
    session.refresh(stitch)


def sweep_orphan_review_blobs(session: Session, store: BlobStore, older_than_s: float = 3600.0,
                              now: float | None = None) -> int:
    """Delete review labels that no revision row names, once they are ``older_than_s`` old.

    A save whose process died (or whose transaction failed to commit) between writing its
    labels and committing its row leaves such a blob (:func:`save_review_revision`); a younger
    one may belong to a save in progress. Keys without a write time (written before keys were
    unique) are left alone. ``now``: unix seconds (default: the clock). Returns how many were
    deleted.
    """
    cutoff = (time.time() if now is None else now) - older_than_s
    old = [key for key in store.list("reviews/")
           if (written_at := labels_io.review_blob_written_at(key)) is not None and written_at < cutoff]
    removed = 0
    for start in range(0, len(old), 500):
        batch = old[start:start + 500]
        named = set(session.scalars(select(LabelRevision.key).where(LabelRevision.key.in_(batch))))
        for key in batch:
            if key not in named:
                store.delete(key)
                removed += 1
    return removed


def changed_mask(store: BlobStore, stitch: Stitch, round_number: int, image_id: int, labels: np.ndarray,
                 feature: int = 0) -> np.ndarray:
    """(H,W) bool: pixels of the cells of ``labels[feature]`` changed against what the crowd started
    from (stored with the conflict map by ``stitching.stitch_image``: the prediction, a gold crop's
    expert labels); against the round's prediction for a stitch stored before that was kept."""
    stored = store.get_arrays(stitch.conflicts_key)
    if "start" in stored:
        before = stored["start"][feature]
    else:
        before = labels_io.get_labels(store, labels_io.prediction_key(image_id, round_number))[feature]
    current = labels[feature]
    cont = contingency(before, current)
    changed_ids = cont.pred_ids[cont.best_iou()[1] < 0.95]
    return np.isin(current, changed_ids)


def approve(session: Session, store: BlobStore, stitch: Stitch, reviewer: User | None, base: int | None = None) -> Review:
    """Accept the image's current labels as ground truth for training.

    The stitch is claimed first (a conditional update at the revision read), so of concurrent
    approvals, rejections and saves one wins and only it writes the approved labels.
    """
    if stitch.status != "in_review":
        raise ConflictError(f"this image is {stitch.status}, not in review")
    labels, revision = current_review_labels(session, store, stitch)
    if base is not None and base != revision:
        raise ConflictError(f"you reviewed revision {base}, but revision {revision} was saved since; reload")
    _claim(session, stitch, revision, status="approved")
    image = session.get(Image, stitch.image_id)
    rnd = session.get(Round, stitch.round_id)
    key = f"images/{image.id}/approved_r{rnd.number}.npz"
    labels_io.put_labels(store, key, labels)
    image.labels_key, image.status = key, "approved"
    review = Review(stitch_id=stitch.id, reviewer_id=reviewer.id if reviewer else None, decision="approved",
                    reason="", crop_ids=[])
    session.add(review)
    session.flush()
    close_round_if_done(session, rnd)
    return review


def reject(session: Session, store: BlobStore, stitch: Stitch, reviewer: User | None, reason: str,
           crop_ids: list[int]) -> Review:
    """Send the chosen crops back to the crowd with ``reason``; the image returns when re-stitched.

    The next annotators start from the image's current labels in each crop (the consensus plus
    the reviewer's fixes so far), not from the model's prediction. The stitch is claimed (a
    conditional update at the revision read) before any crop is rewritten, so of concurrent
    rejections, approvals and saves one wins.
    """
    if stitch.status != "in_review":
        raise ConflictError(f"this image is {stitch.status}, not in review")
    if reason is not None and not isinstance(reason, str):
        raise UserError("the reason must be text", field="reason")
    reason = (reason or "").strip()
    if not reason:
        raise UserError("say why the image is rejected: the reason is shown to the next annotators", field="reason")
    if len(reason) > 2000:
        raise UserError("the reason must be at most 2000 characters", field="reason")
    if not isinstance(crop_ids, list) or not crop_ids or not all(
            isinstance(c, int) and not isinstance(c, bool) for c in crop_ids):
        raise UserError("select the crops that need another pass (crop_ids)", field="crop_ids")
    crops = {c.id: c for c in session.scalars(
        select(Crop).where(Crop.image_id == stitch.image_id, Crop.round_id == stitch.round_id))}
    unknown = [c for c in crop_ids if c not in crops]
    if unknown:
        raise UserError(f"crop(s) {unknown} do not belong to this image", field="crop_ids")
    gold = [c for c in crop_ids if crops[c].is_gold]
    if gold:
        raise UserError(f"crop(s) {gold} are gold crops with expert labels; fix them here instead", field="crop_ids")
    current, revision = current_review_labels(session, store, stitch)
    _claim(session, stitch, revision, status="rejected")
    for crop_id in sorted(set(crop_ids)):
        crop = crops[crop_id]
        arrays = store.get_arrays(crop.key)
        arrays["labels"] = current[:, crop.y0:crop.y1, crop.x0:crop.x1]
        crop.generation += 1
        # a new key per generation: earlier submissions keep the start they were made from
        crop.key = labels_io.crop_key(crop.id, crop.generation)
        store.put_arrays(crop.key, **arrays)
        crop.status, crop.fused_key, crop.reopen_reason = "open", None, reason
    image = session.get(Image, stitch.image_id)
    image.status = "in_crowd"
    review = Review(stitch_id=stitch.id, reviewer_id=reviewer.id if reviewer else None, decision="rejected",
                    reason=reason, crop_ids=sorted(set(crop_ids)))
    session.add(review)
    session.flush()
    return review
