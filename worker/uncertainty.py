"""How sure a prediction is, per cell and per crop: agreement between perturbed predictions.

A model predicts the image again under flips (test-time augmentation); the classical baseline
segments it again with its input slightly blurred and with its contrast changed. Each cell of
the served prediction is matched by IoU to the cells of every perturbed prediction: a cell the
perturbed predictions reproduce exactly is certain (0), one they never find is uncertain (1).
Objects that a perturbed prediction finds where the served one has background are possible
missed cells; their pixels carry the share of predictions that found them.

A crop's figures follow from that map (:func:`crop_scores`): ``expected_fixes``, the number of
cells likely to need a correction (each cell counted by its uncertainty and by the share of it
inside the crop, possible missed cells by area: what ranks crops for a budget), and
``uncertainty``, the share of the crop's cells the model is unsure of (uncertainty at least
:data:`~backend.services.prediction_maps.UNSURE`, i.e. reproduced at a mean IoU under 0.7, plus
possible missed cells; 0 when every perturbed prediction agrees: what confident-skip compares).
Everything is deterministic for a given model and image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.core.metrics import contingency
from backend.services.prediction_maps import UNSURE

MISSED_IOU = 0.5
"""A perturbed prediction's object with no served cell at this IoU or more is a possible missed cell."""


def cell_uncertainty(served: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """Per-pixel uncertainty of one feature's labels from perturbed predictions of the same image.

    Parameters
    ----------
    served : np.ndarray, int, shape (H, W)
        The labels the product serves.
    others : list of np.ndarray, int, shape (H, W)
        Labels of the same image predicted under perturbations (at least one).

    Returns
    -------
    np.ndarray of float32, shape (H, W)
        On a cell's pixels, ``1 - mean best IoU`` of that cell over ``others``; on background,
        the share of ``others`` that put an unmatched object there (a possible missed cell).
    """
    served = np.asarray(served)
    if not others:
        raise ValueError("cell_uncertainty needs at least one perturbed prediction")
    out = np.zeros(served.shape, np.float32)
    n_ids = int(served.max(initial=0)) + 1
    agreement = np.zeros(n_ids, np.float64)
    background = served == 0
    for other in others:
        other = np.asarray(other)
        if other.shape != served.shape:
            raise ValueError(f"perturbed labels {other.shape} differ in shape from the served {served.shape}")
        cont = contingency(served, other)
        best_served, best_other = cont.best_iou()
        agreement[cont.true_ids] += best_served
        missed_ids = cont.pred_ids[best_other < MISSED_IOU]
        if missed_ids.size:
            missed = np.isin(other, missed_ids) & background
            out[missed] += 1.0 / len(others)
    per_id = (1.0 - agreement / len(others)).astype(np.float32)
    per_id[0] = 0.0
    cells = ~background
    out[cells] = per_id[served[cells]]
    return out


@dataclass(frozen=True)
class CropScore:
    """``expected_fixes``: cells likely to need a correction; ``uncertainty``: the share of the
    crop's cells the model is unsure of, 0..1."""

    expected_fixes: float
    uncertainty: float


def crop_scores(labels: np.ndarray, uncertainty: np.ndarray,
                windows: list[tuple[int, int, int, int]]) -> list[CropScore]:
    """The figures of each crop window from an image's labels and uncertainty map.

    Parameters
    ----------
    labels : np.ndarray, int, shape (F, H, W)
    uncertainty : np.ndarray, float, shape (F, H, W)
        From :func:`cell_uncertainty`, per feature.
    windows : list of (y0, x0, y1, x1)

    Returns
    -------
    list of CropScore, one per window
    """
    labels, uncertainty = np.asarray(labels), np.asarray(uncertainty, np.float64)
    if labels.shape != uncertainty.shape or labels.ndim != 3:
        raise ValueError(f"labels {labels.shape} and uncertainty {uncertainty.shape} must both be (F, H, W)")
    per_feature = []
    for f in range(labels.shape[0]):
        flat = labels[f].ravel()
        areas = np.bincount(flat)
        u_sum = np.bincount(flat, weights=uncertainty[f].ravel(), minlength=areas.size)
        per_id = np.divide(u_sum, areas, out=np.zeros_like(u_sum), where=areas > 0)
        cell_areas = areas[1:][areas[1:] > 0]
        typical = float(np.median(cell_areas)) if cell_areas.size else 100.0
        per_feature.append((areas, per_id, typical))
    out = []
    for y0, x0, y1, x1 in windows:
        fixes = cells = unsure = 0.0
        for f, (areas, per_id, typical) in enumerate(per_feature):
            window = labels[f, y0:y1, x0:x1].ravel()
            inside = np.bincount(window, minlength=areas.size)
            share = np.divide(inside, areas, out=np.zeros(areas.size), where=areas > 0)
            share[0] = 0.0
            fixes += float(share @ per_id)
            unsure += float(share @ (per_id >= UNSURE - 1e-6))
            cells += float(share.sum())
            missed = uncertainty[f, y0:y1, x0:x1].ravel()[window == 0]
            fixes += float(missed.sum()) / typical
            unsure += float((missed >= UNSURE - 1e-6).sum()) / typical
        out.append(CropScore(round(fixes, 4), round(min(1.0, unsure / max(cells, 1.0)), 4)))
    return out
