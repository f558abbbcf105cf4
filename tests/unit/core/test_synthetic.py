"""Tests for backend.core.synthetic: ground-truth invariants and realism of the synthetic tissue."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from skimage import measure

from backend.core.synthetic import SyntheticTissue, synthetic_tissue


@pytest.fixture(scope="module")
def tissue() -> SyntheticTissue:
    return synthetic_tissue(512, 512, n_channels=4, seed=7)


def interior_ids(labels: np.ndarray) -> np.ndarray:
    """Ids of cells that do not touch the image border."""
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    ids = np.unique(labels)
    return np.setdiff1d(ids[ids > 0], edge)


def per_cell_mean(values: np.ndarray, labels: np.ndarray, mask: np.ndarray | None = None):
    keep = labels > 0 if mask is None else (labels > 0) & mask
    sums = np.bincount(labels[keep], weights=values[keep].astype(float), minlength=labels.max() + 1)
    counts = np.bincount(labels[keep], minlength=labels.max() + 1)
    present = counts > 0
    present[0] = False
    return sums[present] / counts[present], np.flatnonzero(present)


def assert_ground_truth_invariants(t: SyntheticTissue, height: int, width: int, n_channels: int):
    assert t.image.shape == (n_channels, height, width) and t.image.dtype == np.uint16
    assert t.whole_cell.shape == t.nuclear.shape == (height, width)
    assert t.whole_cell.dtype == np.int32 and t.nuclear.dtype == np.int32
    assert t.labels.shape == (2, height, width) and t.labels.dtype == np.int32
    np.testing.assert_array_equal(t.labels[0], t.whole_cell)
    np.testing.assert_array_equal(t.labels[1], t.nuclear)
    n = int(t.whole_cell.max())
    ids = np.unique(t.whole_cell)
    np.testing.assert_array_equal(ids[ids > 0], np.arange(1, n + 1))       # 1..n, no gaps
    # no reuse: every id is one 4-connected object
    pieces = measure.label(t.whole_cell, background=0, connectivity=1)
    assert pieces.max() == n
    # a nucleus lies inside its own cell, under the same id
    nucleus = t.nuclear > 0
    np.testing.assert_array_equal(t.nuclear[nucleus], t.whole_cell[nucleus])
    assert t.channel_names[:2] == ["DAPI", "membrane"][:n_channels]
    assert t.channel_names[2:] == [f"lineage_{k}" for k in range(1, n_channels - 1)]


# ------------------------------------------------------------------------------ invariants

def test_same_arguments_give_identical_arrays():
    a = synthetic_tissue(96, 130, seed=11)
    b = synthetic_tissue(96, 130, seed=11)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.whole_cell, b.whole_cell)
    np.testing.assert_array_equal(a.nuclear, b.nuclear)
    assert a.channel_names == b.channel_names


def test_different_seeds_differ():
    a = synthetic_tissue(96, 96, seed=1)
    b = synthetic_tissue(96, 96, seed=2)
    assert not np.array_equal(a.whole_cell, b.whole_cell)
    assert not np.array_equal(a.image, b.image)


def test_default_tissue_invariants(tissue):
    assert_ground_truth_invariants(tissue, 512, 512, 4)
    assert tissue.channel_names == ["DAPI", "membrane", "lineage_1", "lineage_2"]


@pytest.mark.parametrize("height, width", [(16, 16), (1, 1), (17, 31), (33, 8), (101, 77)])
def test_odd_and_tiny_sizes(height, width):
    t = synthetic_tissue(height, width, seed=3)
    assert_ground_truth_invariants(t, height, width, 3)


@pytest.mark.parametrize("n_channels", [1, 2, 3, 6])
def test_channel_count_is_honoured(n_channels):
    t = synthetic_tissue(48, 40, n_channels=n_channels, seed=5)
    assert t.image.shape[0] == len(t.channel_names) == n_channels
    assert_ground_truth_invariants(t, 48, 40, n_channels)


@settings(max_examples=25, deadline=None)
@given(height=st.integers(1, 90), width=st.integers(1, 90), seed=st.integers(0, 2**32 - 1),
       n_channels=st.integers(1, 4), mean_diameter=st.floats(5.0, 30.0),
       density=st.floats(0.05, 1.0))
def test_invariants_hold_for_any_arguments(height, width, seed, n_channels, mean_diameter,
                                           density):
    t = synthetic_tissue(height, width, n_channels=n_channels, seed=seed,
                         mean_diameter=mean_diameter, density=density)
    assert_ground_truth_invariants(t, height, width, n_channels)


@pytest.mark.parametrize("kwargs", [dict(height=0, width=10), dict(height=10, width=-1),
                                    dict(height=10, width=10, n_channels=0),
                                    dict(height=10, width=10, density=0.0),
                                    dict(height=10, width=10, density=1.5),
                                    dict(height=10, width=10, mean_diameter=1.0)])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        synthetic_tissue(**kwargs)


# -------------------------------------------------------------------------- realism: labels

def test_nuclei_are_strictly_inside_their_cells(tissue):
    """No nuclear pixel sits on its cell's outline (unless the image edge cuts the cell)."""
    wc = np.pad(tissue.whole_cell, 1, mode="edge")   # the image edge does not count as outline
    nucleus = tissue.nuclear > 0
    centre = wc[1:-1, 1:-1]
    for neighbour in (wc[:-2, 1:-1], wc[2:, 1:-1], wc[1:-1, :-2], wc[1:-1, 2:]):
        assert (neighbour[nucleus] == centre[nucleus]).all()


