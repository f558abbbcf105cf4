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
from backend.models import DatasetVersion, ModelVersion, Project
from backend.services import datasets, registry

log = logging.getLogger(__name__)
FEATURE_NAMES = ("whole_cell", "nuclear")
# ResNet50 follows the paper (Adam 1e-4, whole 256² tiles); the small CPU backbone learns within a CPU
# budget only with a larger step and 128² crops (measured by bench/model.py and bench/simulate.py).
# Fine-tuning the generalist or a promoted version takes a smaller step than training from scratch.
TRAIN_HYPERPARAMETERS = {"resnet50": {"lr": 1e-4}, "small": {"lr": 1e-3, "crop_size": 128}}
FINE_TUNE_LR = {"resnet50": 5e-5, "small": 3e-4}
AUGMENTATION = {"scale_range": (0.8, 1.25), "intensity_jitter": True}
CALIBRATION_BUDGET_S = 180.0
#: A fine-tune searches its own zoom and post-processing only when its validation split holds at
#: least this many labelled cells; below, it keeps its starting model's, which were chosen on more
#: images. On one 512² image (~800 cells) the search over ~250 settings can pick noise: of three
#: trial fine-tunes of the generalist on four synthetic images, one lost 0.03 held-out F1 against
#: the inherited settings, two gained at most 0.004.
CALIBRATION_MIN_CELLS = 2000
#: Which weights a training keeps (see ``train_model(keep=...)``). A fine-tune keeps the mean of
#: its weights over the second half of its epochs (stochastic weight averaging, Izmailov et al.
#: 2018): with batch normalisation frozen and a small constant step, that fixed schedule is the
#: regulariser, while the validation loss of a project's one or two images picks noise (on six
#: held-out synthetic 512² images a fine-tune of the generalist scored F1 0.9275 with the weights of
#: its lowest validation loss, 0.9411 with its last). The last weights alone made fine-tunes of a
#: fine-tune erratic: in one trial chain, the generalist fine-tuned on 4 synthetic images (300
#: steps), then on 8 (600 steps), scored 0.9525 then **0.9231** on five held-out images (0.9191
#: for the generalist; the drop is the weights, not the inherited post-processing: searched on
#: those five images it stays 0.9107); with the weight average 0.9505 then 0.9559. Training from
#: scratch keeps the weights of the lowest validation loss.
KEEP_WEIGHTS = {"fine_tune": "average", "scratch": "best"}


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
        ``f1`` (whole-cell, as in Mesmer), ``nuclear_f1``, ``pq`` and ``nuclear_pq`` (panoptic
        quality), and per feature the
        pooled :class:`~backend.core.metrics.ObjectMetrics` as a dict; ``n_images``.
    """
    per_feature: dict[str, list] = {f: [] for f in FEATURE_NAMES}
    for i in range(X.shape[0]):
        labels = predict(np.moveaxis(X[i], -1, 0))
        for f, name in enumerate(FEATURE_NAMES):
            per_feature[name].append(object_metrics(y[i, ..., f], labels[f]))
    pooled = {name: aggregate(results) for name, results in per_feature.items() if results}
    out = {name: m.as_dict() for name, m in pooled.items()}
    for name, key in (("whole_cell", ""), ("nuclear", "nuclear_")):
        has_truth = any(r.n_true for r in per_feature[name])
        out[f"{key}f1"] = float(pooled[name].f1) if name in pooled and has_truth else None
        out[f"{key}pq"] = float(pooled[name].pq) if name in pooled and has_truth else None
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


def save_model_bytes(model) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return path.read_bytes()


def model_inputs(X: np.ndarray) -> np.ndarray:
    """(N, H, W, C) dataset images → (N, H, W, 2) (nuclear, membrane) model inputs."""
    from worker.predict import model_input

    return np.stack([np.moveaxis(model_input(np.moveaxis(x, -1, 0), 2), 0, -1) for x in X]) \
        if X.shape[0] else np.zeros(X.shape[:3] + (2,), np.float32)


def to_scale(X: np.ndarray, y: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Resample a split's images (linear) and labels (nearest) by ``factor``."""
    from worker.model.scale import resample_image, resample_labels

    if factor == 1.0 or X.shape[0] == 0:
        return X, y
    Xs = np.stack([np.moveaxis(resample_image(np.moveaxis(x, -1, 0), factor), 0, -1) for x in X])
    ys = np.moveaxis(resample_labels(np.moveaxis(y, -1, 1), Xs.shape[1:3]), 1, -1)
    return Xs.astype(np.float32), np.ascontiguousarray(ys, dtype=np.int32)


