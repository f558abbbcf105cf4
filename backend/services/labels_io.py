"""Where label arrays live in the store, and how they are read back (one place for the keys)."""

from __future__ import annotations

import numpy as np

from backend.storage import BlobStore


def prediction_key(image_id: int, round_number: int) -> str:
    return f"labels/{image_id}/r{round_number}.npz"


def crop_key(crop_id: int, generation: int = 0) -> str:
    """The crop's channels and starting labels for one generation (a review reject starts a new one)."""
    return f"crops/{crop_id}.npz" if generation == 0 else f"crops/{crop_id}.g{generation}.npz"


def fused_key(crop_id: int, generation: int) -> str:
    return f"fused/{crop_id}/g{generation}.npz"


def revision_key(assignment_id: int, number: int) -> str:
    return f"revisions/{assignment_id}/{number}.npz"


def stitch_keys(image_id: int, round_number: int, revision: int = 0) -> tuple[str, str]:
    """The stitched labels and conflict map of an image in a round: the first stitch
    (``revision`` 0), or a re-stitch after a rejection, which becomes review revision
    ``revision`` and must not overwrite what earlier revisions name."""
    base = f"stitches/{image_id}/r{round_number}" + (f"/v{revision}" if revision else "")
    return f"{base}/labels.npz", f"{base}/conflicts.npz"


def review_revision_key(stitch_id: int, number: int, written_at: float, token: str) -> str:
    """Where one save of a reviewer's labels goes: ``reviews/<stitch>/<n>.<unix s>.<token>.npz``.

    Unique per save (``token``: random hex), so concurrent saves of revision ``n`` never write or
    delete each other's labels; ``written_at`` (unix seconds) tells the sweep of orphans
    (:func:`review_blob_written_at`) how old a blob is without asking the store.
    """
    if not token.isalnum() or not token.isascii():
        raise ValueError(f"token must be ASCII letters and digits, got {token!r}")
    return f"reviews/{stitch_id}/{number}.{int(written_at)}.{token}.npz"


def review_blob_written_at(key: str) -> int | None:
    """The unix second a :func:`review_revision_key` key was written, or None for other keys
    (e.g. ``reviews/<stitch>/<n>.npz`` written before keys were unique)."""
    parts = key.rsplit("/", 1)[-1].split(".")
    if not key.startswith("reviews/") or len(parts) != 4 or parts[3] != "npz":
        return None
    number, written_at, _token, _ext = parts
    if not (number.isascii() and number.isdigit() and written_at.isascii() and written_at.isdigit()):
        return None
    return int(written_at)


def put_labels(store: BlobStore, key: str, labels: np.ndarray, zlib_stream: bytes | None = None) -> None:
    """Store an (F,H,W) label stack as ``whole_cell`` / ``nuclear`` int32 arrays.

    ``zlib_stream``: the stack's raw little-endian int32 bytes as one complete zlib stream (the
    wire format of an upload, already checked to inflate to ``labels``); stored as is, as one
    ``labels`` array, instead of compressing the labels again.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3 or labels.shape[0] != 2:
        raise ValueError(f"labels must be (2,H,W), got {labels.shape}")
    if zlib_stream is not None:
        store.put_deflated_array(key, "labels", np.ascontiguousarray(labels, dtype="<i4"), zlib_stream)
        return
    store.put_arrays(key, whole_cell=labels[0].astype(np.int32), nuclear=labels[1].astype(np.int32))


def get_labels(store: BlobStore, key: str) -> np.ndarray:
    """Read an (2,H,W) int32 label stack written by :func:`put_labels` (or a ``labels`` array)."""
    arrays = store.get_arrays(key)
    if "labels" in arrays:
        return arrays["labels"].astype(np.int32, copy=False)
    return np.stack([arrays["whole_cell"], arrays["nuclear"]]).astype(np.int32, copy=False)
