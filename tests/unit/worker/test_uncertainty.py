"""How sure a prediction is: per-cell agreement with perturbed predictions, and crop scores."""

from __future__ import annotations

import numpy as np
import pytest

from backend.core.synthetic import synthetic_tissue
from tests.unit.worker.test_predict import BlobModel, blob_image
from worker.predict import BASELINE, Predictor, predict_image, predict_image_result
from worker.uncertainty import cell_uncertainty, crop_scores


def two_cells() -> np.ndarray:
    labels = np.zeros((30, 30), np.int32)
    labels[2:10, 2:10] = 1
    labels[15:25, 15:25] = 2
    return labels


def test_a_cell_every_perturbation_reproduces_is_certain_and_one_none_finds_is_not():
    served = two_cells()
    other = served.copy()
    other[other == 1] = 0  # cell 1 vanishes in the perturbed prediction
    u = cell_uncertainty(served, [other, served])
    assert u[20, 20] == 0.0
    assert u[5, 5] == pytest.approx(0.5)  # found once in two
    assert u[0, 0] == 0.0 and u[12, 0] == 0.0  # background nobody labelled


def test_an_object_only_a_perturbed_prediction_finds_marks_a_possible_missed_cell():
    served = two_cells()
    other = served.copy()
    other[2:10, 18:26] = 7
    u = cell_uncertainty(served, [other, other, served])
    assert u[5, 20] == pytest.approx(2 / 3)
    assert u[5, 5] == 0.0


def test_a_half_reproduced_cell_scores_one_minus_its_iou():
    served = two_cells()
    other = served.copy()
    other[2:10, 6:10] = 0  # half of cell 1 left: IoU 0.5
    assert cell_uncertainty(served, [other])[3, 3] == pytest.approx(0.5)


def test_crop_scores_count_cells_by_their_share_inside_the_window():
    served = two_cells()
    other = served.copy()
    other[other == 2] = 0
    u = cell_uncertainty(served, [other])[None]
    whole, half, empty = crop_scores(served[None], u, [(0, 0, 30, 30), (0, 0, 30, 20), (0, 0, 12, 12)])
    assert whole.expected_fixes == pytest.approx(1.0)  # cell 2 is wrong, cell 1 right
    assert whole.uncertainty == pytest.approx(0.5)
    assert half.expected_fixes == pytest.approx(0.5)  # half of cell 2 lies inside
    assert empty.expected_fixes == 0.0


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="at least one"):
        cell_uncertainty(two_cells(), [])
    with pytest.raises(ValueError, match="shape"):
        cell_uncertainty(two_cells(), [np.zeros((5, 5), np.int32)])
    with pytest.raises(ValueError, match=r"\(F, H, W\)"):
        crop_scores(two_cells(), two_cells().astype(float), [(0, 0, 5, 5)])


@pytest.mark.parametrize("kind", ["model", "baseline"])
def test_the_uncertainty_is_deterministic_and_leaves_the_labels_alone(kind):
    if kind == "model":
        predictor, raw = Predictor("blobs", BlobModel()), blob_image(96, 3.0)
    else:
        tissue = synthetic_tissue(96, 96, n_channels=2, seed=3)
        predictor, raw = BASELINE, tissue.image
    first = predict_image_result(predictor, raw, uncertainty=True, maps=True)
    second = predict_image_result(predictor, raw, uncertainty=True, maps=True)
    assert np.array_equal(first.labels, predict_image(predictor, raw))
    assert first.uncertainty.shape == (2, *raw.shape[1:])
    assert np.array_equal(first.uncertainty, second.uncertainty)
    assert ((first.uncertainty >= 0) & (first.uncertainty <= 1)).all()
    if kind == "model":
        assert set(first.maps) == {"whole_cell", "nuclear"}
        assert first.maps["nuclear"]["foreground"].shape == raw.shape[1:]
    else:
        assert first.maps is None


def test_the_maps_come_back_at_the_image_size_when_the_model_works_at_another_scale():
    predictor = Predictor("blobs", BlobModel(), scale={"nucleus_diameter": 14.0})
    raw = blob_image(64, 2.0)
    result = predict_image_result(predictor, raw, factor=1.5, uncertainty=True, maps=True)
    assert result.labels.shape == (2, 64, 64)
    assert result.uncertainty.shape == (2, 64, 64)
    assert result.maps["whole_cell"]["distance"].shape == (64, 64)


def test_a_crop_whose_cells_all_come_back_close_is_confident_though_its_outlines_wobble():
    served = two_cells()
    other = served.copy()
    other[2:10, 9] = 0  # cell 1 comes back at IoU 0.875: an outline wobble, not a likely fix
    u = cell_uncertainty(served, [other])[None]
    (score,) = crop_scores(served[None], u, [(0, 0, 30, 30)])
    assert score.expected_fixes == pytest.approx(0.125)
    assert score.uncertainty == 0.0