def dataset_scale_factor(y: np.ndarray, scale: dict, mpp: float | None) -> float:
    """Zoom that brings a dataset to ``scale``: from pixel sizes, else its true nuclei."""
    from worker.model.scale import median_diameter, scale_factor

    diameter = median_diameter(y[..., 1]) if y.shape[0] else None
    if diameter is None and y.shape[0]:  # no nuclei labelled: size the whole cells
        cells = median_diameter(y[..., 0])
        diameter = 0.55 * cells if cells else None  # a typical nucleus-to-cell ratio
    return scale_factor(scale, image_mpp=mpp, nucleus_diameter=diameter)


def headline(metrics: dict, features: list[str]) -> float | None:
    """The figure a version is judged by: the mean object F1 (IoU 0.5) over the project's features.

    Not panoptic quality: the held-out labels a version is judged on are approved labels, and the
    cells no annotator touched keep the outline of the predictor that drew them, so the matched
    IoU in panoptic quality credits that predictor for being the labels' source rather than for
    being right (in bench/simulate.py, PQ on the approved test images picked the version the
    truth ranked lower twice in four rounds, F1 once). Whether a cell is found whole, once and
    only once does not depend on whose outline the annotator started from. Panoptic quality is
    still measured and shown."""
    values = [metrics[key] for feature, key in (("whole_cell", "f1"), ("nuclear", "nuclear_f1"))
              if feature in features and metrics.get(key) is not None]
    return round(float(np.mean(values)), 4) if values else None


