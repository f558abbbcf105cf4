"""Tests of worker.model.postprocess: deep watershed of inner distance + interior maps."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from backend.core.metrics import object_metrics
from backend.core.synthetic import synthetic_tissue
from tests.unit.worker.model.inner_distance_maps import KINDS, model_like_maps, random_labels
from worker.model.postprocess import (deep_watershed, postprocess_outputs,
                                      reference_deep_watershed)
from worker.model.transforms import pixelwise_transform, targets_for


def _in_scope(truth, predicted, min_size=15, min_thickness=0.0):
    """Drop out-of-scope true cells, and the predictions that mostly cover them.

    Out of scope: cells under ``min_size`` px (post-processing removes objects under 15 px,
    the QC rule, but a true cell of 12 px may come back as 17 px) and slivers thinner than
    ``min_thickness`` px (largest distance of a cell pixel to the cell's edge).
    """
    sizes = np.bincount(truth.ravel())
    out = (sizes < min_size) & (np.arange(sizes.size) > 0)
    if min_thickness > 0:
        depth = ndi.distance_transform_edt(pixelwise_transform(truth)[..., 1] > 0)
        thickness = np.zeros(sizes.size)
        np.maximum.at(thickness, truth.ravel(), depth.ravel())
        out |= (thickness < min_thickness) & (np.arange(sizes.size) > 0)
    on_out = np.bincount(predicted.ravel(), weights=out[truth].ravel(),
                         minlength=predicted.max() + 1)
    area = np.bincount(predicted.ravel(), minlength=predicted.max() + 1)
    drop = on_out > area / 2
    drop[0] = False
    return np.where(out[truth], 0, truth), np.where(drop[predicted], 0, predicted)


def _outputs_of(labels_stack):
    """Perfect model outputs for a (2, H, W) label stack."""
    targets = targets_for(np.moveaxis(labels_stack, 0, -1)[None])
    return {name: value[0] for name, value in targets.items()}


def _voronoi_cells(seed, size=96, n=25, radius=11):
    """Touching convex cells: Voronoi regions of random points, cut to a disk around each."""
    rng = np.random.default_rng(seed)
    points = np.zeros((size, size), np.int32)
    ys, xs = rng.integers(0, size, (2, n))
    points[ys, xs] = np.arange(1, n + 1)
    distance, (iy, ix) = ndi.distance_transform_edt(points == 0, return_indices=True)
    labels = points[iy, ix]
    labels[distance > radius] = 0
    # every label one 4-connected piece
    pieces, _ = ndi.label(labels > 0)
    keys = labels.astype(np.int64) * (pieces.max() + 1) + pieces
    _, relabelled = np.unique(keys, return_inverse=True)
    return np.where(labels > 0, relabelled.reshape(labels.shape), 0).astype(np.int32)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_round_trip_on_synthetic_tissue(seed):
    tissue = synthetic_tissue(256, 256, seed=seed)
    labels = postprocess_outputs(_outputs_of(tissue.labels))
    assert labels.shape == (2, 256, 256) and labels.dtype == np.int32
    for feature in range(2):
        truth, predicted = _in_scope(tissue.labels[feature], labels[feature])
        assert object_metrics(truth, predicted).f1 >= 0.99


@settings(deadline=None, max_examples=30)
@given(st.integers(0, 10_000))
def test_round_trip_recovers_every_touching_convex_cell(seed):
    cells = _voronoi_cells(seed)
    labels = postprocess_outputs(_outputs_of(np.stack([cells, cells])))[0]
    # slivers (no interior pixel 2 px from the cell's edge) may or may not survive
    truth, predicted = _in_scope(cells, labels, min_thickness=2.0)
    metrics = object_metrics(truth, predicted)
    assert metrics.missed == 0 and metrics.merge == 0 and metrics.split == 0
    assert metrics.recall == 1.0 and metrics.precision == 1.0


def _two_bumps(second_height, distance=16, size=(40, 60)):
    """Inner-distance map with two Gaussian peaks on one interior blob."""
    yy, xx = np.mgrid[: size[0], : size[1]].astype(np.float32)
    cx1, cx2, cy = 30 - distance / 2, 30 + distance / 2, 20
    bump1 = np.exp(-((yy - cy) ** 2 + (xx - cx1) ** 2) / (2 * 4.0**2))
    bump2 = second_height * np.exp(-((yy - cy) ** 2 + (xx - cx2) ** 2) / (2 * 4.0**2))
    inner = np.maximum(bump1, bump2).astype(np.float32)
    interior = (inner > 0.05).astype(np.float32)
    return inner, interior


def test_deep_saddle_splits_two_cells():
    inner, interior = _two_bumps(1.0)
    labels = deep_watershed(inner, interior)
    assert labels.max() == 2
    # each half belongs to its own peak
    assert labels[20, 22] != labels[20, 38]


def test_peak_rising_less_than_maxima_threshold_is_merged():
    inner, interior = _two_bumps(1.0, distance=10)
    # lift the saddle so that the second peak rises only 0.03 above it
    saddle = inner[20, 30]
    inner[:, 30:] = np.where(inner[:, 30:] > saddle, saddle + (inner[:, 30:] - saddle) * 0.03 /
                             (inner[:, 30:].max() - saddle), inner[:, 30:])
    assert inner[:, 30:].max() - inner[20, 30] < 0.075
    assert deep_watershed(inner, interior).max() == 1
    assert deep_watershed(inner, interior, maxima_threshold=0.01).max() == 2


@settings(deadline=None, max_examples=30)
@given(seed=st.integers(0, 10_000), size=st.integers(24, 72), kind=st.sampled_from(KINDS),
       maxima_threshold=st.sampled_from([0.03, 0.075, 0.15]), radius=st.integers(1, 3))
def test_same_objects_as_the_skimage_reference(seed, size, kind, maxima_threshold, radius):
    """Same markers, same flood, same clean-up as scikit-image's h_maxima + watershed.

    Noisy maps give identical label images. Exact and blurred targets have pixels of equal
    height where the two floods may break a tie differently (see test_marker_flood): the same
    objects, matched 1 to 1, whose borders may differ by a pixel or two.
    """
    distance, interior, background = model_like_maps(random_labels(seed, size), kind, seed)
    options = dict(maxima_threshold=maxima_threshold, radius=radius, background=background)
    fast = deep_watershed(distance, interior, **options)
    reference = reference_deep_watershed(distance, interior, **options)
    if kind in ("noisy", "smoothed"):
        np.testing.assert_array_equal(fast, reference)
    elif reference.max() > 0:
        assert fast.max() == reference.max()
        assert object_metrics(reference, fast).f1 >= 0.99


def test_peak_that_descends_little_to_a_higher_one_through_lower_peaks_is_merged():
    """Issue #12, cause 3: a noise peak whose adjacent peaks are all lower is still no cell
    when the way to a higher peak through them descends less than ``maxima_threshold``."""
    ridge = np.interp(np.arange(48), [0, 10, 20, 24, 28, 32, 42, 47],
                      [0.1, 1.0, 0.43, 0.44, 0.435, 0.45, 0.1, 0.05]).astype(np.float32)
    inner = np.zeros((15, 48), np.float32)
    inner[2:13] = ridge * np.float32(0.99) ** np.abs(np.arange(2, 13) - 7)[:, None]
    interior = (inner > 0).astype(np.float32)
    options = dict(smoothing=0, interior_threshold=0.5, min_size=5)
    labels = deep_watershed(inner, interior, **options)
    assert labels.max() == 1
    assert deep_watershed(inner, interior, maxima_threshold=0.002, **options).max() == 3


@pytest.mark.parametrize("shape", [(1, 1), (1, 30), (30, 1), (2, 2), (3, 40)])
def test_thin_images_match_the_reference(shape):
    rng = np.random.default_rng(sum(shape))
    inner = rng.random(shape).astype(np.float32)
    interior = rng.random(shape).astype(np.float32)
    options = dict(smoothing=0, interior_threshold=0.3, min_size=1)
    np.testing.assert_array_equal(deep_watershed(inner, interior, **options),
                                  reference_deep_watershed(inner, interior, **options))


def test_peaks_below_threshold_and_small_objects_are_dropped():
    inner = np.zeros((50, 50), np.float32)
    interior = np.zeros((50, 50), np.float32)
    inner[10:20, 10:20] = 0.05  # too faint a peak
    interior[10:20, 10:20] = 1
    inner[30:33, 30:33] = 1.0  # 9 px object
    interior[30:33, 30:33] = 1
    labels = deep_watershed(inner, interior, smoothing=0, interior_threshold=0.5)
    assert labels.max() == 0
    labels = deep_watershed(inner, interior, smoothing=0, interior_threshold=0.5, min_size=5)
    assert labels.max() == 1 and (labels > 0).sum() == 9


def test_enclosed_hole_is_filled_but_gaps_between_cells_are_not():
    cells = np.zeros((60, 60), np.int32)
    yy, xx = np.mgrid[:60, :60]
    cells[(yy - 30) ** 2 + (xx - 20) ** 2 <= 100] = 1
    cells[(yy - 30) ** 2 + (xx - 42) ** 2 <= 100] = 2
    outputs = _outputs_of(np.stack([cells, cells]))
    inner = outputs["whole_cell_distance"][..., 0]
    interior = outputs["whole_cell_pixelwise"][..., 1]
    interior[25:28, 15:18] = 0  # 9 px hole inside cell 1, off its centre
    labels = deep_watershed(inner, interior, smoothing=0, interior_threshold=0.5)
    assert (labels[25:28, 15:18] > 0).all()
    unfilled = deep_watershed(inner, interior, smoothing=0, interior_threshold=0.5, max_hole_size=0)
    assert (unfilled[25:28, 15:18] == 0).all()
    assert labels.max() == 2


def test_labels_are_int32_and_consecutive():
    cells = _voronoi_cells(3)
    labels = postprocess_outputs(_outputs_of(np.stack([cells, cells])))
    for feature in labels:
        ids = np.unique(feature)
        np.testing.assert_array_equal(ids, np.arange(ids.size))
        assert np.bincount(feature.ravel())[1:].min() >= 15


def test_interior_only_mask_loses_small_cells_that_the_border_keeps():
    cells = np.zeros((40, 40), np.int32)
    cells[10:15, 10:15] = 1  # 25 px: 9 interior pixels
    outputs = _outputs_of(np.stack([cells, cells]))
    assert postprocess_outputs(outputs)[0].max() == 1
    assert postprocess_outputs(outputs, include_border=False)[0].max() == 0


def test_postprocess_outputs_accepts_a_batch_of_one_and_checks_keys():
    cells = _voronoi_cells(4)
    outputs = _outputs_of(np.stack([cells, cells]))
    batched = {name: value[None] for name, value in outputs.items()}
    np.testing.assert_array_equal(postprocess_outputs(batched), postprocess_outputs(outputs))
    np.testing.assert_array_equal(
        postprocess_outputs(outputs, parallel=False), postprocess_outputs(outputs, parallel=True)
    )
    del outputs["nuclear_distance"]
    with pytest.raises(KeyError, match="nuclear_distance"):
        postprocess_outputs(outputs)


def test_deep_watershed_rejects_mismatched_maps():
    with pytest.raises(ValueError, match="same shape"):
        deep_watershed(np.zeros((10, 10)), np.zeros((10, 11)))
    with pytest.raises(ValueError, match="NaN"):
        deep_watershed(np.full((10, 10), np.nan), np.zeros((10, 10)))
    with pytest.raises(ValueError, match="maxima_threshold"):
        deep_watershed(np.zeros((10, 10)), np.zeros((10, 10)), maxima_threshold=0)


def test_empty_prediction_gives_empty_labels():
    labels = deep_watershed(np.zeros((30, 30)), np.zeros((30, 30)))
    assert labels.dtype == np.int32 and labels.max() == 0


def test_feature_kwargs_override_one_feature_only():
    cells = np.zeros((40, 40), np.int32)
    cells[10:15, 10:15] = 1  # 25 px
    outputs = _outputs_of(np.stack([cells, cells]))
    labels = postprocess_outputs(outputs, feature_kwargs={"nuclear": {"min_size": 30}})
    assert labels[0].max() == 1 and labels[1].max() == 0
    with pytest.raises(KeyError, match="cytoplasm"):
        postprocess_outputs(outputs, feature_kwargs={"cytoplasm": {}})
