"""Tests for backend.core.stitch: stitch_crops on consistent and inconsistent crops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from skimage.measure import label as connected_label

from backend.core.stitch import StitchResult, stitch_crops
from backend.core.tiling import CropWindow, crop_plan, crop_stack

PROPERTY = settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
INT32_MAX = 2**31 - 1


# ------------------------------------------------------------------ helpers used by the tests


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two label images hold the same cells up to renumbering (0 is background)."""
    a, b = a.ravel().astype(np.int64), b.ravel().astype(np.int64)
    if not np.array_equal(a == 0, b == 0):
        return False
    pairs = np.unique(a * (INT32_MAX + 1) + b)
    return pairs.size == np.unique(a).size == np.unique(b).size


def random_labels(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) int32 label image of 8-connected cells: blocks, noise, diagonal-only contacts."""
    height, width = shape
    scale = int(rng.integers(1, 40))
    values = int(rng.integers(2, 8))
    coarse = rng.integers(0, values, (height // scale + 2, width // scale + 2))
    dy, dx = rng.integers(0, scale, 2)
    image = np.repeat(np.repeat(coarse, scale, 0), scale, 1)[dy : dy + height, dx : dx + width]
    noise = rng.random(shape) < rng.choice([0.0, 0.01, 0.2])
    image = np.where(noise, rng.integers(0, values, shape), image)
    return connected_label(image, background=0, connectivity=2).astype(np.int32)


def renumbered(labels: np.ndarray, rng: np.random.Generator, high: int) -> np.ndarray:
    """``labels`` with its non-zero ids replaced by distinct random ids in 1..high."""
    ids, inverse = np.unique(labels, return_inverse=True)
    new = rng.choice(np.arange(1, high + 1), ids.size, replace=False) if high < 10**6 else (
        np.unique(rng.integers(1, high + 1, 3 * ids.size + 8))[: ids.size]
    )
    new = rng.permutation(new).astype(np.int32)
    new[ids == 0] = 0
    return new[inverse.reshape(labels.shape)]


def renumber_crops(crops, rng, high):
    """Each (F, h, w) crop renumbered independently, feature by feature."""
    return [np.stack([renumbered(c, rng, max(high, c.size)) for c in crop]) for crop in crops]


@st.composite
def plan_cases(draw, max_h=700, max_w=900, max_crops_per_axis=10):
    """(H, W, crop_size, overlap) with at most ~max_crops_per_axis crops along each axis."""
    height = draw(st.integers(1, max_h))
    width = draw(st.integers(1, max_w))
    min_stride = max(1, math.ceil(max(height, width) / max_crops_per_axis))
    low = max(2, min_stride + 1)
    crop = draw(
        st.one_of(
            st.integers(low, max(low, 64)),
            st.sampled_from(sorted({max(low, height), max(low, width)})),
            st.integers(max(height, width), max(height, width) + 50).map(lambda c: max(c, low)),
        )
    )
    overlap = draw(st.integers(1, max(1, crop - min_stride)))
    return height, width, crop, overlap


# ------------------------------------------------------------------ stitch: consistent crops


@PROPERTY
@given(case=plan_cases(), seed=st.integers(0, 2**32 - 1), features=st.integers(1, 2))
def test_stitch_of_renumbered_crops_reconstructs_the_image(case, seed, features):
    height, width, crop, overlap = case
    rng = np.random.default_rng(seed)
    truth = np.stack([random_labels(rng, (height, width)) for _ in range(features)])
    plan = crop_plan((height, width), crop, overlap)
    high = int(rng.choice([0, 70_000, INT32_MAX]))  # compact, above uint16, int32 edge
    crops = renumber_crops(crop_stack(truth, plan), rng, high)
    order = rng.permutation(len(plan))  # the plan may come back in any order
    result = stitch_crops([plan[i] for i in order], [crops[i] for i in order], (height, width))

    assert isinstance(result, StitchResult)
    assert result.labels.shape == truth.shape and result.labels.dtype == np.int32
    assert result.conflicts.shape == truth.shape and result.conflicts.dtype == bool
    for f in range(features):
        assert same_partition(result.labels[f], truth[f])
        n = np.unique(truth[f][truth[f] > 0]).size
        assert result.n_cells[f] == n
        assert set(np.unique(result.labels[f])) - {0} == set(range(1, n + 1))  # compact
    assert result.n_conflict_pixels == 0 and not result.conflicts.any()


@st.composite
def uneven_axes(draw, length):
    """Sorted (start, end) intervals tiling [0, length), each overlapping the next by >= 1 px."""
    n = draw(st.integers(1, max(1, min(5, length - 1))))
    inner = st.sets(st.integers(1, length - 2), min_size=n - 1, max_size=n - 1)
    starts = [0] + sorted(draw(inner))
    ends = [length]
    for i in range(len(starts) - 2, -1, -1):  # each end inside the next crop, before its end
        ends.insert(0, draw(st.integers(starts[i + 1] + 1, ends[0] - 1)))
    return list(zip(starts, ends))


@PROPERTY
@given(
    data=st.data(), height=st.integers(3, 80), width=st.integers(3, 80),
    seed=st.integers(0, 2**32 - 1),
)
def test_uneven_grids_of_unequal_crops_reconstruct_the_image(data, height, width, seed):
    rows, cols = data.draw(uneven_axes(height)), data.draw(uneven_axes(width))
    plan = [CropWindow(y0, x0, y1, x1) for y0, y1 in rows for x0, x1 in cols]
    rng = np.random.default_rng(seed)
    truth = random_labels(rng, (height, width))
    crops = renumber_crops(crop_stack(truth[None], plan), rng, 0)
    crops[0] = crops[0].astype(np.uint16)  # crops of several dtypes
    result = stitch_crops(plan[::-1], crops[::-1], (height, width))
    assert same_partition(result.labels[0], truth)
    assert result.n_conflict_pixels == 0


def test_cells_at_four_crop_corners_come_back_as_one_id():
    # 3 x 3 crops of 30 px with overlap 6: corners where four crops meet at (24..30, 24..30)
    # and (48..54, ...). Discs centred on every corner, plus a ring of cells around them.
    height = width = 78
    plan = crop_plan((height, width), 30, 6)
    assert len(plan) == 9
    yy, xx = np.mgrid[:height, :width]
    truth = (yy // 9) * 20 + (xx // 9) + 1  # 9 x 9 blocks, many crossing crop borders
    corners = [(27, 27), (27, 51), (51, 27), (51, 51)]
    for n, (cy, cx) in enumerate(corners):
        truth[(yy - cy) ** 2 + (xx - cx) ** 2 <= 36] = 1000 + n
    truth = connected_label(truth, connectivity=2).astype(np.int32)
    rng = np.random.default_rng(4)
    crops = renumber_crops(crop_stack(truth[None], plan), rng, 10**5)
    result = stitch_crops(plan, crops, (height, width))
    assert same_partition(result.labels[0], truth)
    for cy, cx in corners:
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= 36
        assert np.unique(result.labels[0][disc]).size == 1


def test_cells_touching_a_corner_only_diagonally_stay_one_cell():
    # a staircase cell that crosses the corner of four crops through diagonal steps only
    plan = crop_plan((20, 20), 12, 4)
    truth = np.zeros((20, 20), np.int32)
    idx = np.arange(20)
    truth[idx, idx] = 7  # 8-connected only: each step is diagonal
    truth[0, 19] = 3
    result = stitch_crops(plan, crop_stack(truth[None], plan), (20, 20))
    assert same_partition(result.labels[0], truth)
    assert np.unique(result.labels[0][idx, idx]).size == 1


def test_large_int32_ids_do_not_overflow():
    truth = np.zeros((1, 60, 60), np.int32)
    truth[0, 5:55, 5:30] = 65_536
    truth[0, 5:55, 30:55] = INT32_MAX
    truth[0, 0, :] = 70_000
    plan = crop_plan((60, 60), 25, 5)
    result = stitch_crops(plan, crop_stack(truth, plan), (60, 60))
    assert same_partition(result.labels[0], truth[0])
    assert result.n_cells == (3,)


def test_other_integer_dtypes_are_accepted():
    truth = random_labels(np.random.default_rng(1), (40, 40)) % 250
    plan = crop_plan((40, 40), 16, 3)
    for dtype in (np.uint8, np.int16, np.uint16, np.uint32, np.int64, np.uint64):
        result = stitch_crops(plan, crop_stack(truth[None].astype(dtype), plan), (40, 40))
        assert result.labels.dtype == np.int32
        assert same_partition(result.labels[0], connected_label(truth, connectivity=2))


def test_single_crop_image_is_compacted_not_changed():
    truth = np.array([[0, 9, 9], [40, 40, 0]], np.int32)
    plan = crop_plan(truth.shape, 270)
    result = stitch_crops(plan, crop_stack(truth[None], plan), truth.shape)
    np.testing.assert_array_equal(result.labels[0], [[0, 1, 1], [2, 2, 0]])


def test_empty_crops_give_an_empty_image():
    plan = crop_plan((50, 40), 20, 4)
    crops = [np.zeros((2, w.height, w.width), np.int32) for w in plan]
    result = stitch_crops(plan, crops, (50, 40))
    assert not result.labels.any() and result.n_cells == (0, 0) and result.n_conflict_pixels == 0


def test_without_overlap_cells_on_a_border_cannot_be_linked():
    truth = np.zeros((1, 10, 20), np.int32)
    truth[0, 2:8, 5:15] = 1
    plan = crop_plan((10, 20), 10, 0)
    result = stitch_crops(plan, crop_stack(truth, plan), (10, 20))
    assert result.n_cells == (2,)  # documented limit: overlap >= 1 px is needed


# ------------------------------------------------------------------ stitch: inconsistent crops
# Two crops side by side: crop A = columns 0..30, crop B = columns 20..50, overlap 20..30,
# ownership cut at column 25 (A owns 0..24, B owns 25..49).


def two_crops(truth: np.ndarray):
    plan = crop_plan(truth.shape, 30, 10)
    assert [(w.x0, w.x1) for w in plan] == [(0, 30), (20, 50)]
    a, b = crop_stack(truth[None], plan)
    return plan, a, b


def cell_image():
    truth = np.zeros((30, 50), np.int32)
    truth[5:25, 10:40] = 1  # crosses the overlap
    truth[26:29, 2:48] = 2  # a thin neighbour crossing as well
    return truth


def test_split_in_one_crop_and_whole_in_the_other_comes_back_whole():
    truth = cell_image()
    plan, a, b = two_crops(truth)
    a[0][18:25, 10:30] = 9  # A split off the lower 7 of 20 rows; both pieces reach the overlap
    result = stitch_crops(plan, [a, b], truth.shape)
    assert same_partition(result.labels[0], truth)
    expected_conflicts = np.zeros_like(truth, bool)
    expected_conflicts[18:25, 20:30] = True  # the small piece inside the overlap
    np.testing.assert_array_equal(result.conflicts[0], expected_conflicts)


@pytest.mark.parametrize(("upper", "lower"), [(5, 9), (9, 5)])
def test_equal_split_flags_the_piece_with_the_larger_id(upper, lower):
    truth = cell_image()
    plan, a, b = two_crops(truth)
    a[0][5:15, 10:30] = upper  # two equal halves: B's whole cell overlaps both equally,
    a[0][15:25, 10:30] = lower  # the tie goes to the smaller id
    result = stitch_crops(plan, [a, b], truth.shape)
    assert same_partition(result.labels[0], truth)
    flagged_rows = slice(15, 25) if lower > upper else slice(5, 15)
    expected = np.zeros_like(truth, bool)
    expected[flagged_rows, 20:30] = True
    np.testing.assert_array_equal(result.conflicts[0], expected)


def test_overlap_is_cut_at_its_middle_rounded_down():
    plan = crop_plan((6, 41), 25, 9)  # crops at columns 0..25 and 16..41, overlap 16..25
    assert [(w.x0, w.x1) for w in plan] == [(0, 25), (16, 41)]
    a = np.full((1, 6, 25), 3, np.int32)  # A says "one cell everywhere"
    b = np.zeros((1, 6, 25), np.int32)  # B says background
    result = stitch_crops(plan, [a, b], (6, 41))
    owned_by_a = (16 + 25) // 2  # 20
    assert (result.labels[0][:, :owned_by_a] == 1).all()
    assert not result.labels[0][:, owned_by_a:].any()
    assert result.conflicts[0][:, 16:25].all() and result.n_conflict_pixels == 6 * 9


def test_cell_kept_by_diagonal_crops_only_is_linked_across_the_corner():
    # 2 x 2 crops of 12 px, overlap 4 (rows / columns 8..12, cuts at 10). A cell around the
    # corner is kept by the top-left and bottom-right crops and deleted by the other two.
    truth = np.zeros((20, 20), np.int32)
    truth[7:13, 7:13] = 1
    plan = crop_plan((20, 20), 12, 4)
    crops = crop_stack(truth[None], plan)
    crops[1][:] = 0  # top-right deleted it
    crops[2][:] = 0  # bottom-left deleted it
    result = stitch_crops(plan, crops, (20, 20))
    labels = result.labels[0]
    assert result.n_cells == (1,)
    assert labels[9, 9] == labels[10, 10] == 1  # A's and D's parts, diagonal neighbours
    assert labels[9, 10] == labels[10, 9] == 0  # owned by the crops that deleted it


def test_split_away_from_the_overlap_is_kept():
    truth = cell_image()
    plan, a, b = two_crops(truth)
    a[0][5:25, 10:14] = 9  # the split-off part never reaches the overlap (20..30)
    result = stitch_crops(plan, [a, b], truth.shape)
    labels = result.labels[0]
    assert np.unique(labels[5:25, 10:14]).size == 1
    assert np.unique(labels[5:25, 14:40]).size == 1
    assert labels[10, 11] != labels[10, 30] and labels[10, 11] > 0
    assert result.n_cells == (3,) and result.n_conflict_pixels == 0


def test_cell_deleted_in_one_crop_survives_clipped_to_the_crop_that_kept_it():
    truth = cell_image()
    plan, a, b = two_crops(truth)
    b[0][b[0] == 1] = 0  # crop B deleted the cell
    result = stitch_crops(plan, [a, b], truth.shape)
    labels = result.labels[0]
    kept = truth == 1
    kept[:, 25:] = False  # A owns columns 0..24
    assert np.unique(labels[kept]).size == 1 and labels[kept][0] > 0
    assert not labels[:, 25:][truth[:, 25:] == 1].any()
    assert result.n_cells == (2,)
    np.testing.assert_array_equal(result.conflicts[0][:, 20:30], truth[:, 20:30] == 1)
    assert not result.conflicts[0][:, :20].any() and not result.conflicts[0][:, 30:].any()


def test_cell_deleted_in_one_crop_where_the_other_owns_nothing_leaves_no_gap():
    truth = np.zeros((30, 50), np.int32)
    truth[5:10, 21:24] = 4  # only inside the overlap, on A's side of the cut
    truth[12:20, 2:48] = 6
    plan, a, b = two_crops(truth)
    a[0][a[0] == 4] = 0  # A (the owner) deleted it; B kept it but owns none of its pixels
    result = stitch_crops(plan, [a, b], truth.shape)
    assert result.n_cells == (1,)
    assert set(np.unique(result.labels[0])) == {0, 1}


def test_merge_in_one_crop_stays_merged():
    truth = cell_image()
    plan, a, b = two_crops(truth)
    a[0][a[0] == 2] = 1  # A merged the two cells
    result = stitch_crops(plan, [a, b], truth.shape)
    labels = result.labels[0]
    assert result.n_cells == (1,)
    assert np.array_equal(labels > 0, truth > 0)
    # the smaller cell (2) is the one A's merged cell does not match best: flagged in the overlap
    np.testing.assert_array_equal(result.conflicts[0][:, 20:30], truth[:, 20:30] == 2)


# The last crop of a row is edge-aligned and overlaps its neighbour more than the others do:
# crops at columns 0..30, 24..54 and 40..70 (overlaps 6 and 14 px, cuts at 27 and 47). The
# second overlap is counted over a band as wide as the first, columns 44..50.


def band_case(split_at: int):
    """One cell at columns 36..60 that the middle crop splits at ``split_at``."""
    truth = np.zeros((12, 70), np.int32)
    truth[2:10, 36:60] = 1
    plan = crop_plan(truth.shape, 30, 6)
    assert [(w.x0, w.x1) for w in plan] == [(0, 30), (24, 54), (40, 70)]
    crops = crop_stack(truth[None], plan)
    crops[1][0, 2:10, 36 - 24 : split_at - 24] = 2
    return truth, plan, crops


def test_wide_edge_overlap_links_through_the_band_only():
    truth, plan, crops = band_case(split_at=43)  # the split-off piece ends before the band
    result = stitch_crops(plan, crops, truth.shape)
    labels = result.labels[0]
    assert result.n_cells == (2,)
    assert np.unique(labels[2:10, 36:43]).size == 1 and np.unique(labels[2:10, 43:60]).size == 1
    assert labels[5, 40] != labels[5, 50]
    assert result.n_conflict_pixels == 0  # the overlap outside the band is not compared


def test_piece_reaching_the_band_is_merged_and_flagged():
    truth, plan, crops = band_case(split_at=45)  # the piece reaches the band by one column
    result = stitch_crops(plan, crops, truth.shape)
    assert same_partition(result.labels[0], truth)
    expected = np.zeros(truth.shape, bool)
    expected[2:10, 44:45] = True  # the piece is not the best match of the last crop's cell
    np.testing.assert_array_equal(result.conflicts[0], expected)


def edit_crops(crops, rng):
    """Random inconsistent edits (split / delete / merge) on original-id crops.

    Returns the edited crops and the original ids split, merged and deleted anywhere.
    """
    split, merged, deleted = set(), set(), set()
    next_id = max(int(c.max()) for c in crops) + 1
    edited = []
    for crop in crops:
        crop = crop.copy()
        for layer in crop:
            ids = np.unique(layer[layer > 0])
            for _ in range(int(rng.integers(0, 3)) if ids.size else 0):
                action = rng.choice(["split", "delete", "merge"])
                cell = int(rng.choice(ids))
                mask = layer == cell
                if not mask.any():
                    continue
                if action == "split":
                    yy, xx = np.nonzero(mask)
                    cut = yy * rng.normal() + xx * rng.normal()
                    part = cut > np.median(cut)
                    layer[yy[part], xx[part]] = next_id
                    next_id += 1
                    split.add(cell)
                elif action == "delete":
                    layer[mask] = 0
                    deleted.add(cell)
                else:
                    other = int(rng.choice(ids))
                    layer[layer == other] = cell
                    if other != cell:
                        merged.update((cell, other))
        edited.append(crop)
    return edited, split, merged, deleted


@PROPERTY
@given(case=plan_cases(max_h=160, max_w=160, max_crops_per_axis=8), seed=st.integers(0, 2**32 - 1))
def test_inconsistent_crops_are_deterministic_and_never_duplicate_a_cell(case, seed):
    height, width, crop, overlap = case
    rng = np.random.default_rng(seed)
    truth = random_labels(rng, (height, width))
    plan = crop_plan((height, width), crop, overlap)
    edited, split, merged, deleted = edit_crops(crop_stack(truth[None], plan), rng)
    crops = renumber_crops(edited, rng, 0)
    result = stitch_crops(plan, crops, (height, width))
    labels = result.labels[0]

    # deterministic, also when the plan comes back in another order
    order = rng.permutation(len(plan))
    again = stitch_crops([plan[i] for i in order], [crops[i] for i in order], (height, width))
    np.testing.assert_array_equal(again.labels, result.labels)
    np.testing.assert_array_equal(again.conflicts, result.conflicts)
    assert set(np.unique(labels)) - {0} == set(range(1, result.n_cells[0] + 1))

    # a cell no crop touched comes back exactly, under an id of its own
    for cell in set(np.unique(truth)) - {0} - split - merged - deleted:
        ids = np.unique(labels[truth == cell])
        assert ids.size == 1 and ids[0] > 0
        assert np.array_equal(labels == ids[0], truth == cell)

    # a cell no crop split or merged (some may have deleted it) never shows two ids side by
    # side inside its footprint: it is not duplicated under two ids
    never_split = np.isin(truth, list(set(np.unique(truth)) - {0} - split - merged))
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        h, w = height - dy, width - abs(dx)
        x0 = max(0, -dx)
        p = (slice(0, h), slice(x0, x0 + w))
        q = (slice(dy, dy + h), slice(x0 + dx, x0 + dx + w))
        same_cell = never_split[p] & (truth[p] == truth[q])
        both = same_cell & (labels[p] > 0) & (labels[q] > 0)
        assert np.array_equal(labels[p][both], labels[q][both])


# ------------------------------------------------------------------ stitch: bad input


def test_stitch_rejects_bad_input_with_clear_messages():
    plan = crop_plan((40, 40), 16, 4)
    crops = [np.zeros((2, w.height, w.width), np.int32) for w in plan]
    with pytest.raises(ValueError, match="label crops"):
        stitch_crops(plan, crops[:-1], (40, 40))
    with pytest.raises(ValueError, match="empty"):
        stitch_crops([], [], (40, 40))
    with pytest.raises(ValueError, match="not a grid"):
        stitch_crops(plan[:-1], crops[:-1], (40, 40))
    with pytest.raises(ValueError, match="not a grid covering"):
        stitch_crops(plan, crops, (41, 40))
    gap = [CropWindow(0, 0, 10, 10), CropWindow(0, 12, 10, 22)]
    with pytest.raises(ValueError, match="gap"):
        stitch_crops(gap, [np.zeros((1, 10, 10), np.int32)] * 2, (10, 22))
    with pytest.raises(ValueError, match=r"\(F, 16, 16\)"):
        stitch_crops(plan, [crops[0][0]] + crops[1:], (40, 40))
    with pytest.raises(ValueError, match="number of features"):
        stitch_crops(plan, [crops[0][:1]] + crops[1:], (40, 40))
    with pytest.raises(ValueError, match="integer"):
        stitch_crops(plan, [c.astype(float) for c in crops], (40, 40))
    negative = [c.copy() for c in crops]
    negative[3][0, 0, 0] = -5
    with pytest.raises(ValueError, match="-5"):
        stitch_crops(plan, negative, (40, 40))
    too_big = [c.astype(np.int64) for c in crops]
    too_big[0][1, 2, 2] = 2**31
    with pytest.raises(ValueError, match="int32"):
        stitch_crops(plan, too_big, (40, 40))