def test_some_cells_have_no_nucleus(tissue):
    cells = interior_ids(tissue.whole_cell)
    with_nucleus = np.isin(cells, np.unique(tissue.nuclear))
    fraction_without = 1.0 - with_nucleus.mean()
    assert 0.03 <= fraction_without <= 0.3


def test_most_nuclei_are_single_objects(tissue):
    pieces = measure.label(tissue.nuclear, background=0, connectivity=1)
    n_nuclei = np.unique(tissue.nuclear).size - 1
    assert pieces.max() <= n_nuclei * 1.02


def test_cell_areas_vary_more_than_tenfold(tissue):
    areas = np.bincount(tissue.whole_cell.ravel())[interior_ids(tissue.whole_cell)]
    assert areas.max() >= 10 * areas.min()
    # and not only through a few outliers: the middle 80 % still spans a wide range
    assert np.percentile(areas, 90) >= 2.5 * np.percentile(areas, 10)


def test_touching_cells_exist(tissue):
    wc = tissue.whole_cell
    horizontal = (wc[:, :-1] > 0) & (wc[:, 1:] > 0) & (wc[:, :-1] != wc[:, 1:])
    vertical = (wc[:-1] > 0) & (wc[1:] > 0) & (wc[:-1] != wc[1:])
    touching_pairs = {tuple(p) for p in np.column_stack([wc[:, :-1][horizontal],
                                                         wc[:, 1:][horizontal]])}
    touching_pairs |= {tuple(p) for p in np.column_stack([wc[:-1][vertical], wc[1:][vertical]])}
    assert len(touching_pairs) >= 0.5 * wc.max()


def test_background_gaps_exist_and_density_is_roughly_honoured(tissue):
    covered = (tissue.whole_cell > 0).mean()
    assert 0.55 <= covered <= 0.95
    sparse = synthetic_tissue(512, 512, seed=7, density=0.3)
    assert (sparse.whole_cell > 0).mean() < covered - 0.2


def test_shapes_vary(tissue):
    inside = set(interior_ids(tissue.whole_cell).tolist())
    props = [p for p in measure.regionprops(tissue.whole_cell)
             if p.label in inside and p.area >= 60]
    elongation = np.array([p.axis_major_length / max(p.axis_minor_length, 1e-6) for p in props])
    solidity = np.array([p.solidity for p in props])
    # Bounds sit between what this tissue shows and what a Voronoi of round cells gives.
    assert (elongation < 1.3).sum() >= 0.05 * len(props)      # round
    assert (elongation > 2.0).sum() >= 0.1 * len(props)       # elongated
    assert (solidity < 0.8).sum() >= 0.035 * len(props)       # concave


def test_mean_diameter_sets_the_cell_size():
    small = synthetic_tissue(384, 384, seed=2, mean_diameter=10.0)
    large = synthetic_tissue(384, 384, seed=2, mean_diameter=30.0)
    median_area = lambda t: np.median(np.bincount(t.whole_cell.ravel())[interior_ids(t.whole_cell)])  # noqa: E731
    assert median_area(large) > 4 * median_area(small)


# --------------------------------------------------------------------------- realism: image

def test_dapi_is_bright_in_nuclei(tissue):
    dapi = tissue.image[0].astype(float)
    nuclei = tissue.nuclear > 0
    cytoplasm = (tissue.whole_cell > 0) & ~ndimage.binary_dilation(nuclei, iterations=2)
    assert np.median(dapi[nuclei]) > 2 * np.median(dapi[cytoplasm])


def test_membrane_is_bright_at_borders_and_dim_inside(tissue):
    membrane = tissue.image[1].astype(float)
    wc = tissue.whole_cell
    borders = (ndimage.grey_dilation(wc, size=3) != ndimage.grey_erosion(wc, size=3)) & (wc > 0)
    interior = ndimage.binary_erosion(wc > 0, iterations=3) & ~ndimage.binary_dilation(
        borders, iterations=3)
    assert np.median(membrane[borders]) > 1.5 * np.median(membrane[interior])


def test_lineage_markers_light_a_subset_of_cells(tissue):
    background = np.median(tissue.image[2][tissue.whole_cell == 0])
    for channel in tissue.image[2:]:
        means, _ = per_cell_mean(channel, tissue.whole_cell,
                                 ndimage.binary_erosion(tissue.whole_cell > 0, iterations=2))
        negative = means - background < 0.1 * (np.percentile(means, 99) - background)
        assert 0.2 < negative.mean() < 0.95      # positive cells are a subset, not all cells


def test_some_cells_are_dim(tissue):
    means, _ = per_cell_mean(tissue.image[0], tissue.nuclear)
    assert (means < 0.3 * np.median(means)).mean() > 0.03


def test_image_is_noisy_and_background_uneven(tissue):
    image = tissue.image.astype(float)
    far_from_cells = ~ndimage.binary_dilation(tissue.whole_cell > 0, iterations=6)
    for channel in image:
        # noise: neighbouring background pixels differ
        diffs = np.abs(np.diff(channel, axis=1))[far_from_cells[:, 1:] & far_from_cells[:, :-1]]
        assert np.median(diffs) > 2
    halves = [far_from_cells[:, :256], far_from_cells[:, 256:], far_from_cells[:256],
              far_from_cells[256:]]
    channel = image[1]
    means = [np.median(channel[:, :256][halves[0]]), np.median(channel[:, 256:][halves[1]]),
             np.median(channel[:256][halves[2]]), np.median(channel[256:][halves[3]])]
    assert max(means) > 1.05 * min(means)


def test_image_uses_the_uint16_range_without_saturating(tissue):
    assert tissue.image.max() > 2000
    assert (tissue.image == 65535).mean() < 0.001
