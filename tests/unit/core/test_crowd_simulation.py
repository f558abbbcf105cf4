"""Tests for backend.core.crowd_simulation: profiles, error units, brush fixes, effort, reviewer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from backend.core.crowd_simulation import (
    MATCH_IOU,
    PROFILES,
    AnnotatorProfile,
    accepts_added_cell,
    active_seconds,
    apply_fixes,
    correct_crop,
    crops_to_redo,
    error_units,
    fix_worst_cells,
    flag_annotators,
    gold_gain,
    jitter_mask,
    merged_cells,
    missed_cells,
    parse_profiles,
    score_labels,
)
from backend.core.labels import watershed_split
from backend.core.metrics import object_metrics
from backend.core.synthetic import synthetic_tissue

EIGHT = np.ones((3, 3), dtype=bool)


# ------------------------------------------------------------------ builders

def grid_truth(rows: int, cols: int, cell: int, gap: int) -> np.ndarray:
    """(H, W) int32: a rows x cols grid of square cells of side ``cell`` separated by ``gap`` px."""
    step = cell + gap
    truth = np.zeros((rows * step + gap, cols * step + gap), dtype=np.int32)
    for r in range(rows):
        for c in range(cols):
            y, x = gap + r * step, gap + c * step
            truth[y:y + cell, x:x + cell] = r * cols + c + 1
    return truth


def damaged(truth: np.ndarray, rng: np.random.Generator, big_ids: bool = False) -> np.ndarray:
    """A prediction-like copy of ``truth``: missed, merged, split, shifted and false cells."""
    labels = truth.copy()
    ids = np.unique(truth)[1:]
    n = ids.size
    for cid in ids:
        kind = rng.integers(0, 6)
        mask = labels == cid
        if not mask.any():  # swallowed by an earlier merge
            continue
        if kind == 0:  # missed
            labels[mask] = 0
        elif kind == 1:  # split in two halves
            ys, xs = np.nonzero(mask)
            half = mask & (np.arange(labels.shape[1])[None, :] >= (xs.min() + xs.max() + 1) // 2)
            labels[half] = 10_000 + cid
        elif kind == 2 and cid < n:  # merged with the next cell (and the gap between them)
            other = truth == cid + 1
            ys, xs = np.nonzero(mask | other)
            block = np.zeros_like(mask)
            block[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = True
            labels[block & ((labels == 0) | mask | other)] = cid
        elif kind == 3:  # outline off by several pixels
            labels[mask] = 0
            labels[np.roll(mask, 3, axis=0) & (labels == 0)] = cid
    background = truth == 0
    blob = np.zeros_like(background)
    y, x = rng.integers(0, truth.shape[0] - 2), rng.integers(0, truth.shape[1] - 2)
    blob[y:y + 3, x:x + 3] = True
    labels[blob & background & (labels == 0)] = 20_000  # debris
    if big_ids:
        labels = np.where(labels > 0, labels + 2_000_000_000 - 30_000, 0).astype(np.int32)
    return labels.astype(np.int32)


def f1(truth: np.ndarray, labels: np.ndarray) -> float:
    return object_metrics(truth, labels).f1


def tissue_pair(seed: int, size: int = 96):
    """Synthetic tissue truth (2, h, w) and a damaged copy of it as the 'prediction'."""
    t = synthetic_tissue(size, size, n_channels=2, seed=seed)
    rng = np.random.default_rng(seed)
    start = np.stack([damaged(t.whole_cell, rng), damaged(t.nuclear, rng)])
    return t, start


# ------------------------------------------------------------------ profiles

def test_parse_profiles_counts_and_order():
    profiles = parse_profiles("careful*2, hasty ,spammer")
    assert [p.name for p in profiles] == ["careful", "careful", "hasty", "spammer"]
    assert parse_profiles(["hasty", "careful"])[1] is PROFILES["careful"]
    assert [p.name for p in parse_profiles("hastyx3")] == ["hasty"] * 3


@pytest.mark.parametrize("spec, words", [
    ("carefull", "unknown annotator profile"), ("", "at least one"), ("careful*0", "between 1 and 100"),
])
def test_parse_profiles_rejects_bad_specs_with_a_message(spec, words):
    with pytest.raises(ValueError, match=words):
        parse_profiles(spec)


def test_profile_validates_its_numbers():
    with pytest.raises(ValueError, match="fix_fraction"):
        AnnotatorProfile("x", fix_fraction=1.5, boundary_noise_px=0)
    with pytest.raises(ValueError, match="spam"):
        AnnotatorProfile("x", fix_fraction=0.5, boundary_noise_px=0, spam="lazy")
    assert PROFILES["spammer"].is_spammer and not PROFILES["careful"].is_spammer


# ------------------------------------------------------------------ error units

def test_no_errors_when_labels_equal_truth_up_to_renumbering():
    truth = grid_truth(3, 4, 8, 2)
    renumbered = np.where(truth > 0, truth * 7 + 100_000, 0).astype(np.int32)
    assert error_units(renumbered, truth) == []


def test_error_units_name_the_missed_merged_and_false_cells():
    truth = grid_truth(1, 3, 10, 3)
    labels = truth.copy()
    labels[truth == 1] = 0                       # cell 1 missed
    labels[(truth == 2) | (truth == 3)] = 50     # cells 2 and 3 merged into 50
    labels[0, 0:2] = 77                          # debris on background
    units = error_units(labels, truth)
    by_truth = {u.truth_id: u for u in units}
    assert set(by_truth) == {0, 1, 2, 3}
    assert by_truth[1].label_ids == () and by_truth[1].severity == 1.0
    assert by_truth[2].label_ids == (50,) and by_truth[3].label_ids == (50,)
    assert by_truth[0].label_ids == (77,)
    assert units[0].severity >= units[-1].severity  # worst first


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.integers(1, 4), cols=st.integers(1, 5), cell=st.integers(5, 12), gap=st.integers(0, 3),
       seed=st.integers(0, 2**32 - 1), big_ids=st.booleans())
def test_fixing_every_unit_exactly_reaches_the_truth(rows, cols, cell, gap, seed, big_ids):
    truth = grid_truth(rows, cols, cell, gap)
    labels = damaged(truth, np.random.default_rng(seed), big_ids)
    for _ in range(3):  # a pass can leave the remnant of a wrong cell on a right one; a second clears it
        units = error_units(labels, truth)
        if not units:
            break
        labels, _ = apply_fixes(labels, truth, units)
        assert labels.dtype == np.int32 and labels.min() >= 0
    assert error_units(labels, truth) == []
    assert f1(truth, labels) == 1.0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.integers(1, 4), cols=st.integers(1, 4), gap=st.integers(0, 2), seed=st.integers(0, 2**32 - 1),
       share=st.floats(0.0, 1.0))
def test_partial_fixes_never_touch_cells_that_were_right(rows, cols, gap, seed, share):
    truth = grid_truth(rows, cols, 9, gap)  # touching cells too: the brush must not paint over them
    labels = damaged(truth, np.random.default_rng(seed))
    units = error_units(labels, truth)
    rng = np.random.default_rng(seed + 1)
    chosen = [u for u in units if rng.random() < share]
    fixed, next_id = apply_fixes(labels, truth, chosen, noise_px=2.0, rng=rng)
    involved = {lid for u in units for lid in u.label_ids}
    right = [lid for lid in np.unique(labels)[1:] if lid not in involved]
    for lid in right:  # boundary noise of painted cells never eats a cell that was right
        assert np.array_equal(fixed == lid, labels == lid)
    assert next_id == labels.max() + 1 + sum(1 for u in chosen if u.truth_id)
    assert len(error_units(fixed, truth)) <= len(units)


def test_apply_fixes_leaves_its_input_alone_and_needs_rng_for_noise():
    truth = grid_truth(2, 2, 8, 2)
    labels = np.zeros_like(truth)
    before = labels.copy()
    units = error_units(labels, truth)
    apply_fixes(labels, truth, units)
    assert np.array_equal(labels, before)
    with pytest.raises(ValueError, match="rng"):
        apply_fixes(labels, truth, units, noise_px=1.0)
    with pytest.raises(ValueError, match="same shape"):
        apply_fixes(labels[:, :-1], truth, units)


# ------------------------------------------------------------------ brush jitter

@settings(max_examples=80, deadline=None)
@given(r=st.floats(3.0, 14.0), noise=st.floats(0.0, 3.0), seed=st.integers(0, 2**32 - 1))
def test_jitter_moves_the_outline_at_most_the_noise(r, noise, seed):
    yy, xx = np.mgrid[:40, :40]
    disk = (yy - 20) ** 2 + (xx - 20) ** 2 <= r * r
    drawn = jitter_mask(disk, noise, np.random.default_rng(seed))
    assert drawn.any() and ndi.label(drawn, structure=EIGHT)[1] == 1
    changed = drawn ^ disk
    if noise == 0:
        assert not changed.any()
    else:
        to_outline = np.where(disk, ndi.distance_transform_edt(disk), ndi.distance_transform_edt(~disk))
        assert (to_outline[changed] <= noise + 1.0).all()


def test_careful_noise_keeps_cells_matching():
    yy, xx = np.mgrid[:60, :60]
    disk = (yy - 30) ** 2 + (xx - 30) ** 2 <= 10 ** 2
    rng = np.random.default_rng(3)
    ious = []
    for _ in range(20):
        d = jitter_mask(disk, PROFILES["careful"].boundary_noise_px, rng)
        ious.append((d & disk).sum() / (d | disk).sum())
    assert min(ious) >= MATCH_IOU and np.mean(ious) < 1.0  # noisy but right


# ------------------------------------------------------------------ annotators on a crop

@pytest.mark.parametrize("seed", [1, 2])
def test_careful_fixes_more_than_hasty_and_spammers_fix_nothing(seed):
    t, start = tissue_pair(seed)
    truth = t.labels
    remaining, scores = {}, {}
    for name in ("careful", "hasty"):
        corr = correct_crop(start, truth, PROFILES[name], np.random.default_rng(seed))
        final = corr.final
        assert final.dtype == np.int32 and final.shape == start.shape and corr.fixed_cells > 0
        remaining[name] = sum(len(error_units(final[f], truth[f])) for f in range(2))
        scores[name] = score_labels(final, truth).value
    initial = sum(len(error_units(start[f], truth[f])) for f in range(2))
    assert remaining["careful"] < remaining["hasty"] < initial
    assert scores["careful"] > scores["hasty"] > score_labels(start, truth).value
    assert scores["careful"] >= 0.85


def test_honest_annotators_autosave_per_feature():
    t, start = tissue_pair(4)
    corr = correct_crop(start, t.labels, PROFILES["careful"], np.random.default_rng(0))
    assert len(corr.checkpoints) == 2
    first, last = corr.checkpoints
    assert np.array_equal(first[1], start[1]) and not np.array_equal(first[0], start[0])
    assert np.array_equal(last[0], first[0]) and corr.strokes >= corr.fixed_cells


def test_spammer_submits_unchanged_or_empty():
    t, start = tissue_pair(5)
    rng = np.random.default_rng(0)
    kinds = set()
    for _ in range(30):
        corr = correct_crop(start, t.labels, PROFILES["spammer"], rng)
        assert corr.fixed_cells == 0
        if corr.final is None:
            kinds.add("unchanged")
        else:
            assert not corr.final.any() and corr.final.dtype == np.int32
            kinds.add("empty")
    assert kinds == {"unchanged", "empty"}
    always_empty = AnnotatorProfile("e", 0.0, 0.0, spam="empty")
    assert not correct_crop(start, t.labels, always_empty, rng).final.any()


def test_nothing_to_fix_means_no_revision():
    t = synthetic_tissue(64, 64, n_channels=2, seed=9)
    corr = correct_crop(t.labels, t.labels, PROFILES["careful"], np.random.default_rng(0))
    assert corr.checkpoints == [] and corr.fixed_cells == 0


# ------------------------------------------------------------------ effort model

@settings(max_examples=100, deadline=None)
@given(cells=st.integers(0, 500), more=st.integers(1, 50), tools=st.integers(0, 5), seed=st.integers(0, 2**32 - 1),
       name=st.sampled_from(["careful", "hasty"]))
def test_time_grows_with_the_cells_changed(cells, more, tools, seed, name):
    profile = PROFILES[name]
    a = active_seconds(profile, cells, tools, np.random.default_rng(seed))
    b = active_seconds(profile, cells + more, tools, np.random.default_rng(seed))
    assert 1.0 <= a < b <= 86400.0


def test_time_without_spread_is_the_linear_model():
    p = AnnotatorProfile("exact", 1.0, 0.0, seconds_base=20, seconds_per_cell=5, seconds_per_tool=3, time_sigma=0)
    assert active_seconds(p, 4, 2, np.random.default_rng(0)) == pytest.approx(20 + 5 * 4 + 3 * 2)
    with pytest.raises(ValueError):
        active_seconds(p, -1, 0, np.random.default_rng(0))


def test_careful_takes_longer_per_cell_than_hasty_and_spammers_are_fast():
    rng = np.random.default_rng(0)
    careful = np.median([active_seconds(PROFILES["careful"], 10, 0, rng) for _ in range(200)])
    hasty = np.median([active_seconds(PROFILES["hasty"], 10, 0, rng) for _ in range(200)])
    spam = np.median([active_seconds(PROFILES["spammer"], 0, 0, rng) for _ in range(200)])
    assert careful > hasty > spam


# ------------------------------------------------------------------ server tool requests

def test_merged_cells_seed_each_true_cell_and_the_watershed_splits_them():
    yy, xx = np.mgrid[:40, :60]
    truth = np.zeros((40, 60), np.int32)
    truth[(yy - 20) ** 2 + (xx - 20) ** 2 <= 81] = 1
    truth[(yy - 20) ** 2 + (xx - 37) ** 2 <= 81] = 2
    labels = np.where(truth > 0, 5, 0).astype(np.int32)
    labels[ndi.binary_dilation(truth > 0) & (labels == 0) & (np.abs(xx - 28) < 2)] = 5  # the bridge
    requests = merged_cells(labels, truth)
    assert len(requests) == 1
    req = requests[0]
    assert req.label == 5 and len(req.seeds) == 2
    assert {int(truth[s]) for s in req.seeds} == {1, 2} and all(labels[s] == 5 for s in req.seeds)
    y0, x0, y1, x1 = req.bbox
    assert (labels[:y0] != 5).all() and (labels[y1:] != 5).all() and (labels[:, x1:] != 5).all()
    box = labels[y0:y1, x0:x1]
    image = np.zeros(box.shape, np.uint8)
    split = watershed_split(image, box, 5, [(y - y0, x - x0) for y, x in req.seeds], [6])
    whole = labels.copy()
    whole[y0:y1, x0:x1] = split
    assert f1(truth, whole) == 1.0 and f1(truth, labels) == 0.0


def test_no_split_request_for_cells_that_only_touch_a_neighbour():
    truth = grid_truth(1, 2, 10, 2)
    labels = truth.copy()
    labels[(truth == 1)] = 3
    labels[1:4, 12:14] = 3  # a sliver of cell 2 (under half of it)
    assert merged_cells(labels, truth) == []


def test_missed_cells_click_the_middle_of_each_unlabelled_true_cell():
    truth = grid_truth(2, 3, 12, 4)
    labels = truth.copy()
    labels[truth == 2] = 0  # missed
    labels[(truth == 5) & (np.arange(truth.shape[1]) < 24)] = 0  # 5 is two-thirds labelled: not missed
    labels[truth == 6] = 9  # labelled under another id: right, not missed
    requests = missed_cells(labels, truth, half=10)
    assert [r.truth_id for r in requests] == [2]
    (y, x), (y0, x0, y1, x1) = requests[0].point, requests[0].bbox
    assert truth[y, x] == 2 and labels[y, x] == 0
    assert abs(y - 9.5) <= 1 and abs(x - 25.5) <= 1  # the cell's centre (rows 4..15, columns 20..31)
    assert (y0, x0, y1, x1) == (max(0, y - 10), max(0, x - 10), min(truth.shape[0], y + 11), x + 11)
    assert missed_cells(truth, truth) == []


def test_an_added_cell_is_kept_only_when_close_to_the_truth():
    cell = np.zeros((20, 20), bool)
    cell[5:15, 5:15] = True
    assert accepts_added_cell(cell, cell)
    assert accepts_added_cell(np.pad(cell[:, 1:], ((0, 0), (0, 1))), cell)  # 1 px off: IoU 0.82
    assert not accepts_added_cell(cell[:, :] & (np.arange(20) < 10), cell)  # half of it
    assert not accepts_added_cell(np.zeros_like(cell), cell)


# ------------------------------------------------------------------ the reviewer

@pytest.mark.parametrize("target", [0.8, 0.9, 0.97])
def test_fix_worst_cells_stops_once_the_target_is_reached(target):
    t, start = tissue_pair(7, size=128)
    truth = t.labels
    assert score_labels(start, truth).value < 0.6
    fixed, n = fix_worst_cells(start, truth, target)
    assert score_labels(fixed, truth).value >= target and n > 0
    if target < 0.95:  # the expert stops once the image is good enough, before fixing everything
        assert n < sum(len(error_units(start[f], truth[f])) for f in range(2))
    _, n_lower = fix_worst_cells(start, truth, target - 0.1)
    assert n_lower <= n
    _, n_none = fix_worst_cells(fixed, truth, target)
    assert n_none == 0


def test_a_higher_target_costs_the_expert_more_fixes():
    t, start = tissue_pair(8, size=128)
    counts = [fix_worst_cells(start, t.labels, target)[1] for target in (0.75, 0.9, 0.99)]
    assert counts[0] < counts[1] < counts[2]


def test_crops_to_redo_flags_the_empty_part_only():
    t = synthetic_tissue(120, 200, n_channels=2, seed=11)
    labels = t.labels.copy()
    labels[:, :, 100:] = 0  # the right half came back empty
    windows = [(0, 0, 120, 100), (0, 100, 120, 200)]
    flagged = crops_to_redo(labels, t.labels, windows, min_f1=0.5)
    assert [i for i, _ in flagged] == [1] and flagged[0][1] == 0.0
    assert crops_to_redo(t.labels, t.labels, windows, min_f1=0.99) == []


def test_score_labels_is_the_worse_feature():
    t = synthetic_tissue(80, 80, n_channels=2, seed=2)
    assert score_labels(t.labels, t.labels).value == 1.0
    no_nuclei = t.labels.copy()
    no_nuclei[1] = 0
    s = score_labels(no_nuclei, t.labels)
    assert s.whole_cell_f1 == 1.0 and s.nuclear_f1 == 0.0 and s.value == 0.0
    with pytest.raises(ValueError, match="2 features"):
        score_labels(np.zeros((3, 8, 8), np.int32), np.zeros((3, 8, 8), np.int32))


# ------------------------------------------------------------------ the admin's quality check

def test_gold_gain_rewards_fixing_not_a_good_prediction():
    t, start = tissue_pair(12)
    gold = t.labels
    careful = correct_crop(start, gold, PROFILES["careful"], np.random.default_rng(0)).final
    hasty = correct_crop(start, gold, PROFILES["hasty"], np.random.default_rng(0)).final
    gains = {name: gold_gain(start, labels, gold) for name, labels in
             (("careful", careful), ("hasty", hasty), ("unchanged", start), ("empty", np.zeros_like(start)))}
    assert 1.0 >= gains["careful"] > gains["hasty"] > 0.0
    assert gains["unchanged"] == 0.0 and gains["empty"] < 0.0
    # the gain is relative to what was left to fix: fixing the same errors on a crop with less
    # wrong (a better model's prediction) is no smaller a gain
    half_fixed = np.where(np.random.default_rng(1).random(start.shape) < 0.5, start, gold)
    assert gold_gain(half_fixed, gold, gold) == pytest.approx(1.0)
    assert gold_gain(gold, gold, gold) is None  # nothing to fix: no evidence either way


def test_flag_annotators_catches_who_does_not_improve_gold():
    # gains are fractions of what was wrong that got fixed
    gains = {"careful-1": [0.7, 0.6], "hasty-1": [0.3, 0.2], "spammer-1": [0.0, -2.5, 0.0],
             "lazy": [0.0, 0.04], "new": [], "unknown": [None]}
    assert flag_annotators(gains) == ["spammer-1", "lazy"]
    assert flag_annotators(gains, min_gain=0.3) == ["spammer-1", "lazy", "hasty-1"]
    assert flag_annotators({}) == []


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text("abcdef", min_size=1, max_size=4),
                       st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=5), max_size=8),
       st.floats(-0.5, 0.5))
def test_flagging_is_a_threshold_on_the_mean_gain(gains, min_gain):
    flagged = flag_annotators(gains, min_gain)
    means = {w: float(np.mean(v)) for w, v in gains.items()}
    assert set(flagged) == {w for w, m in means.items() if m < min_gain}
    assert [means[w] for w in flagged] == sorted(means[w] for w in flagged)


def test_cells_to_fix_counts_the_error_units_of_both_features():
    from backend.core.crowd_simulation import cells_to_fix, error_units
    from backend.core.synthetic import synthetic_tissue

    truth = synthetic_tissue(96, 96, n_channels=2, seed=2).labels.astype(np.int32)
    labels = truth.copy()
    labels[0][labels[0] == labels[0].max()] = 0  # a missed cell
    labels[1][labels[1] == 1] = 0
    assert cells_to_fix(truth, truth) == 0
    expected = len(error_units(labels[0], truth[0])) + len(error_units(labels[1], truth[1]))
    assert cells_to_fix(labels, truth) == expected >= 2
