"""Tests of worker.model.hmaxima: the fast h-maxima markers are scikit-image's, pixel for pixel."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.measure import label
from skimage.morphology import disk, h_maxima

from tests.unit.worker.model.inner_distance_maps import (KINDS, cell_mask, model_like_maps,
                                                         random_labels)
from worker.model.basins import basin_graph
from worker.model.hmaxima import hmaxima_markers


def fast_markers(height, mask, h, radius):
    return hmaxima_markers(basin_graph(height, mask), h, radius)


def skimage_markers(height, mask, h, radius):
    """The definition: h-maxima of the map (0 outside the mask), in the mask, at least h."""
    height_0 = np.where(mask, height, 0).astype(np.float32)
    peaks = h_maxima(height_0, h, footprint=disk(radius)).astype(bool)
    return label(peaks & mask & (height_0 >= h), connectivity=2)


@settings(deadline=None, max_examples=40)
@given(seed=st.integers(0, 10_000), size=st.integers(16, 64), kind=st.sampled_from(KINDS),
       h=st.sampled_from([0.02, 0.05, 0.075, 0.15, 0.4]), radius=st.integers(1, 3))
def test_markers_are_skimage_h_maxima(seed, size, kind, h, radius):
    distance, interior, background = model_like_maps(random_labels(seed, size), kind, seed)
    mask = cell_mask(interior, background)
    markers = fast_markers(distance, mask, h, radius)
    # identical ids too: both number the 8-connected components in raster order
    np.testing.assert_array_equal(markers, skimage_markers(distance, mask, h, radius))


def _chain_profile():
    """A ridge along x: peak A (1.0), a low peak L (0.44), a noise peak N (0.45).

    N's only adjacent peak L is lower, but from N the way to a higher pixel (A) goes down only
    to 0.43: N's dynamic is 0.02, so h-maxima with h = 0.075 keeps A alone. A rule that only
    compares a peak with its adjacent peaks (the previous post-processing) keeps N too.
    """
    knots_x = [0, 8, 16, 19, 22, 25, 33, 39]
    knots_f = [0.1, 1.0, 0.43, 0.44, 0.435, 0.45, 0.1, 0.05]
    ridge = np.interp(np.arange(40), knots_x, knots_f)
    taper = 1 - 0.01 * np.abs(np.arange(9) - 4)[:, None]
    height = (ridge[None, :] * taper).astype(np.float32)
    mask = np.zeros(height.shape, bool)
    mask[1:8] = True
    return height, mask


def test_peak_is_merged_through_a_chain_of_lower_peaks():
    height, mask = _chain_profile()
    markers = fast_markers(height, mask, 0.075, 2)
    assert markers.max() == 1 and markers[4, 8] == 1
    np.testing.assert_array_equal(markers, skimage_markers(height, mask, 0.075, 2))
    markers = fast_markers(height, mask, 0.002, 2)  # below every dynamic: 3 peaks
    assert markers.max() == 3


def _edge_cases():
    yy, xx = np.mgrid[:24, :24].astype(np.float32)
    bump = np.exp(-((yy - 12) ** 2 + (xx - 8) ** 2) / 20).astype(np.float32)
    twin = np.maximum(bump, bump[:, ::-1]).astype(np.float32)  # two exactly equal peaks
    twin[:, 11:13] = np.maximum(twin[:, 11:13], np.float32(0.97))  # joined high up
    gap = np.zeros((9, 9), np.float32)
    gap[4, 2], gap[4, 4], gap[4, 6] = 0.8, 0.7, 0.8  # equal pixels 2 apart, not 8-connected
    close = bump.copy()
    close[12, 9] = np.nextafter(close[12, 8], np.float32(0), dtype=np.float32)  # within res
    rng = np.random.default_rng(1)
    negative = (bump - 0.3 + rng.normal(0, 0.05, bump.shape)).astype(np.float32)
    flat = np.full((12, 12), 0.5, np.float32)
    everywhere = np.ones((24, 24), bool)
    return {
        "twin peaks": (twin, twin > 0.05),
        "plateau 2 px apart": (gap, np.ones(gap.shape, bool)),
        "pixel within res of the peak": (close, close > 0.05),
        "negative values, no background": (negative, everywhere),
        "negative values, background": (negative, negative > -0.2),
        "flat map (h > range)": (flat, np.ones(flat.shape, bool)),
        "low isolated peak": (0.06 * bump, bump > 0.1),
    }


@pytest.mark.parametrize("name", list(_edge_cases()))
@pytest.mark.parametrize("radius", [1, 2, 3])
def test_edge_cases_follow_skimage(name, radius):
    height, mask = _edge_cases()[name]
    markers = fast_markers(height, mask, 0.075, radius)
    np.testing.assert_array_equal(markers, skimage_markers(height, mask, 0.075, radius))


def test_edge_case_counts():
    cases = _edge_cases()
    count = {name: fast_markers(*cases[name], 0.075, 2).max() for name in cases}
    assert count["twin peaks"] == 2  # equal peaks never absorb each other
    assert count["plateau 2 px apart"] == 2  # one disk-connected plateau, two 8-components
    assert count["flat map (h > range)"] == 0
    assert count["low isolated peak"] == 0  # dynamic = height above the zero background < h
    close = cases["pixel within res of the peak"][0]
    markers = fast_markers(close, close > 0.05, 0.075, 2)
    assert markers[12, 8] == markers[12, 9] == 1  # scikit-image's rounding allowance


def test_empty_mask_gives_no_markers():
    height = np.random.default_rng(0).random((10, 12)).astype(np.float32)
    markers = fast_markers(height, np.zeros(height.shape, bool), 0.075, 2)
    assert markers.dtype == np.int32 and markers.shape == height.shape and markers.max() == 0
