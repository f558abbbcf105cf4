"""Tests for backend.core.tiling: crop plan, crop_stack, and the re-export of stitch_crops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.core import stitch, tiling
from backend.core.tiling import CropWindow, crop_plan, crop_stack, default_overlap

PROPERTY = settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def window_axes(plan):
    rows = sorted({(w.y0, w.y1) for w in plan})
    cols = sorted({(w.x0, w.x1) for w in plan})
    return rows, cols


# ------------------------------------------------------------------ crop plan


@PROPERTY
@given(height=st.integers(1, 5000), width=st.integers(1, 5000), data=st.data())
def test_plan_is_an_edge_aligned_grid_without_padding(height, width, data):
    min_stride = math.ceil(max(height, width) / 40)  # at most ~41 x 41 crops per example
    crop = data.draw(st.integers(min_stride, max(min_stride, 600)))
    overlap = data.draw(st.integers(0, max(0, crop - min_stride)))
    plan = crop_plan((height, width), crop, overlap)
    rows, cols = window_axes(plan)
    assert len(plan) == len(rows) * len(cols)
    assert plan == sorted(plan, key=lambda w: (w.y0, w.x0))  # row-major
    for intervals, length in ((rows, height), (cols, width)):
        size = min(crop, length)
        assert all(b - a == size for a, b in intervals)  # never padded, never clipped
        assert intervals[0][0] == 0 and intervals[-1][1] == length  # last one edge-aligned
        starts = [a for a, _ in intervals]
        steps = np.diff(starts)
        assert np.all(steps >= 1)
        assert np.all(steps[:-1] == crop - overlap)  # regular stride except the last crop
        assert np.all(steps <= crop - overlap)  # so every overlap is >= the requested one
    if len(rows) * len(cols) <= 400:
        cover = np.zeros((height, width), np.int32)
        for w in plan:
            cover[w.slices] += 1
        assert cover.min() >= 1


@pytest.mark.parametrize(
    ("shape", "crop", "overlap", "expected_rows", "expected_cols"),
    [
        # 2048 = 8 * 243 + 104: nine crops per axis, the last one shifted to end at 2048
        ((2048, 2048), 270, 27, 9, 9),
        ((100, 50), 270, 27, 1, 1),
        ((270, 271), 270, 27, 1, 2),
        ((2048, 1024), 270, 27, 9, 5),
    ],
)
def test_plan_counts_and_last_crop(shape, crop, overlap, expected_rows, expected_cols):
    plan = crop_plan(shape, crop, overlap)
    rows, cols = window_axes(plan)
    assert (len(rows), len(cols)) == (expected_rows, expected_cols)
    assert plan[-1].y1 == shape[0] and plan[-1].x1 == shape[1]
    assert plan[-1].height == min(crop, shape[0]) and plan[-1].width == min(crop, shape[1])


def test_image_smaller_than_crop_is_one_crop_of_its_own_size():
    assert crop_plan((17, 300), 270) == [CropWindow(0, 0, 17, 270), CropWindow(0, 30, 17, 300)]
    assert crop_plan((5, 7), 270) == [CropWindow(0, 0, 5, 7)]


@pytest.mark.parametrize("crop", [1, 2, 9, 10, 11, 99, 100, 101, 270, 1000])
def test_default_overlap_is_at_least_a_tenth_and_advances(crop):
    overlap = default_overlap(crop)
    assert overlap >= crop / 10 or crop == 1
    assert overlap < crop
    assert overlap <= crop / 10 + 1
    assert crop_plan((3 * crop + 1, 2), crop) == crop_plan((3 * crop + 1, 2), crop, overlap)


def test_default_overlap_of_270_is_27():
    assert default_overlap(270) == 27


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shape": (10, 10), "crop_size": 0}, "crop_size"),
        ({"shape": (10, 10), "crop_size": 5, "overlap": -1}, "overlap"),
        ({"shape": (10, 10), "crop_size": 5, "overlap": 5}, "smaller than crop_size"),
        ({"shape": (10, 10), "crop_size": 5, "overlap": 6}, "smaller than crop_size"),
        ({"shape": (0, 10), "crop_size": 5}, "height"),
        ({"shape": (2, 10, 10), "crop_size": 5}, "shape"),
        ({"shape": (10, 10), "crop_size": 2.5}, "integer"),
    ],
)
def test_plan_rejects_bad_settings_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        crop_plan(**kwargs)


def test_crop_window_properties_and_validation():
    window = CropWindow(np.int64(3), 4, 10, 20)
    assert (window.height, window.width) == (7, 16)
    assert window.slices == (slice(3, 10), slice(4, 20))
    assert isinstance(window.y0, int)
    with pytest.raises(ValueError, match="empty"):
        CropWindow(5, 0, 5, 10)
    with pytest.raises(ValueError):
        CropWindow(-1, 0, 5, 10)


# ------------------------------------------------------------------ crop_stack


def test_crop_stack_cuts_copies_in_plan_order():
    image = np.arange(3 * 40 * 50, dtype=np.uint16).reshape(3, 40, 50)
    plan = crop_plan((40, 50), 16, 4)
    crops = crop_stack(image, plan)
    assert len(crops) == len(plan)
    for crop, window in zip(crops, plan):
        assert crop.shape == (3, window.height, window.width)
        assert crop.dtype == np.uint16 and crop.flags.c_contiguous
        np.testing.assert_array_equal(crop, image[:, window.y0 : window.y1, window.x0 : window.x1])
    crops[0][:] = 0
    assert image[:, :16, :16].any()  # editing a crop leaves the image alone


def test_crop_stack_rejects_2d_arrays_and_windows_outside():
    with pytest.raises(ValueError, match=r"array\[None\]"):
        crop_stack(np.zeros((10, 10)), crop_plan((10, 10), 5))
    with pytest.raises(ValueError, match="outside"):
        crop_stack(np.zeros((1, 10, 10)), crop_plan((10, 12), 5))


# ------------------------------------------------------------------ re-export


def test_stitching_is_re_exported_from_tiling():
    from backend.core.tiling import StitchResult, stitch_crops

    assert stitch_crops is stitch.stitch_crops and StitchResult is stitch.StitchResult
    assert {"StitchResult", "stitch_crops"} <= set(tiling.__all__)
    with pytest.raises(AttributeError, match="no_such_name"):
        tiling.no_such_name  # noqa: B018
