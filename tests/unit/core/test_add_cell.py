"""backend.core.add_cell: the missed cell under a click, from a model's maps or the stain."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from backend.core.add_cell import add_cell_mask, image_maps
from backend.core.labels import LabelToolError

H, W = 80, 90
CENTRES = [(30, 25, 12), (30, 48, 11), (60, 60, 9)]  # (y, x, radius): the first two touch


def cells() -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    out = np.zeros((H, W), np.int32)
    for i, (cy, cx, r) in enumerate(CENTRES, start=1):
        out[((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & (out == 0)] = i
    return out


def maps(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Model-like maps: per-cell distance to the edge (peaks at the centres), a soft foreground."""
    distance = np.zeros(truth.shape, np.float32)
    for i in range(1, truth.max() + 1):
        distance += ndi.distance_transform_edt(truth == i).astype(np.float32)
    return ndi.gaussian_filter(distance, 1.0), ndi.gaussian_filter((truth > 0).astype(np.float32), 0.7)


def iou(a, b) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_the_flood_stops_at_a_touching_unlabelled_neighbour():
    truth = cells()
    distance, foreground = maps(truth)
    labels = np.zeros_like(truth)
    mask = add_cell_mask(distance, foreground, labels, (30, 20))  # off-centre in cell 1
    assert iou(mask, truth == 1) >= 0.85
    assert not (mask & (truth == 2)).sum() > 5


def test_labelled_pixels_are_never_taken():
    truth = cells()
    distance, foreground = maps(truth)
    labels = np.where(truth == 2, 2, 0).astype(np.int32)
    mask = add_cell_mask(distance, foreground, labels, (30, 25))
    assert not (mask & (labels > 0)).any()
    assert iou(mask, truth == 1) >= 0.85


@pytest.mark.parametrize("point, words", [((2, 2), "background"), ((60, 60), "on cell 3"), ((H, 5), "outside"),
                                          ((-1, 5), "outside")])
def test_refusals_name_the_problem(point, words):
    truth = cells()
    distance, foreground = maps(truth)
    labels = np.where(truth == 3, 3, 0).astype(np.int32)
    with pytest.raises(LabelToolError, match=words):
        add_cell_mask(distance, foreground, labels, point)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, H - 1), st.integers(0, W - 1), st.sets(st.integers(1, 3), max_size=2))
def test_a_new_cell_is_one_free_piece_holding_the_click(y, x, labelled):
    truth = cells()
    distance, foreground = maps(truth)
    labels = np.where(np.isin(truth, list(labelled)), truth, 0).astype(np.int32)
    try:
        mask = add_cell_mask(distance, foreground, labels, (y, x))
    except LabelToolError as err:  # refused only on a cell, on background, or for a sliver
        assert labels[y, x] or foreground[y, x] < 0.5 or "no cell of at least" in str(err)
        return
    assert mask[y, x] and not (mask & (labels > 0)).any() and not (mask & (foreground < 0.5)).any()
    assert ndi.label(mask, structure=np.ones((3, 3)))[1] == 1


def test_maps_from_the_stain_find_a_nucleus_and_a_membrane_bounded_cell():
    truth = cells()
    rng = np.random.default_rng(0)
    nuclear = np.where(ndi.binary_erosion(truth > 0, iterations=4), 200, 10) + rng.normal(0, 5, truth.shape)
    distance, foreground = image_maps(nuclear, whole_cell=False)
    nucleus = ndi.binary_erosion(truth == 3, iterations=4)
    assert iou(add_cell_mask(distance, foreground, np.zeros_like(truth), (60, 60)), nucleus) >= 0.7
    rim = (truth > 0) & ~ndi.binary_erosion(truth > 0) | (ndi.morphological_gradient(truth, size=2) > 0) & (truth > 0)
    membrane = np.where(rim, 220, np.where(truth > 0, 60, 8)) + rng.normal(0, 4, truth.shape)
    distance, foreground = image_maps(membrane, whole_cell=True)
    mask = add_cell_mask(distance, foreground, np.zeros_like(truth), (30, 22))
    assert iou(mask, truth == 1) >= 0.7
