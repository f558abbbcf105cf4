"""Tests for backend.core.labels: threshold, watershed split, autofit, relabelling, QC rules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from backend.core.labels import (
    MIN_CELL_AREA_PX,
    LabelToolError,
    autofit,
    changed_box,
    image_passes_qc,
    relabel_sequential,
    remove_small_objects_labels,
    split_cell,
    threshold_box,
    threshold_levels,
    watershed_split,
)

EIGHT = np.ones((3, 3), dtype=bool)
INT32_MAX = int(np.iinfo(np.int32).max)


# ------------------------------------------------------------------ builders

def disk_mask(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def noisy(image: np.ndarray, sd: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0.0, sd, image.shape), 0, 255).astype(np.uint8)


def is_connected(mask: np.ndarray) -> bool:
    return ndi.label(mask, structure=EIGHT)[1] == 1


def band_around(mask: np.ndarray, band: int) -> np.ndarray:
    return ndi.distance_transform_edt(~mask) <= band


@st.composite
def label_boxes(draw, min_target_px: int = 1):
    """A random (image uint8, labels int32, target id) box made of overlapping rectangles."""
    h, w = draw(st.integers(4, 30)), draw(st.integers(4, 30))
    labels = np.zeros((h, w), dtype=np.int32)
    for k in range(draw(st.integers(1, 6))):
        y0, x0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        y1, x1 = draw(st.integers(y0 + 1, h)), draw(st.integers(x0 + 1, w))
        labels[y0:y1, x0:x1] = draw(st.sampled_from([k + 1, 1000 + k, INT32_MAX - k]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["noise", "blocks", "flat", "cells"]))
    if kind == "noise":
        image = rng.integers(0, 256, (h, w))
    elif kind == "blocks":
        image = np.kron(rng.integers(0, 256, (h // 3 + 1, w // 3 + 1)), np.ones((3, 3)))[:h, :w]
    elif kind == "flat":
        image = np.full((h, w), draw(st.integers(0, 255)))
    else:
        image = np.where(labels > 0, 180, 30) + rng.integers(-20, 21, (h, w))
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    candidates = [int(i) for i, c in zip(ids, counts) if c >= min_target_px]
    assume(candidates)
    target = draw(st.sampled_from(candidates))
    return np.clip(image, 0, 255).astype(np.uint8), labels, target


# ------------------------------------------------------------------ watershed split

def touching_disks(shape=(60, 80)):
    left, right = disk_mask(shape, 30, 25, 12), disk_mask(shape, 30, 47, 12)
    labels = np.zeros(shape, dtype=np.int32)
    labels[left | right] = 3
    labels[:4, :6] = 9                       # unrelated neighbours
    labels[50:, 70:] = 11
    return left, right, labels


@pytest.mark.parametrize("kind", ["uniform", "bright_centres", "noisy"])
def test_split_touching_disks_gives_back_the_two_disks(kind):
    left, right, labels = touching_disks()
    yy, xx = np.mgrid[:60, :80]
    if kind == "uniform":
        image = np.where(left | right, 200, 10).astype(np.uint8)
    elif kind == "bright_centres":
        peaks = [np.exp(-((yy - 30) ** 2 + (xx - cx) ** 2) / 150.0) for cx in (25, 47)]
        image = (250 * np.maximum(*peaks)).astype(np.uint8)
    else:
        image = noisy(np.where(left | right, 180.0, 20.0), 25)
    before = labels.copy()
    out = watershed_split(image, labels, 3, [(30, 25), (30, 47)], [12])

    assert out.dtype == np.int32 and out.shape == labels.shape
    assert np.array_equal(labels, before)                       # input untouched
    assert iou(out == 3, left) >= 0.95
    assert iou(out == 12, right) >= 0.95
    cell = before == 3
    assert np.array_equal(out[~cell], before[~cell])             # nothing else changes
    assert np.array_equal((out == 3) | (out == 12), cell)       # pieces cover the cell exactly
    assert is_connected(out == 3) and is_connected(out == 12)


def two_cells_in_a_strip(gap: str):
    """A 21 x 45 strip: cell A (30 px wide) and cell B (15 px) labelled as one, no neck."""
    shape = (40, 60)
    labels = np.zeros(shape, dtype=np.int32)
    labels[10:31, 5:50] = 4
    a = np.zeros(shape, dtype=bool)
    a[10:31, 5:35] = True
    b = np.zeros(shape, dtype=bool)
    b[10:31, 36:50] = True                  # column 35 is the border: either side is right
    image = np.zeros(shape)
    if gap == "dark":                       # bright-bodied cells with a dark gap (nuclear stain)
        image[10:31, 5:50] = 200
        image[10:31, 35] = 40
    else:                                   # dim interiors with bright outlines (membrane stain)
        image[10:31, 5:50] = 60
        image[[10, 30], 5:50] = 220
        image[10:31, [5, 35, 49]] = 220
    return noisy(image, 5, seed=3), labels, a, b


@pytest.mark.parametrize("gap", ["dark", "bright"])
def test_split_follows_the_intensity_border_where_shape_cannot_tell(gap):
    image, labels, a, b = two_cells_in_a_strip(gap)
    out = watershed_split(image, labels, 4, [(20, 20), (20, 42)], [9])
    border = np.zeros_like(a)
    border[:, 35] = True
    assert iou((out == 4) & ~border, a) >= 0.95
    assert iou((out == 9) & ~border, b) >= 0.95


def test_split_three_seeds_assigns_new_ids_in_seed_order():
    shape = (40, 100)
    disks = [disk_mask(shape, 20, cx, 10) for cx in (18, 37, 56)]
    labels = np.zeros(shape, dtype=np.int64)                    # any integer dtype is accepted
    labels[disks[0] | disks[1] | disks[2]] = 5
    image = np.where(labels > 0, 200, 0).astype(np.uint8)
    out = watershed_split(image, labels, 5, [(20, 37), (20, 18), (20, 56)], [6, 7])
    assert out.dtype == np.int32
    assert iou(out == 5, disks[1]) >= 0.95
    assert iou(out == 6, disks[0]) >= 0.95
    assert iou(out == 7, disks[2]) >= 0.95


def test_split_gives_unseeded_parts_of_the_cell_to_the_nearest_piece():
    labels = np.zeros((20, 40), dtype=np.int32)
    labels[5:10, 2:8] = 2       # seeded
    labels[5:10, 30:36] = 2     # seeded
    labels[12:15, 33:36] = 2    # not seeded, nearest to the right part
    image = np.full(labels.shape, 100, dtype=np.uint8)
    out = watershed_split(image, labels, 2, [(7, 4), (7, 33)], [3])
    assert (out[5:10, 2:8] == 2).all()
    assert (out[5:10, 30:36] == 3).all() and (out[12:15, 33:36] == 3).all()
    assert np.array_equal(out > 0, labels > 0)


@pytest.mark.parametrize("kind", ["bright_centre", "uniform", "membrane"])
@pytest.mark.parametrize("second", [(30, 37), (24, 27), (36, 25)])  # inside the membrane ring too
def test_two_seeds_in_one_round_cell_cut_it_halfway_instead_of_leaving_a_crumb(kind, second):
    cell = disk_mask((60, 60), 30, 30, 12)
    yy, xx = np.mgrid[:60, :60]
    if kind == "bright_centre":
        image = (240 * np.exp(-((yy - 30) ** 2 + (xx - 30) ** 2) / 120.0)).astype(np.uint8)
    elif kind == "uniform":
        image = np.where(cell, 200, 10).astype(np.uint8)
    else:
        image = np.where(cell & ~disk_mask((60, 60), 30, 30, 10), 230, 40).astype(np.uint8)
    labels = np.where(cell, 4, 0).astype(np.int32)
    seeds = [(30, 30), second]
    out, halfway = split_cell(image, labels, 4, seeds, [5])
    assert halfway
    gap = np.hypot(yy - second[0], xx - second[1]) - np.hypot(yy - 30, xx - 30)
    clear = cell & (np.abs(gap) >= 1)                # pixels clearly nearer one seed than the other
    assert ((out == 4) == (gap > 0))[clear].all(), "each pixel goes to the seed it is nearer to"
    assert min((out == 4).sum(), (out == 5).sum()) >= MIN_CELL_AREA_PX
    assert is_connected(out == 4) and is_connected(out == 5)
    assert np.array_equal(out > 0, cell) and np.array_equal(watershed_split(image, labels, 4, seeds, [5]), out)


def test_seeds_in_two_merged_cells_keep_the_watershed_border():
    left, right, labels = touching_disks()
    image = np.where(left | right, 200, 10).astype(np.uint8)
    out, halfway = split_cell(image, labels, 3, [(30, 25), (30, 47)], [12])
    assert not halfway and iou(out == 12, right) >= 0.95


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(box=label_boxes(min_target_px=2), data=st.data())
def test_split_changes_only_the_target_cell(box, data):
    image, labels, target = box
    cell = labels == target
    pixels = np.argwhere(cell)
    picks = data.draw(st.lists(st.integers(0, len(pixels) - 1), min_size=2,
                               max_size=min(4, len(pixels)), unique=True))
    seeds = [tuple(int(v) for v in pixels[i]) for i in picks]
    fresh = [v for v in range(1, 10) if v not in labels][: len(seeds) - 1]
    out = watershed_split(image, labels, target, seeds, fresh)
    assert np.array_equal(out[~cell], labels[~cell])
    assert np.isin(out[cell], [target, *fresh]).all()
    for seed, piece_id in zip(seeds, [target, *fresh]):
        assert out[seed] == piece_id


def split_error_cases():
    labels = np.zeros((10, 10), dtype=np.int32)
    labels[2:8, 2:8] = 1
    labels[0, 0] = 2
    image = np.zeros((10, 10), dtype=np.uint8)
    ok = dict(image=image, labels=labels, label=1, seeds=[(3, 3), (6, 6)], new_ids=[3])
    return ok, [
        ("one seed", dict(seeds=[(3, 3)], new_ids=[])),
        ("no seeds", dict(seeds=[], new_ids=[])),
        ("seed on background", dict(seeds=[(3, 3), (9, 9)])),
        ("seed on another cell", dict(seeds=[(3, 3), (0, 0)])),
        ("seed outside the box", dict(seeds=[(3, 3), (10, 4)])),
        ("negative seed", dict(seeds=[(3, 3), (-1, 4)])),
        ("fractional seed", dict(seeds=[(3, 3), (4.5, 4)])),
        ("seed not a pair", dict(seeds=[(3, 3), (4, 4, 4)])),
        ("seeds not a list", dict(seeds=5)),
        ("repeated seed", dict(seeds=[(3, 3), (3, 3)])),
        ("too few new ids", dict(new_ids=[])),
        ("new ids not a list", dict(new_ids=3)),
        ("too many new ids", dict(new_ids=[3, 4])),
        ("new id equals label", dict(new_ids=[1])),
        ("new id already in box", dict(new_ids=[2])),
        ("new id zero", dict(new_ids=[0])),
        ("new id too large", dict(new_ids=[INT32_MAX + 1])),
        ("label absent", dict(label=5)),
        ("label zero", dict(label=0)),
        ("label negative", dict(label=-1)),
        ("label bool", dict(label=True)),
        ("label fractional", dict(label=1.5)),
        ("shapes differ", dict(image=np.zeros((10, 11), dtype=np.uint8))),
        ("3-D image", dict(image=np.zeros((1, 10, 10), dtype=np.uint8))),
        ("float labels", dict(labels=labels.astype(np.float32))),
        ("bool labels", dict(labels=labels > 0)),
        ("negative ids", dict(labels=np.where(labels == 2, -2, labels))),
        ("ids beyond int32", dict(labels=np.where(labels == 2, 2**31, labels).astype(np.int64))),
        ("NaN image", dict(image=np.full((10, 10), np.nan))),
        ("complex image", dict(image=np.zeros((10, 10), dtype=complex))),
    ]


def test_split_valid_reference_case_runs():
    ok, _ = split_error_cases()
    out = watershed_split(**ok)
    assert set(np.unique(out)) == {0, 1, 2, 3}


@pytest.mark.parametrize("case", [c[0] for c in split_error_cases()[1]])
def test_split_rejects_bad_input(case):
    ok, cases = split_error_cases()
    with pytest.raises(LabelToolError):
        watershed_split(**{**ok, **dict(cases)[case]})


def test_label_tool_error_is_a_value_error_with_a_useful_message():
    ok, _ = split_error_cases()
    with pytest.raises(ValueError, match="inside one cell"):
        watershed_split(**{**ok, "seeds": [(3, 3), (9, 9)]})


# ------------------------------------------------------------------ threshold

def test_threshold_bright_square_on_dark_gives_exactly_the_square():
    image = np.zeros((40, 40), dtype=np.uint8)
    image[8:20, 10:25] = 200
    labels = np.zeros((40, 40), dtype=np.int32)
    out = threshold_box(image, labels, 7)
    assert out.dtype == np.int32
    assert np.array_equal(out == 7, image > 0)
    assert np.array_equal(out[out != 7], labels[out != 7])


def test_threshold_never_overwrites_a_neighbour():
    image = np.zeros((40, 40), dtype=np.uint8)
    image[8:20, 10:25] = 200
    labels = np.zeros((40, 40), dtype=np.int32)
    labels[5:15, 20:30] = 4                       # overlaps the square's right part
    out = threshold_box(image, labels, 7)
    assert np.array_equal(out == 4, labels == 4)
    assert np.array_equal(out == 7, (image > 0) & (labels != 4))


def test_threshold_does_not_bridge_through_another_cell():
    image = np.zeros((20, 40), dtype=np.uint8)
    image[5:15, 2:30] = 200
    image[5:15, 30:38] = 120                     # dimmer, reachable only across cell 4
    labels = np.zeros((20, 40), dtype=np.int32)
    labels[:, 28:30] = 4
    out = threshold_box(image, labels, 7, low=100, high=150)
    expected = np.zeros_like(labels, dtype=bool)
    expected[5:15, 2:28] = True
    assert np.array_equal(out == 7, expected)


def test_threshold_keeps_the_largest_piece_only():
    image = np.zeros((40, 40), dtype=np.uint8)
    image[2:12, 2:12] = 200                      # 100 px
    image[25:30, 25:30] = 200                    # 25 px
    out = threshold_box(image, np.zeros((40, 40), dtype=np.int32), 3)
    assert np.array_equal(out == 3, np.pad(np.ones((10, 10), bool), ((2, 28), (2, 28))))


def test_threshold_also_keeps_pieces_touching_the_cell_and_only_adds():
    image = np.zeros((40, 40), dtype=np.uint8)
    image[2:12, 2:12] = 200
    image[25:30, 25:30] = 200
    labels = np.zeros((40, 40), dtype=np.int32)
    labels[30:33, 25:28] = 3                     # dark pixels of cell 3, touching the small square
    out = threshold_box(image, labels, 3)
    expected = (image > 0) | (labels == 3)
    assert np.array_equal(out == 3, expected)


def test_threshold_fills_holes_but_not_around_other_cells():
    image = np.zeros((50, 50), dtype=np.uint8)
    ring = disk_mask((50, 50), 25, 25, 15) & ~disk_mask((50, 50), 25, 25, 8)
    image[ring] = 200
    labels = np.zeros((50, 50), dtype=np.int32)
    out = threshold_box(image, labels, 1)
    assert np.array_equal(out == 1, disk_mask((50, 50), 25, 25, 15))

    labels[24:27, 24:27] = 6                     # another cell inside the hole
    out = threshold_box(image, labels, 1)
    assert np.array_equal(out == 1, ring)
    assert np.array_equal(out == 6, labels == 6)


def test_threshold_explicit_levels_apply_hysteresis():
    row = np.array([0, 50, 120, 50, 0, 60, 0, 90, 95, 0], dtype=np.uint8)
    image = np.tile(row, (3, 1))
    out = threshold_box(image, np.zeros(image.shape, dtype=np.int32), 2, low=40, high=100)
    # 50,120,50 (connected to >100) are in; 60 and 90,95 never reach 100
    assert np.array_equal(out[0] == 2, np.isin(np.arange(10), [1, 2, 3]))
    # equal levels degenerate to a plain threshold (strictly above)
    out = threshold_box(image, np.zeros(image.shape, dtype=np.int32), 2, low=89, high=89)
    assert np.array_equal(out[0] == 2, np.isin(np.arange(10), [7, 8]))


def test_threshold_levels_are_otsu_by_default_or_the_given_level_and_threshold_uses_them():
    image = np.full((20, 20), 30, dtype=np.uint8)
    image[5:15, 5:15] = 160
    image[8:12, 8:12] = 220
    low, high = threshold_levels(image)
    assert 30 <= high < 160 and low == 30 + 0.5 * (high - 30)
    low, high = threshold_levels(image, high=180)
    assert (low, high) == (105.0, 180.0)
    out = threshold_box(image, np.zeros(image.shape, dtype=np.int32), 1, low=low, high=high)
    assert np.array_equal(out == 1, image > 105)
    with pytest.raises(LabelToolError, match="lower the level"):
        threshold_box(image, np.zeros(image.shape, dtype=np.int32), 1, high=230)
    with pytest.raises(LabelToolError, match="finite number"):
        threshold_levels(image, high=float("inf"))


@pytest.mark.parametrize("kwargs", [
    dict(image=np.full((8, 8), 30, dtype=np.uint8)),         # uniform, no levels given
    dict(low=100, high=50),
    dict(high=250),                                            # nothing that bright
    dict(high=float("nan")),
    dict(low="dim"),
    dict(label=0),
    dict(labels=np.zeros((8, 9), dtype=np.int32)),
    dict(labels=np.zeros((8, 8), dtype=np.float64)),
    dict(image=np.zeros((0, 0), dtype=np.uint8), labels=np.zeros((0, 0), dtype=np.int32)),
])
def test_threshold_rejects_bad_input(kwargs):
    image = np.zeros((8, 8), dtype=np.uint8)
    image[2:5, 2:5] = 200
    args = dict(image=image, labels=np.zeros((8, 8), dtype=np.int32), label=1) | kwargs
    with pytest.raises(LabelToolError):
        threshold_box(args.pop("image"), args.pop("labels"), args.pop("label"), **args)


@settings(max_examples=150, deadline=None)
@given(box=label_boxes(), new_cell=st.booleans())
def test_threshold_only_adds_background_pixels_to_the_cell(box, new_cell):
    image, labels, target = box
    if new_cell:
        target = next(v for v in range(1, 100) if v not in labels)
    try:
        out = threshold_box(image, labels, target)
    except LabelToolError:
        return
    changed = out != labels
    assert (labels[changed] == 0).all() and (out[changed] == target).all()
    assert (out[labels == target] == target).all()


# ------------------------------------------------------------------ autofit

def eroded_disk_scene(sd: float):
    shape = (60, 60)
    cell = disk_mask(shape, 30, 28, 12)
    image = noisy(np.where(cell, 200.0, 20.0), sd, seed=5)
    labels = np.zeros(shape, dtype=np.int32)
    labels[disk_mask(shape, 30, 28, 9)] = 2                  # the disk eroded by 3 px
    labels[:, 43:] = 7                                         # a neighbour 3 px beyond the disk
    return image, labels, cell


@pytest.mark.parametrize("sd", [0.0, 15.0])
def test_autofit_grows_an_eroded_disk_back_to_the_bright_disk(sd):
    image, labels, cell = eroded_disk_scene(sd)
    out = autofit(image, labels, 2)
    assert iou(out == 2, cell) >= 0.9
    assert np.array_equal(out == 7, labels == 7)
    assert is_connected(out == 2)


def test_autofit_shrinks_an_oversized_mask_to_the_bright_disk():
    shape = (60, 60)
    cell = disk_mask(shape, 30, 30, 12)
    image = noisy(np.where(cell, 200.0, 20.0), 10)
    labels = np.zeros(shape, dtype=np.int32)
    labels[disk_mask(shape, 30, 30, 16)] = 2
    out = autofit(image, labels, 2)
    assert iou(out == 2, cell) >= 0.9


def test_autofit_never_grows_onto_a_bright_neighbour():
    shape = (60, 60)
    image = np.zeros(shape, dtype=np.uint8)
    image[10:50, 10:50] = 200                                  # one bright block
    labels = np.zeros(shape, dtype=np.int32)
    labels[15:45, 15:28] = 2                                   # left part, 5 px short of the block
    labels[10:50, 30:50] = 8                                   # right part belongs to cell 8
    out = autofit(image, labels, 2)
    assert np.array_equal(out == 8, labels == 8)
    assert (out[labels == 2] == 2).all()
    assert (out == 2).sum() > (labels == 2).sum()              # it did grow into the background


def test_autofit_keeps_the_cell_one_piece():
    shape = (50, 50)
    image = np.zeros(shape, dtype=np.uint8)
    image[15:35, 15:35] = 200
    image[15:35, 38:41] = 200                                  # a separate bright bar in the band
    labels = np.zeros(shape, dtype=np.int32)
    labels[17:33, 17:33] = 4
    out = autofit(image, labels, 4)
    assert is_connected(out == 4)
    square = np.zeros(shape, dtype=bool)
    square[15:35, 15:35] = True
    assert iou(out == 4, square) >= 0.9
    assert not (out[:, 38:41] == 4).any()


def test_autofit_keeps_the_original_when_the_fit_would_delete_the_cell():
    labels = np.zeros((20, 20), dtype=np.int32)
    labels[8:10, 8:10] = 3                     # 2 x 2: curvature smoothing cannot keep it
    labels[0:3, 0:3] = 1
    image = np.full((20, 20), 100, dtype=np.uint8)
    out = autofit(image, labels, 3)
    assert np.array_equal(out, labels)


@settings(max_examples=150, deadline=None)
@given(box=label_boxes(), band=st.integers(1, 6), iterations=st.integers(1, 25))
def test_autofit_changes_nothing_outside_its_band_and_no_other_cell(box, band, iterations):
    image, labels, target = box
    cell = labels == target
    out = autofit(image, labels, target, iterations=iterations, band=band)
    outside = ~band_around(cell, band)
    assert np.array_equal(out[outside], labels[outside])
    others = (labels != target) & (labels != 0)
    assert np.array_equal(out[others], labels[others])
    changed = out != labels
    assert np.isin(out[changed], [0, target]).all()
    result = out == target
    assert result.any()
    assert is_connected(result) or np.array_equal(result, cell)


@pytest.mark.parametrize("kwargs", [
    dict(label=4), dict(label=0), dict(iterations=0), dict(iterations=True), dict(iterations=2.5),
    dict(iterations=10_000), dict(band=0), dict(band=-3),
    dict(labels=np.ones((6, 6), dtype=np.int32)), dict(image=np.ones((6, 5), dtype=np.uint8)),
])
def test_autofit_rejects_bad_input(kwargs):
    labels = np.zeros((5, 5), dtype=np.int32)
    labels[1:4, 1:4] = 1
    args = dict(image=np.zeros((5, 5), dtype=np.uint8), labels=labels, label=1) | kwargs
    with pytest.raises(LabelToolError):
        autofit(args.pop("image"), args.pop("labels"), args.pop("label"), **args)


# ------------------------------------------------------------------ relabel and QC

def test_relabel_sequential_keeps_the_order_of_ids():
    labels = np.array([[0, 7, 7], [3, 0, 100], [INT32_MAX, 3, 0]], dtype=np.int64)
    out = relabel_sequential(labels)
    assert out.dtype == np.int32
    assert np.array_equal(out, [[0, 2, 2], [1, 0, 3], [4, 1, 0]])


def test_relabel_sequential_renumbers_each_feature_of_a_stack():
    stack = np.array([[[0, 5], [9, 9]], [[4, 0], [0, 2]]], dtype=np.int32)
    assert np.array_equal(relabel_sequential(stack), [[[0, 1], [2, 2]], [[2, 0], [0, 1]]])
    assert np.array_equal(relabel_sequential(np.zeros((3, 3), np.int32)), np.zeros((3, 3)))


@settings(max_examples=100, deadline=None)
@given(box=label_boxes())
def test_relabel_sequential_is_an_order_preserving_bijection(box):
    _, labels, _ = box
    out = relabel_sequential(labels)
    old = np.unique(labels[labels > 0])
    assert np.array_equal(np.unique(out[out > 0]), np.arange(1, len(old) + 1))
    assert np.array_equal(out == 0, labels == 0)
    cells = labels > 0
    pairs = np.unique(np.stack([labels[cells], out[cells]]), axis=1)
    assert np.array_equal(pairs[0], old)                         # one new id per old id,
    assert np.array_equal(pairs[1], np.arange(1, len(old) + 1))  # in the order of the old ids


def test_remove_small_objects_drops_cells_under_15_px_and_keeps_ids():
    labels = np.zeros((20, 20), dtype=np.int32)
    labels[0, 0:14] = 4                         # 14 px: dropped
    labels[2, 0:15] = 9                         # 15 px: kept
    labels[5, 0:3] = 2
    labels[15, 17:20] = 2                       # 6 px in two parts: dropped
    labels[10:15, 10:15] = 6                    # 25 px: kept
    out = remove_small_objects_labels(labels)
    expected = labels.copy()
    expected[np.isin(labels, [4, 2])] = 0
    assert out.dtype == np.int32 and np.array_equal(out, expected)
    assert np.array_equal(remove_small_objects_labels(labels, min_size=0), labels)
    stack = remove_small_objects_labels(np.stack([labels, labels.T]))
    assert np.array_equal(stack, np.stack([expected, expected.T]))


def grid_of_cells(n: int) -> np.ndarray:
    labels = np.zeros((40, 40), dtype=np.int32)
    for k in range(n):
        y, x = divmod(k, 8)
        labels[y * 5: y * 5 + 4, x * 5: x * 5 + 4] = 10 * (k + 1)
    return labels


def test_image_passes_qc_needs_20_cells():
    assert not image_passes_qc(grid_of_cells(19))
    assert image_passes_qc(grid_of_cells(20))
    assert image_passes_qc(grid_of_cells(3), min_cells=3)
    assert not image_passes_qc(np.zeros((5, 5), np.int32), min_cells=1)
    assert image_passes_qc(np.stack([grid_of_cells(25), grid_of_cells(20)]))
    assert not image_passes_qc(np.stack([grid_of_cells(25), grid_of_cells(19)]))


def test_qc_after_removing_small_cells():
    labels = grid_of_cells(20)
    labels[labels == 10] = 0
    labels[0, 0] = 10                             # cell 10 shrinks to 1 px
    assert image_passes_qc(labels)
    assert not image_passes_qc(remove_small_objects_labels(labels))


@pytest.mark.parametrize("call", [
    lambda: relabel_sequential(np.zeros(5, dtype=np.int32)),
    lambda: relabel_sequential(np.zeros((2, 2), dtype=np.float32)),
    lambda: remove_small_objects_labels(np.zeros((2, 2), dtype=np.int32), min_size=-1),
    lambda: remove_small_objects_labels(np.zeros((2, 2, 2, 2), dtype=np.int32)),
    lambda: image_passes_qc(np.zeros((2, 2), dtype=np.int32), min_cells=1.5),
    lambda: changed_box(np.zeros((3, 3)), np.zeros((3, 4))),
    lambda: changed_box(np.zeros(3), np.zeros(3)),
])
def test_relabel_and_qc_reject_bad_input(call):
    with pytest.raises(LabelToolError):
        call()


def test_changed_box_is_tight_and_half_open():
    before = np.zeros((10, 12), dtype=np.int32)
    assert changed_box(before, before.copy()) is None
    after = before.copy()
    after[4, 7] = 1
    assert changed_box(before, after) == (4, 7, 5, 8)
    after[2, 9] = 3
    after[6, 1] = 2
    assert changed_box(before, after) == (2, 1, 7, 10)
    stack_a, stack_b = np.zeros((2, 10, 12), np.int32), np.zeros((2, 10, 12), np.int32)
    stack_b[1, 9, 11] = 5
    assert changed_box(stack_a, stack_b) == (9, 11, 10, 12)
    assert all(type(v) is int for v in changed_box(before, after))


@settings(max_examples=100, deadline=None)
@given(box=label_boxes(min_target_px=2))
def test_changed_box_encloses_exactly_what_a_split_changed(box):
    image, labels, target = box
    pixels = np.argwhere(labels == target)
    seeds = [tuple(pixels[0]), tuple(pixels[-1])]
    fresh = next(v for v in range(1, 100) if v not in labels)
    out = watershed_split(image, labels, target, seeds, [fresh])
    found = changed_box(labels, out)
    diff = np.argwhere(out != labels)
    if len(diff) == 0:
        assert found is None
    else:
        assert found == (diff[:, 0].min(), diff[:, 1].min(), diff[:, 0].max() + 1,
                         diff[:, 1].max() + 1)
