"""Tests of worker.model.transforms: targets and normalisation (pure NumPy/SciPy)."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from worker.model.transforms import (
    FEATURES,
    cell_border,
    inner_distance_transform,
    output_names,
    pixelwise_transform,
    preprocess,
    targets_for,
)

label_images = arrays(
    np.int32,
    st.tuples(st.integers(1, 24), st.integers(1, 24)),
    elements=st.integers(0, 6),
)


def _reference_inner_distance(labels):
    """Slow per-cell reference of 1 / (1 + r / sqrt(area))."""
    out = np.zeros(labels.shape, np.float64)
    for cell in np.unique(labels[labels > 0]):
        ys, xs = np.nonzero(labels == cell)
        r = np.hypot(ys - ys.mean(), xs - xs.mean())
        out[ys, xs] = 1.0 / (1.0 + r / np.sqrt(ys.size))
    return out


@given(label_images)
def test_pixelwise_is_one_hot_and_partitions_cells(labels):
    pix = pixelwise_transform(labels)
    assert pix.shape == labels.shape + (3,)
    assert pix.dtype == np.float32
    np.testing.assert_array_equal(pix.sum(-1), 1.0)
    np.testing.assert_array_equal(pix[..., 0] == 1, labels == 0)
    np.testing.assert_array_equal((pix[..., 1] + pix[..., 2]) == 1, labels > 0)


@given(label_images)
def test_border_pixels_touch_another_label_and_interior_pixels_do_not(labels):
    border = cell_border(labels)
    padded = np.pad(labels, 1, mode="edge")
    neighbours = np.stack(
        [padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]]
    )
    touches_other = (neighbours != labels).any(0)
    np.testing.assert_array_equal(border, (labels > 0) & touches_other)


@given(label_images)
def test_inner_distance_matches_per_cell_formula(labels):
    dist = inner_distance_transform(labels)
    assert dist.shape == labels.shape + (1,)
    assert dist.dtype == np.float32
    np.testing.assert_allclose(
        dist[..., 0], _reference_inner_distance(labels), rtol=1e-5, atol=1e-6
    )


@given(label_images, st.permutations(range(1, 7)))
def test_transforms_do_not_depend_on_label_ids(labels, permutation):
    lookup = np.array([0] + list(permutation), np.int32)
    relabelled = lookup[labels] * 1000  # non-consecutive, large ids
    np.testing.assert_array_equal(pixelwise_transform(labels), pixelwise_transform(relabelled))
    np.testing.assert_allclose(
        inner_distance_transform(labels), inner_distance_transform(relabelled)
    )


def test_inner_distance_is_one_at_the_centre_and_size_normalised():
    small = np.zeros((41, 41), np.int32)
    large = np.zeros((81, 81), np.int32)
    yy, xx = np.mgrid[:41, :41]
    small[(yy - 20) ** 2 + (xx - 20) ** 2 <= 8**2] = 1
    yy, xx = np.mgrid[:81, :81]
    large[(yy - 40) ** 2 + (xx - 40) ** 2 <= 16**2] = 1
    ds, dl = inner_distance_transform(small)[..., 0], inner_distance_transform(large)[..., 0]
    assert ds[20, 20] == pytest.approx(1.0)
    assert dl[40, 40] == pytest.approx(1.0)
    # same relative position (edge of the disk) gives about the same value at both sizes
    assert ds[20, 28] == pytest.approx(dl[40, 56], abs=0.01)
    assert ds[0, 0] == 0.0


def test_targets_for_gives_all_heads():
    y = np.zeros((3, 16, 20, 2), np.int32)
    y[1, 2:8, 3:9, 0] = 5
    y[1, 3:6, 4:7, 1] = 5
    targets = targets_for(y)
    assert sorted(targets) == sorted(output_names(FEATURES))
    assert targets["whole_cell_pixelwise"].shape == (3, 16, 20, 3)
    assert targets["nuclear_distance"].shape == (3, 16, 20, 1)
    np.testing.assert_array_equal(
        targets["nuclear_pixelwise"][1], pixelwise_transform(y[1, ..., 1])
    )
    assert targets["whole_cell_distance"][0].max() == 0.0


def test_targets_for_rejects_channels_first_labels():
    with pytest.raises(ValueError, match=r"\(N, H, W, 2\)"):
        targets_for(np.zeros((2, 2, 16, 16), np.int32))


def test_pixelwise_rejects_float_and_negative_labels():
    with pytest.raises(ValueError, match="integers"):
        pixelwise_transform(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="negative"):
        pixelwise_transform(-np.ones((4, 4), np.int32))


@settings(deadline=None, max_examples=25)
@given(
    arrays(np.float32, (1, 32, 32, 2), elements=st.floats(0, 1000, width=32)),
    st.floats(0.1, 100),
    st.floats(0, 1000),
)
def test_preprocess_is_in_unit_range_and_ignores_gain_and_offset(X, gain, offset):
    out = preprocess(X)
    assert out.shape == X.shape and out.dtype == np.float32
    assert np.all((out >= 0) & (out <= 1))
    moved = X.astype(np.float64) * gain + offset
    # only where the rescaling keeps the image: a channel whose whole range is under the offset's
    # float precision (one pixel at 1e-38, offset 1) becomes constant, and a constant channel is 0
    span = np.ptp(X.astype(np.float64), axis=(0, 1, 2))
    assume(np.allclose(np.ptp(moved, axis=(0, 1, 2)), gain * span, rtol=1e-6, atol=0))
    rescaled = preprocess(moved)
    # equal up to rounding: a value on a CLAHE histogram bin edge may move by one bin
    difference = np.abs(out - rescaled)
    assert difference.mean() < 1e-3
    assert difference.max() < 0.02


def test_preprocess_constant_channel_is_zero_and_bright_outliers_are_clipped():
    rng = np.random.default_rng(0)
    X = np.zeros((1, 64, 64, 2), np.float32)
    X[0, ..., 0] = rng.uniform(0, 100, (64, 64))
    X[0, 5, 5, 0] = 1e6  # one hot pixel must not squash the rest
    out = preprocess(X)
    assert out[0, ..., 1].max() == 0.0
    assert np.median(out[0, ..., 0]) > 0.2


def test_preprocess_rejects_a_single_image():
    with pytest.raises(ValueError, match="transpose"):
        preprocess(np.zeros((2, 16, 16)))


def test_pure_modules_do_not_load_keras():
    code = (
        "import sys; import worker.model.transforms, worker.model.postprocess, "
        "worker.model.baseline, worker.model.infer, worker.model.train; "
        "bad = [m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=_repo_root())


def _repo_root():
    from pathlib import Path

    return str(Path(__file__).resolve().parents[4])