def judged_images(X: np.ndarray, y: np.ndarray, owners: list[int], drawn: dict[int, str],
                  references: set[str], truth: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """The held-out tiles a candidate and its references are compared on: a predictor is not
    judged on the labels it drew.

    An approved image starts from the labels of the predictor of its round, and every cell no
    annotator redrew keeps that predictor's outline; on cells a few pixels across (nuclei ~10 px)
    a different but equally right outline falls under IoU 0.5 against it. In bench/simulate.py
    on a generator the generalist never saw, a fine-tune of v1 matched v1's nuclear F1 on the
    truth (0.985) and beat its whole-cell F1 (0.955 against 0.895), yet scored a nuclear F1 of
    0.949 against v1's 0.981 on approved images v1 had drawn, and was not promoted. So images
    drawn by one of the references are left out, unless that leaves nothing (a young project
    whose every image one reference drew). Tiles whose labels are the lab's uploaded ground truth
    (``truth``, (N,) bool) were drawn by no predictor and are always kept.

    ``owners`` gives the image of each tile (empty: unknown, every tile kept); returns the tiles
    kept and ``{"images", "left_out", "ground_truth"}`` (image ids; left out: image id → who drew
    it; the kept images judged on their ground truth).
    """
    truth = np.zeros(X.shape[0], dtype=bool) if truth is None else np.asarray(truth, dtype=bool)
    on_truth = sorted({i for i, t in zip(owners, truth) if t})
    if len(owners) != X.shape[0]:
        return X, y, {"images": sorted(set(owners)), "left_out": {}, "ground_truth": on_truth}
    fair = np.array([t or drawn.get(i) not in references for i, t in zip(owners, truth)], dtype=bool)
    kept = fair if fair.any() else np.ones_like(fair)
    left_out = {str(i): drawn[i] for i, k in zip(owners, kept) if not k}
    return X[kept], y[kept], {"images": sorted({i for i, k in zip(owners, kept) if k}), "left_out": left_out,
                              "ground_truth": on_truth}


def reference_candidates(session, store, project_id: int) -> list:
    """The predictors the next round would otherwise use: the promoted version, else the
    generalist and the baseline (round 0 picks the better of the two)."""
    from worker.predict import BASELINE, generalist_predictor, version_predictor

    parent = registry.promoted(session, project_id)
    if parent is not None and parent.key:
        return [version_predictor(parent, store)]
    out = [BASELINE]
    try:
        out.insert(0, generalist_predictor())
    except FileNotFoundError:
        pass
    return out


def starting_point(session, store, project_id: int, backbone: str):
    """(initial model copy or None, its scale, its post-processing, where it comes from) for a
    fine-tune."""
    from worker.predict import generalist_predictor, version_predictor

    parent = registry.promoted(session, project_id)
    if parent is not None and parent.key and parent.backbone == backbone:
        p = version_predictor(parent, store, fresh=True)
        return p.model, dict(p.scale), dict(p.postprocess), f"model v{parent.version}"
    if backbone == "small":
        try:
            p = generalist_predictor(fresh=True)
            return p.model, dict(p.scale), dict(p.postprocess), "generalist"
        except FileNotFoundError:
            pass
    return None, {}, {}, "scratch"


def train_version(ctx, project_id: int, dataset_id: int, steps: int, backbone: str, reason: str = "") -> dict:
    """Fine-tune from the current predictor, calibrate, evaluate against what it would replace.

    Starts from the promoted version, else the shipped generalist (else random weights), on all
    approved images so far (the dataset version), brought to the starting model's scale, and
    keeps the weights :data:`KEEP_WEIGHTS` says (a fine-tune: the mean of its second half's
    weights). The
    zoom and post-processing are calibrated on the validation split when it holds at least
    :data:`CALIBRATION_MIN_CELLS` cells (else the starting model's are kept) and stored with the
    version; the candidate and the predictor the next round would otherwise use are both
    measured through :func:`worker.predict.predict_image` on the same held-out images (the test
    split, and the validation split too when nothing was chosen on it; judged by the lab's uploaded
    ground truth where an image has it, else by its approved labels, leaving out those a compared
    predictor drew, see :func:`judged_images`), and the promotion rule compares them. On any
    failure the new version is marked ``failed`` and the promoted one keeps serving.
    """
    from worker.model.calibrate import calibrate_scale
    from worker.model.train import train_model
    from worker.predict import Predictor, predict_image

    db, store = ctx.db, ctx.store
    with db.session() as s:
        project = s.get(Project, project_id)
        features = list(project.features or ["whole_cell", "nuclear"])
        mpp = project.pixel_size_um
        ds = s.get(DatasetVersion, dataset_id)
        initial, scale, inherited_postprocess, source = starting_point(s, store, project_id, backbone)
        references = reference_candidates(s, store, project_id)
        lr = FINE_TUNE_LR[backbone] if initial is not None else TRAIN_HYPERPARAMETERS[backbone]["lr"]
        hyper = {**TRAIN_HYPERPARAMETERS[backbone], "lr": lr}
        kind = "fine_tune" if initial is not None else "scratch"
        keep = KEEP_WEIGHTS[kind]
        mv = registry.new_model_version(
            s, project_id, dataset_id, backbone,
            {"steps": steps, "batch_size": 8, **hyper, "keep": keep, "reason": reason,
             "fine_tuned_from": source},
        )
        mv_id = mv.id
        X_train, y_train = datasets.load_split(store, ds, "train")
        X_val, y_val = datasets.load_split(store, ds, "val")
        X_test, _ = datasets.load_split(store, ds, "test")
        judging = {split: datasets.load_judging_labels(store, ds, split) for split in ("val", "test")}
        owners = {split: datasets.tile_images(s, ds, split) for split in ("val", "test")}
        drawn = datasets.drawn_by(s, ds)
    try:
        if X_train.shape[0] == 0:
            raise ValueError("the dataset's training split is empty")
        own_val = X_val.shape[0] > 0
        if not own_val:  # tiny projects: validate on the training tiles rather than not at all
            X_val, y_val = X_train, y_train
        val_cells = sum(int(np.unique(labels).size - (labels.min() == 0)) for labels in y_val[..., 0])
        calibrate = not (initial is not None and inherited_postprocess and val_cells < CALIBRATION_MIN_CELLS)
        # the validation images are held out too when nothing is chosen on them (no best epoch, no
        # calibration): the comparison then rests on more images than the test split alone
        if X_test.shape[0] and own_val and keep != "best" and not calibrate:
            X_eval = np.concatenate([X_test, X_val])
            y_eval, truth = (np.concatenate([judging["test"][k], judging["val"][k]]) for k in (0, 1))
            evaluated_on, eval_owners = "test+val", owners["test"] + owners["val"]
        elif X_test.shape[0]:
            X_eval, (y_eval, truth), evaluated_on, eval_owners = X_test, judging["test"], "test", owners["test"]
        elif own_val:
            X_eval, (y_eval, truth), evaluated_on, eval_owners = X_val, judging["val"], "val", owners["val"]
        else:  # the training tiles stand in for a validation split
            X_eval, y_eval, truth, evaluated_on, eval_owners = X_val, y_val, None, "val", []
        X_eval, y_eval, held_out = judged_images(X_eval, y_eval, eval_owners, drawn, {p.name for p in references},
                                                 truth=truth)
        ctx.progress(0.03, f"measuring the current predictor on the held-out images ({evaluated_on})")
        ref_metrics = {}
        for p in references:
            m = evaluate_predictions(lambda img, p=p: predict_image(p, img, mpp=mpp), X_eval, y_eval)
            ref_metrics[p.name] = {"f1": m["f1"], "nuclear_f1": m["nuclear_f1"], "pq": m["pq"],
                                   "nuclear_pq": m["nuclear_pq"], "headline": headline(m, features)}
        best_ref = max(ref_metrics, key=lambda n: ref_metrics[n]["headline"] or -1.0)
        metrics_reference = {"source": best_ref, **ref_metrics[best_ref], "candidates": ref_metrics}

        # the data are brought to the scale the starting model was TRAINED at (not the zoom it
        # predicts at, else zooms would compound round after round)
        if not scale:  # from scratch: the model trains at the dataset's own scale
            from worker.model.scale import median_diameter

            trained = {"nucleus_diameter": median_diameter(y_train[..., 1]) or None, "mpp": mpp}
            factor = 1.0
        else:
            trained = {"nucleus_diameter": scale.get("trained_nucleus_diameter") or scale.get("nucleus_diameter"),
                       "mpp": scale.get("trained_mpp", scale.get("mpp"))}
            factor = dataset_scale_factor(y_train, trained, mpp)
            trained["mpp"] = (mpp / factor) if mpp else trained["mpp"]
        Xt, yt = to_scale(model_inputs(X_train), y_train, factor)
        Xv, yv = to_scale(model_inputs(X_val), y_val, factor)
        start = time.perf_counter()

        def on_epoch(epoch: int, n_epochs: int, logs: dict) -> None:  # epoch is 1-based
            loss, val = logs.get("loss"), logs.get("val_loss")
            ctx.progress(0.05 + 0.7 * epoch / max(n_epochs, 1),
                         f"epoch {epoch}/{n_epochs}: loss {loss:.4f}, val_loss {val:.4f}"
                         if loss is not None and val is not None else f"epoch {epoch}/{n_epochs}")

        model, history = train_model(initial, Xt, yt, Xv, yv, n_channels=2, backbone=backbone,
                                     steps=steps, on_epoch=on_epoch, keep=keep, **hyper, **AUGMENTATION)
        train_s = time.perf_counter() - start
        if not calibrate:
            ctx.progress(0.78, f"keeping the {source}'s zoom and post-processing "
                               f"({val_cells} validation cells < {CALIBRATION_MIN_CELLS})")
            calibration = {"objective": None, "validation_score": None, "by_zoom": None, "seconds": 0.0,
                           "inherited_from": source, "validation_cells": val_cells}
            postprocess, zoom = inherited_postprocess, float(scale.get("zoom") or 1.0)
        else:
            ctx.progress(0.78, "calibrating the zoom and post-processing on the validation split")
            calibration = calibrate_scale(model, Xv, yv, ("whole_cell", "nuclear"),
                                          time_budget_s=CALIBRATION_BUDGET_S)
            calibration["validation_cells"] = val_cells
            postprocess = {"feature_kwargs": calibration["feature_kwargs"]}
            zoom = calibration["zoom"]
        scale = {"nucleus_diameter": trained["nucleus_diameter"] * zoom if trained["nucleus_diameter"] else None,
                 "mpp": trained["mpp"] / zoom if trained["mpp"] else None,
                 "trained_nucleus_diameter": trained["nucleus_diameter"], "trained_mpp": trained["mpp"],
                 "zoom": zoom}
        ctx.progress(0.88, f"evaluating on the held-out images ({evaluated_on})")
        candidate = Predictor(f"model v{mv_id}", model, postprocess, scale)
        metrics = evaluate_predictions(lambda img: predict_image(candidate, img, mpp=mpp), X_eval, y_eval)
        metrics["headline"] = headline(metrics, features)
        metrics["reference"] = metrics_reference
        metrics["evaluated_on"] = evaluated_on
        metrics["held_out"] = held_out
        metrics["calibration"] = {"objective": calibration["objective"],
                                  "validation_score": calibration["validation_score"], "zoom": zoom,
                                  "by_zoom": calibration["by_zoom"], "seconds": calibration["seconds"],
                                  "validation_cells": val_cells,
                                  "inherited_from": calibration.get("inherited_from")}
        metrics["train_seconds"] = round(train_s, 1)
        metrics["train_scale_factor"] = round(float(factor), 3)
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
        mv.key, mv.metrics, mv.status = key, json_safe(metrics), "ready"
        mv.postprocess, mv.scale = json_safe(postprocess), json_safe(scale)
        promoted_now = registry.apply_promotion_rule(s, mv)
    return {"model_version_id": mv_id, "f1": metrics["f1"], "headline": metrics["headline"],
            "reference_f1": metrics_reference["f1"], "reference_headline": metrics_reference["headline"],
            "reference": best_ref, "promoted": promoted_now}


def evaluate_version(ctx, model_version_id: int, dataset_id: int | None = None) -> dict:
    """Re-evaluate a stored version on a dataset's test split (default: its own dataset), judged
    as promotion judges: by uploaded ground truth where an image has it, else approved labels."""
    from worker.predict import predict_image, version_predictor

    with ctx.db.session() as s:
        mv = s.get(ModelVersion, model_version_id)
        ds = s.get(DatasetVersion, dataset_id or mv.dataset_id)
        mpp = s.get(Project, mv.project_id).pixel_size_um
        predictor = version_predictor(mv, ctx.store)
        X, _ = datasets.load_split(ctx.store, ds, "test")
        y, _ = datasets.load_judging_labels(ctx.store, ds, "test")
    metrics = evaluate_predictions(lambda img: predict_image(predictor, img, mpp=mpp), X, y)
    with ctx.db.session() as s:
        mv = s.get(ModelVersion, model_version_id)
        mv.metrics = {**(mv.metrics or {}), "evaluations": {**(mv.metrics or {}).get("evaluations", {}),
                                                            str(ds.id): {"f1": metrics["f1"], "nuclear_f1": metrics["nuclear_f1"]}}}
    return {"f1": metrics["f1"], "nuclear_f1": metrics["nuclear_f1"]}
