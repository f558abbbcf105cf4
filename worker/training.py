"""Train and evaluate model versions on DatasetVersions (the gpu queue's work).

TensorFlow/Keras load lazily inside these functions, so importing this module is cheap.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from backend.core.metrics import aggregate, object_metrics
from backend.models import DatasetVersion, ModelVersion
from backend.services import datasets, registry

log = logging.getLogger(__name__)
FEATURE_NAMES = ("whole_cell", "nuclear")
# ResNet50 follows the paper (Adam 1e-4, whole 256² tiles); the small CPU backbone learns within a CPU
# budget only with a larger step and 128² crops (measured by bench/model.py and bench/simulate.py).
TRAIN_HYPERPARAMETERS = {"resnet50": {"lr": 1e-4}, "small": {"lr": 1e-3, "crop_size": 128}}


def evaluate_predictions(predict: Callable[[np.ndarray], np.ndarray], X: np.ndarray, y: np.ndarray) -> dict:
    """Object metrics of ``predict`` over a split.

    Parameters
    ----------
    predict : callable
        (C,H,W) float32 image → (2,H,W) int32 labels.
    X : np.ndarray
        (N,H,W,C) float32 images.
    y : np.ndarray
        (N,H,W,2) int32 true labels (whole-cell, nuclear).

    Returns
    -------
    dict
        ``f1`` (whole-cell, the headline figure as in Mesmer), ``nuclear_f1``, and per feature the
        pooled :class:`~backend.core.metrics.ObjectMetrics` as a dict; ``n_images``.
    """
    per_feature: dict[str, list] = {f: [] for f in FEATURE_NAMES}
    for i in range(X.shape[0]):
        labels = predict(np.moveaxis(X[i], -1, 0))
        for f, name in enumerate(FEATURE_NAMES):
            per_feature[name].append(object_metrics(y[i, ..., f], labels[f]))
    pooled = {name: aggregate(results) for name, results in per_feature.items() if results}
    out = {name: m.as_dict() for name, m in pooled.items()}
    out["f1"] = float(pooled["whole_cell"].f1) if "whole_cell" in pooled else None
    out["nuclear_f1"] = float(pooled["nuclear"].f1) if "nuclear" in pooled else None
    out["n_images"] = int(X.shape[0])
    return out


def json_safe(value):
    """Numbers (numpy included) as floats/ints, containers recursively, for a JSON column."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, str, type(None), int)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def baseline_predict(image: np.ndarray) -> np.ndarray:
    from worker.model.baseline import segment_baseline

    return segment_baseline(image).astype(np.int32)


def model_predict(model) -> Callable[[np.ndarray], np.ndarray]:
    from worker.model.infer import predict_labels

    return lambda image: predict_labels(model, image).astype(np.int32)


def save_model_bytes(model) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return path.read_bytes()


def train_version(ctx, project_id: int, dataset_id: int, steps: int, backbone: str, reason: str = "") -> dict:
    """Fine-tune from the promoted version (or train from scratch), evaluate, store, maybe promote.

    On any failure the new version is marked ``failed`` with the error and the promoted version
    keeps serving.
    """
    from worker.model.train import train_model
    from worker.predict import load_model, load_model_copy

    db, store = ctx.db, ctx.store
    with db.session() as s:
        ds = s.get(DatasetVersion, dataset_id)
        parent = registry.promoted(s, project_id)
        mv = registry.new_model_version(
            s, project_id, dataset_id, backbone,
            {"steps": steps, "batch_size": 8, **TRAIN_HYPERPARAMETERS[backbone], "reason": reason,
             "fine_tuned_from": parent.version if parent else None},
        )
        mv_id, parent_key, parent_backbone = mv.id, (parent.key if parent else None), (parent.backbone if parent else None)
        X_train, y_train = datasets.load_split(store, ds, "train")
        X_val, y_val = datasets.load_split(store, ds, "val")
        X_test, y_test = datasets.load_split(store, ds, "test")
    try:
        if X_train.shape[0] == 0:
            raise ValueError("the dataset's training split is empty")
        if X_val.shape[0] == 0:  # tiny projects: validate on the training tiles rather than not at all
            X_val, y_val = X_train, y_train
        X_eval, y_eval = (X_test, y_test) if X_test.shape[0] else (X_val, y_val)
        initial = None
        if parent_key and parent_backbone == backbone:
            # the reference is measured BEFORE training, and training gets its own copy of the weights
            reference = evaluate_predictions(model_predict(load_model(store, parent_key)), X_eval, y_eval)
            metrics_reference = {"source": "promoted", "f1": reference["f1"], "nuclear_f1": reference["nuclear_f1"]}
            initial = load_model_copy(store, parent_key)
        else:
            reference = evaluate_predictions(baseline_predict, X_eval, y_eval)
            metrics_reference = {"source": "baseline", "f1": reference["f1"], "nuclear_f1": reference["nuclear_f1"]}
        start = time.perf_counter()
        n_channels = int(X_train.shape[-1])

        def on_epoch(epoch: int, n_epochs: int, logs: dict) -> None:
            loss, val = logs.get("loss"), logs.get("val_loss")
            ctx.progress(0.05 + 0.75 * (epoch + 1) / max(n_epochs, 1),
                         f"epoch {epoch + 1}/{n_epochs}: loss {loss:.4f}, val_loss {val:.4f}" if loss is not None and val is not None
                         else f"epoch {epoch + 1}/{n_epochs}")

        model, history = train_model(initial, X_train, y_train, X_val, y_val, n_channels=n_channels,
                                     backbone=backbone, steps=steps, on_epoch=on_epoch, **TRAIN_HYPERPARAMETERS[backbone])
        train_s = time.perf_counter() - start
        ctx.progress(0.85, "evaluating on the test split")
        metrics = evaluate_predictions(model_predict(model), X_eval, y_eval)
        metrics["reference"] = metrics_reference
        metrics["evaluated_on"] = "test" if X_test.shape[0] else "val"
        metrics["train_seconds"] = round(train_s, 1)
        metrics["history"] = json_safe(history or {})
        key = f"models/{mv_id}/model.keras"
        store.put_bytes(key, save_model_bytes(model))
    except Exception as exc:
        with db.session() as s:
            mv = s.get(ModelVersion, mv_id)
            mv.status, mv.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
        raise
    with db.session() as s:
        mv = s.get(ModelVersion, mv_id)
        mv.key, mv.metrics, mv.status = key, metrics, "ready"
        promoted_now = registry.apply_promotion_rule(s, mv)
    return {"model_version_id": mv_id, "f1": metrics["f1"], "reference_f1": metrics["reference"]["f1"],
            "promoted": promoted_now}


def evaluate_version(ctx, model_version_id: int, dataset_id: int | None = None) -> dict:
    """Re-evaluate a stored version on a dataset's test split (default: its own dataset)."""
    from worker.predict import load_model

    with ctx.db.session() as s:
        mv = s.get(ModelVersion, model_version_id)
        ds = s.get(DatasetVersion, dataset_id or mv.dataset_id)
        key = mv.key
        X, y = datasets.load_split(ctx.store, ds, "test")
    metrics = evaluate_predictions(model_predict(load_model(ctx.store, key)), X, y)
    with ctx.db.session() as s:
        mv = s.get(ModelVersion, model_version_id)
        mv.metrics = {**(mv.metrics or {}), "evaluations": {**(mv.metrics or {}).get("evaluations", {}),
                                                            str(ds.id): {"f1": metrics["f1"], "nuclear_f1": metrics["nuclear_f1"]}}}
    return {"f1": metrics["f1"], "nuclear_f1": metrics["nuclear_f1"]}
