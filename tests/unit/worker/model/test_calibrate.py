"""Calibration of the post-processing and zoom on validation images."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from backend.core.synthetic import synthetic_tissue
from worker.model.calibrate import DEFAULT_POSTPROCESS, SEARCH_GRID, calibrate_postprocess, calibrate_scale
from worker.model.transforms import targets_for


def _noisy_outputs(labels: np.ndarray, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for name, value in targets_for(np.moveaxis(labels, 0, -1)[None]).items():
        value = ndi.gaussian_filter(value[0], (1.5, 1.5, 0)) + rng.normal(0, 0.04, value.shape[1:])
        if name.endswith("pixelwise"):
            value = np.clip(value, 1e-3, None)
            value /= value.sum(-1, keepdims=True)
        out[name] = value.astype(np.float32)
    return out


def test_the_chosen_options_are_never_worse_than_the_defaults_and_come_from_the_grid():
    tissues = [synthetic_tissue(128, 128, n_channels=2, seed=s) for s in (5, 6)]
    outputs = [_noisy_outputs(t.labels, i) for i, t in enumerate(tissues)]
    truths = np.stack([np.moveaxis(t.labels, 0, -1) for t in tissues])
    result = calibrate_postprocess(outputs, truths, ("whole_cell", "nuclear"), time_budget_s=60)
    assert result["objective"] == "pq"
    for feature, (default_score, chosen_score) in result["validation_score"].items():
        assert chosen_score >= default_score > 0.3
        options = result["feature_kwargs"][feature]
        assert set(options) == set(DEFAULT_POSTPROCESS)
        assert all(options[k] in SEARCH_GRID[k] for k in options)
    # deterministic for the same outputs
    again = calibrate_postprocess(outputs, truths, ("whole_cell", "nuclear"), time_budget_s=60)
    assert again["feature_kwargs"] == result["feature_kwargs"]


def test_a_spent_budget_keeps_the_defaults():
    t = synthetic_tissue(96, 96, n_channels=2, seed=1)
    result = calibrate_postprocess([_noisy_outputs(t.labels, 0)], np.moveaxis(t.labels, 0, -1)[None, ..., :1],
                                   ("whole_cell",), time_budget_s=0)
    assert result["feature_kwargs"]["whole_cell"] == DEFAULT_POSTPROCESS


class BlobModel:
    """Interior = the normalised nuclear stain, inner distance = its square: exact for round blobs."""

    input_shape = (None, None, None, 2)
    output_names = ["whole_cell_pixelwise", "whole_cell_distance", "nuclear_pixelwise", "nuclear_distance"]

    def predict_on_batch(self, x):
        nuclear = np.clip((x[..., :1] - 0.25) * 2.0, 0, 1)
        pixelwise = np.concatenate([1 - nuclear, nuclear, np.zeros_like(nuclear)], -1)
        return {"whole_cell_pixelwise": pixelwise, "whole_cell_distance": nuclear ** 2,
                "nuclear_pixelwise": pixelwise, "nuclear_distance": nuclear ** 2}


def test_calibrate_scale_scores_every_zoom_on_the_original_grid():
    from skimage.measure import label

    spots = np.zeros((160, 160), np.float32)
    spots[10:150:20, 10:150:20] = 1.0
    clean = ndi.gaussian_filter(spots, 3.0)
    truth = label(clean > 0.2 * clean.max()).astype(np.int32)
    image = np.stack([clean * 1000 + 100, np.zeros_like(clean)])
    X = np.moveaxis(image, 0, -1)[None].astype(np.float32)
    y = np.stack([truth, truth], -1)[None]
    result = calibrate_scale(BlobModel(), X, y, ("whole_cell", "nuclear"), zooms=(1.0, 1.5), time_budget_s=120)
    assert set(result["by_zoom"]) == {"1.0", "1.5"} and result["zoom"] in (1.0, 1.5)
    assert result["by_zoom"][str(result["zoom"])] == max(result["by_zoom"].values())
    assert all(0.8 < f1 <= 1 for f1 in result["by_zoom"].values())


def test_the_objective_counts_outlines_where_f1_does_not():
    """Cells drawn 2 px too large keep F1 at IoU 0.5 but lose panoptic quality: calibration
    must prefer the options that outline cells right, as an annotator would redraw the others."""
    from scipy import ndimage as ndi

    from worker.model.calibrate import _pooled_score

    t = synthetic_tissue(128, 128, n_channels=2, seed=7)
    truth = t.nuclear
    inner = truth > 0
    ring = ndi.binary_dilation(inner, iterations=2) & ~inner
    pixelwise = np.zeros((*truth.shape, 3), np.float32)
    pixelwise[..., 0] = 1.0
    pixelwise[inner] = (0.0, 1.0, 0.0)
    pixelwise[ring] = (0.2, 0.3, 0.5)  # a halo the loose threshold takes in
    distance = ndi.distance_transform_edt(inner)[..., None].astype(np.float32)
    distance /= max(float(distance.max()), 1.0)
    outputs = [{"nuclear_pixelwise": pixelwise, "nuclear_distance": distance}]
    tight = dict(DEFAULT_POSTPROCESS, interior_threshold=0.45)
    loose = dict(DEFAULT_POSTPROCESS, interior_threshold=0.1)
    assert _pooled_score(outputs, [truth], "nuclear", tight, "pq") > _pooled_score(outputs, [truth], "nuclear", loose, "pq")
