"""Predict labels for an image with a model version, or the classical baseline before any."""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from backend.models import ModelVersion
from backend.storage import BlobStore

log = logging.getLogger(__name__)
_cache: dict[str, object] = {}
_cache_lock = threading.Lock()


def load_model_copy(store: BlobStore, key: str):
    """A fresh, uncached copy of a stored ``.keras`` model (for fine-tuning: never the served one)."""
    import keras

    import worker.model.panoptic  # noqa: F401  (registers the custom layers)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        path.write_bytes(store.get_bytes(key))
        return keras.saving.load_model(path, compile=False)


def load_model(store: BlobStore, key: str):
    """Load a ``.keras`` model from the store, once per process (the gpu worker keeps TF loaded).

    The cached object is for prediction only; training must use :func:`load_model_copy`.
    """
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        model = load_model_copy(store, key)
        _cache.clear()  # one model at a time: versions change per round
        _cache[key] = model
        return model


def predict_labels_for(
    session: Session, store: BlobStore, raw: np.ndarray, model_version_id: int | None
) -> tuple[np.ndarray, str]:
    """(2,H,W) int32 labels for a raw (C,H,W) image, and what produced them.

    With no model version the classical baseline segments the image (round 0).
    """
    if model_version_id is not None:
        version = session.get(ModelVersion, model_version_id)
        if version is not None and version.key:
            from worker.model.infer import predict_labels

            model = load_model(store, version.key)
            labels = predict_labels(model, raw.astype(np.float32))
            return labels.astype(np.int32), f"model v{version.version}"
    from worker.model.baseline import segment_baseline

    return segment_baseline(raw).astype(np.int32), "baseline"
