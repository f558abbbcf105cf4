"""Choose a model version's post-processing parameters on its validation images.

The parameters found here are stored with the model version and used wherever it predicts
(the round's predict job, evaluation, ``looplabel evaluate``, the simulation, the bench), so a
figure measured on a model is the figure users get. Pure NumPy (no Keras): it works on the
model's outputs, computed once.
"""

from __future__ import annotations

import itertools
import time
from typing import Sequence

import numpy as np

from backend.core.metrics import aggregate, object_metrics
from worker.model.postprocess import postprocess_outputs

#: Mesmer's whole-cell defaults: the starting point, kept unless something is better.
DEFAULT_POSTPROCESS: dict = {"maxima_threshold": 0.075, "interior_threshold": 0.2,
                             "maxima_smoothing": 0.0}

#: Values tried per feature, defaults first.
SEARCH_GRID: dict[str, tuple] = {
    "maxima_threshold": (0.075, 0.03, 0.05, 0.1, 0.15, 0.2, 0.3),
    "interior_threshold": (0.2, 0.1, 0.3, 0.45),
    "maxima_smoothing": (0.0, 1.0, 2.0),
}


#: Zooms (relative to the training scale) tried by :func:`calibrate_scale`: a network often
#: separates touching cells better when they are drawn larger than it was trained on.
ZOOMS = (1.0, 1.2, 1.4)


#: What calibration maximises: panoptic quality (F1 × mean matched IoU). F1 at IoU 0.5 alone is
#: blind to outlines, and an annotator redraws a cell whose outline is off as surely as one that
#: is missing; "f1" is kept for comparison.
OBJECTIVE = "pq"


def _pooled_score(outputs: Sequence[dict], truths: Sequence[np.ndarray], feature: str,
               options: dict, objective: str | None = None) -> float:
    from worker.model.scale import resample_labels

    results = []
    for out, truth in zip(outputs, truths):
        labels = postprocess_outputs(out, features=(feature,), parallel=False, **options)[0]
        results.append(object_metrics(truth, resample_labels(labels, truth.shape)))
    pooled = aggregate(results)
    return float(pooled.pq if (objective or OBJECTIVE) == "pq" else pooled.f1)


def calibrate_postprocess(
    outputs: Sequence[dict],
    truths: np.ndarray,
    features: Sequence[str],
    *,
    time_budget_s: float = 120.0,
) -> dict:
    """Per feature, the post-processing options with the best pooled :data:`OBJECTIVE` on
    validation images.

    Coordinate search over :data:`SEARCH_GRID`: first the maxima threshold with the maxima
    smoothing, then the interior threshold; stops early (keeping the best so far) when the time
    budget is spent. Ties keep the earlier (default) value.

    Parameters
    ----------
    outputs : sequence of dict
        The model's outputs per validation image (``predict_outputs``), at the model's scale.
    truths : np.ndarray of int, shape (N, H, W, F)
        True labels at the same scale, features in ``features`` order.
    features : sequence of str
        Feature names, e.g. ``("whole_cell", "nuclear")``.
    time_budget_s : float
        Wall-clock budget for the whole search.

    Returns
    -------
    dict
        ``{"feature_kwargs": {feature: options}, "objective": "pq",
        "validation_score": {feature: (default, best)}, "seconds": float}``.
    """
    truths = np.asarray(truths)  # the outputs may be at another resolution (a zoom): labels are
    # resampled to the truth's grid before they are scored
    if truths.ndim != 4 or truths.shape[0] != len(outputs) or truths.shape[-1] != len(features):
        raise ValueError(f"truths must have shape (N={len(outputs)}, H, W, {len(features)}), "
                         f"got {truths.shape}")
    started = time.perf_counter()
    chosen, scores = {}, {}
    for f, feature in enumerate(features):
        truth = [truths[i, ..., f] for i in range(truths.shape[0])]
        best = dict(DEFAULT_POSTPROCESS)
        default_score = best_score = _pooled_score(outputs, truth, feature, best)
        stages = [
            [dict(best, maxima_threshold=t, maxima_smoothing=m)
             for t, m in itertools.product(SEARCH_GRID["maxima_threshold"],
                                           SEARCH_GRID["maxima_smoothing"])],
            [{"interior_threshold": i} for i in SEARCH_GRID["interior_threshold"]],
        ]
        for stage in stages:
            for change in stage:
                if time.perf_counter() - started > time_budget_s:
                    break
                options = {**best, **change}
                if options == best:
                    continue
                score = _pooled_score(outputs, truth, feature, options)
                if score > best_score + 1e-9:
                    best, best_score = options, score
        chosen[feature] = best
        scores[feature] = [round(default_score, 4), round(best_score, 4)]
    return {"feature_kwargs": chosen, "objective": OBJECTIVE, "validation_score": scores,
            "seconds": round(time.perf_counter() - started, 1)}


def calibrate_scale(
    model,
    X: np.ndarray,
    y: np.ndarray,
    features: Sequence[str],
    *,
    zooms: Sequence[float] = ZOOMS,
    time_budget_s: float = 240.0,
) -> dict:
    """Choose the zoom at which a model predicts, and its post-processing, on validation images.

    For every zoom the validation images (at the model's training scale) are enlarged, predicted
    once, and :func:`calibrate_postprocess` runs on the outputs with labels scored on the
    original grid; the zoom with the best mean :data:`OBJECTIVE` over the features wins (ties:
    the smaller).

    Parameters
    ----------
    model
        A PanopticNet (``predict_on_batch``).
    X : np.ndarray, shape (N, H, W, C)
        Raw validation images at the model's training scale.
    y : np.ndarray of int, shape (N, H, W, F)
        Their true labels.
    features : sequence of str
    zooms : sequence of float
    time_budget_s : float
        Shared by all zooms.

    Returns
    -------
    dict
        ``zoom`` (float), ``feature_kwargs``, ``objective`` and ``validation_score`` of the
        chosen zoom, ``by_zoom`` ({zoom: mean score}), ``seconds``.
    """
    from worker.model.infer import predict_outputs
    from worker.model.scale import resample_image

    started = time.perf_counter()
    best, by_zoom = None, {}
    for zoom in zooms:
        remaining = time_budget_s - (time.perf_counter() - started)
        if best is not None and remaining <= 0:
            break
        outputs = [predict_outputs(model, resample_image(np.moveaxis(x, -1, 0), zoom)) for x in X]
        result = calibrate_postprocess(outputs, y, features, time_budget_s=max(remaining / 2, 5.0))
        score = float(np.mean([chosen for _default, chosen in result["validation_score"].values()]))
        by_zoom[str(zoom)] = round(score, 4)
        if best is None or score > best[0] + 1e-9:
            best = (score, zoom, result)
    _, zoom, result = best
    return {"zoom": float(zoom), "feature_kwargs": result["feature_kwargs"], "objective": OBJECTIVE,
            "validation_score": result["validation_score"], "by_zoom": by_zoom,
            "seconds": round(time.perf_counter() - started, 1)}
