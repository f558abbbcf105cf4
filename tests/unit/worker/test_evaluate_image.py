"""Scoring one stored image against its ground truth (the console's evaluate job), and reading a
one-image TissueNet-style NPZ (X (H,W,C), y (H,W,2)) for ``looplabel evaluate``."""

from __future__ import annotations

import numpy as np
import pytest

from backend.core.synthetic import synthetic_tissue
from backend.errors import UserError
from worker.evaluate import evaluate_labelled_image, evaluate_predictor, load_labelled_npz
from worker.predict import BASELINE

ERRORS = {"correct", "missed", "gained", "split", "merge", "catastrophe"}


@pytest.fixture(scope="module")
def tissue():
    return synthetic_tissue(96, 112, n_channels=2, seed=8)


def test_one_image_is_scored_on_both_features_as_the_labelled_set_is(tissue, tmp_path):
    out = evaluate_labelled_image(BASELINE, tissue.image, tissue.labels)
    assert out["model"] == "baseline" and out["n_images"] == 1 and out["seconds"] >= 0
    assert 0.3 < out["f1"] <= 1 and 0.3 < out["nuclear_f1"] <= 1
    assert set(out["errors"]) == ERRORS and out["whole_cell"]["n_true"] == int(len(np.unique(tissue.labels[0])) - 1)
    path = tmp_path / "one.npz"
    np.savez(path, X=np.moveaxis(tissue.image, 0, -1)[None], y=np.moveaxis(tissue.labels, 0, -1)[None])
    pooled = evaluate_predictor(BASELINE, load_labelled_npz(path))
    assert (pooled["f1"], pooled["nuclear_f1"]) == (out["f1"], out["nuclear_f1"])


def test_an_empty_label_plane_is_not_scored(tissue):
    whole_only = np.stack([tissue.labels[0], np.zeros_like(tissue.labels[1])])
    out = evaluate_labelled_image(BASELINE, tissue.image, whole_only)
    assert out["f1"] > 0 and out["nuclear_f1"] is None and "nuclear" not in out
    nuclear_only = np.stack([np.zeros_like(tissue.labels[0]), tissue.labels[1]])
    out = evaluate_labelled_image(BASELINE, tissue.image, nuclear_only)
    assert out["f1"] is None and out["nuclear_f1"] > 0 and out["errors"] == out["nuclear"]["errors"]


@pytest.mark.parametrize("truth, message", [
    (np.zeros((2, 96, 112), np.int32), "no labelled cells"),
    (np.zeros((2, 96, 100), np.int32), "does not match"),
    (np.zeros((96, 112), np.int32), "does not match"),
])
def test_unusable_ground_truth_is_refused_with_the_reason(tissue, truth, message):
    with pytest.raises(UserError, match=message):
        evaluate_labelled_image(BASELINE, tissue.image, truth)


def test_a_one_image_npz_with_hwc_x_and_hw2_y_is_one_labelled_image(tissue, tmp_path):
    path = tmp_path / "one.npz"
    np.savez(path, X=np.moveaxis(tissue.image, 0, -1), y=np.moveaxis(tissue.labels, 0, -1))
    data = load_labelled_npz(path)
    assert data.X.shape == (1, 96, 112, 2) and data.y.shape == (1, 96, 112, 2) and not data.nuclear_only
    np.testing.assert_array_equal(data.y[0], np.moveaxis(tissue.labels, 0, -1))
    np.savez(path, X=np.moveaxis(tissue.image, 0, -1), y=tissue.labels[1][None])  # (1,H,W): nuclear only
    assert load_labelled_npz(path).nuclear_only
