"""Tests of backend.core.metrics: hand-built error types, conventions, and properties checked
against a direct per-object computation (boolean masks and a dense assignment)."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from backend.core.metrics import (
    AP_THRESHOLDS,
    ERROR_KINDS,
    ObjectMetrics,
    aggregate,
    average_precision,
    contingency,
    error_types,
    match_objects,
    object_metrics,
)

COUNTS = ("n_true", "n_pred", "correct", "missed", "gained", "split", "merge", "catastrophe")


def counts(m: ObjectMetrics) -> dict:
    return {k: getattr(m, k) for k in COUNTS}


def assert_same_metrics(a: ObjectMetrics, b: ObjectMetrics) -> None:
    """Counts and thresholds exactly equal, rates equal up to float rounding."""
    for name, value in a.as_dict().items():
        other = b.as_dict()[name]
        if isinstance(value, float):
            assert value == pytest.approx(other), name
        elif isinstance(value, dict):
            assert value.keys() == other.keys() and list(value.values()) == pytest.approx(
                list(other.values())), name
        else:
            assert value == other, name


def canvas(shape=(20, 40)) -> np.ndarray:
    return np.zeros(shape, np.int32)


# ---------------------------------------------------------------- direct per-object reference

def direct_iou(y_true, y_pred):
    """IoU matrix from boolean masks, one object pair at a time."""
    true_ids = [i for i in np.unique(y_true) if i != 0]
    pred_ids = [j for j in np.unique(y_pred) if j != 0]
    iou = np.zeros((len(true_ids), len(pred_ids)))
    for a, i in enumerate(true_ids):
        for b, j in enumerate(pred_ids):
            inter = np.logical_and(y_true == i, y_pred == j).sum()
            union = np.logical_or(y_true == i, y_pred == j).sum()
            iou[a, b] = inter / union
    return true_ids, pred_ids, iou


def direct_tp(iou, threshold):
    """Maximum number of 1-to-1 pairs with IoU >= threshold (dense assignment on 0/1)."""
    if iou.size == 0:
        return 0
    ok = (iou >= threshold).astype(float)
    rows, cols = linear_sum_assignment(ok, maximize=True)
    return int(ok[rows, cols].sum())


def direct_ap(y_true, y_pred, threshold):
    true_ids, pred_ids, iou = direct_iou(y_true, y_pred)
    tp = direct_tp(iou, threshold)
    denominator = len(true_ids) + len(pred_ids) - tp
    return 1.0 if denominator == 0 else tp / denominator


# ---------------------------------------------------------------- strategies

ID_POOL = [1, 2, 3, 7, 255, 256, 65535, 65536, 40_000_000, 2**31 - 1, -5]


@st.composite
def label_pairs(draw):
    """(y_true, y_pred) int32 of equal shape: blocky truth, prediction edited and shifted."""
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    scale = draw(st.integers(1, 4))
    coarse = np.array(draw(st.lists(st.integers(0, 5), min_size=h * w, max_size=h * w)))
    coarse = coarse.reshape(h, w)
    edited = coarse.copy().ravel()
    for index, value in draw(st.lists(st.tuples(st.integers(0, h * w - 1), st.integers(0, 6)),
                                      max_size=4)):
        edited[index] = value
    up = np.ones((scale, scale), np.int64)
    truth, pred = np.kron(coarse, up), np.kron(edited.reshape(h, w), up)
    pred = np.roll(pred, (draw(st.integers(0, 1)), draw(st.integers(0, 1))), axis=(0, 1))
    ids_true = np.array([0] + draw(st.permutations(ID_POOL))[:6], np.int32)
    ids_pred = np.array([0] + draw(st.permutations(ID_POOL))[:7], np.int32)
    return ids_true[truth], ids_pred[pred]


def compact(y: np.ndarray, offset: int = 0) -> np.ndarray:
    """Ids 1..n (+ offset), background kept at 0."""
    values, inverse = np.unique(y, return_inverse=True)
    code = np.cumsum(values != 0) * (values != 0)
    out = code[inverse.ravel()].reshape(y.shape).astype(np.int32)
    return np.where(out > 0, out + offset, 0).astype(np.int32)


# ---------------------------------------------------------------- hand-built error types

def test_identical_images_are_all_correct():
    y = canvas()
    y[2:10, 2:10], y[2:10, 12:20], y[12:18, 30:38] = 4, 9, 2
    m = object_metrics(y, y)
    assert counts(m) == dict(n_true=3, n_pred=3, correct=3, missed=0, gained=0, split=0,
                             merge=0, catastrophe=0)
    assert m.precision == m.recall == m.f1 == m.jaccard == m.ap50 == m.map == 1.0
    assert m.mean_matched_iou == 1.0


def test_missed_cell():
    t, p = canvas(), canvas()
    t[2:10, 2:10], p[2:10, 2:10] = 1, 1
    t[12:18, 30:38] = 2
    m = object_metrics(t, p)
    assert (m.correct, m.missed, m.gained) == (1, 1, 0)
    assert m.precision == 1.0 and m.recall == 0.5
    assert m.f1 == pytest.approx(2 / 3)
    assert m.ap50 == pytest.approx(0.5)


def test_gained_cell():
    t, p = canvas(), canvas()
    t[2:10, 2:10], p[2:10, 2:10] = 1, 1
    p[12:18, 30:38] = 2
    m = object_metrics(t, p)
    assert (m.correct, m.missed, m.gained) == (1, 0, 1)
    assert m.precision == 0.5 and m.recall == 1.0


def test_split_cell_is_one_split_not_a_correct_and_a_gained():
    t, p = canvas(), canvas()
    t[2:12, 2:12] = 5
    p[2:12, 2:8], p[2:12, 8:12] = 1, 2  # 60 % / 40 %: first half alone would pass IoU 0.5
    m = object_metrics(t, p)
    assert counts(m) == dict(n_true=1, n_pred=2, correct=0, missed=0, gained=0, split=1,
                             merge=0, catastrophe=0)
    assert m.tp == 1  # the 60 % piece is still a 1-to-1 match for precision / recall


def test_merge_of_unequal_cells_is_one_merge_not_a_miss_plus_a_correct():
    # the reference rule takes (big, merged) as correct (IoU 0.6) and the small cell as missed
    t, p = canvas(), canvas()
    t[2:12, 2:14], t[2:12, 16:24] = 1, 2
    p[2:12, 2:24] = 3
    m = object_metrics(t, p)
    assert counts(m) == dict(n_true=2, n_pred=1, correct=0, missed=0, gained=0, split=0,
                             merge=1, catastrophe=0)
    assert m.tp == 1


def test_merge_of_many_small_cells():
    t, p = canvas(), canvas()
    for k in range(6):
        t[2:8, 2 + 6 * k:7 + 6 * k] = 10 + k
    p[1:9, 1:37] = 1
    m = object_metrics(t, p)
    assert (m.merge, m.correct, m.missed, m.gained) == (1, 0, 0, 0)


def test_catastrophe_crossing_halves():
    t, p = canvas(), canvas()
    t[0:10, 0:5], t[0:10, 5:10] = 1, 2  # left / right
    p[0:5, 0:10], p[5:10, 0:10] = 3, 4  # top / bottom
    m = object_metrics(t, p)
    assert counts(m) == dict(n_true=2, n_pred=2, correct=0, missed=0, gained=0, split=0,
                             merge=0, catastrophe=1)


def test_poor_one_to_one_overlap_is_a_miss_and_a_gain_unless_threshold_is_lower():
    t, p = canvas(), canvas()
    t[0:10, 0:10] = 1
    p[0:10, 4:14] = 2  # IoU 60 / 140 = 0.43, linked (60 % of each inside the other)
    m = object_metrics(t, p)
    assert (m.correct, m.missed, m.gained) == (0, 1, 1)
    assert object_metrics(t, p, iou_threshold=0.4).correct == 1


def test_touching_neighbours_with_shifted_border_stay_correct():
    t, p = canvas(), canvas()
    t[0:10, 0:10], t[0:10, 10:20] = 1, 2
    p[0:10, 0:12], p[0:10, 12:20] = 1, 2  # border moved by two pixels
    m = object_metrics(t, p)
    assert (m.correct, m.split, m.merge, m.catastrophe) == (2, 0, 0, 0)


def test_error_types_per_object_kinds():
    t, p = canvas(), canvas()
    t[0:10, 0:10] = 1  # split
    p[0:10, 0:5], p[0:10, 5:10] = 1, 2
    t[12:18, 0:6] = 2  # missed
    p[12:18, 30:36] = 3  # gained
    cont = contingency(t, p)
    kinds = error_types(cont)
    assert [ERROR_KINDS[k] for k in kinds.true_kind] == ["split", "missed"]
    assert [ERROR_KINDS[k] for k in kinds.pred_kind] == ["split", "split", "gained"]


def test_linear_assignment_beats_greedy_pairing_below_half():
    t, p = np.zeros((1, 16), np.int32), np.zeros((1, 16), np.int32)
    t[0, 0:10], t[0, 10:16] = 1, 2
    p[0, 3:14], p[0, 0:3] = 1, 2
    # IoU(T1,P1)=0.5, IoU(T2,P1)=4/13, IoU(T1,P2)=0.3: greedy takes T1-P1 and stops
    ap = average_precision(t, p, thresholds=(0.3, 0.5))
    assert ap[0.3] == 1.0
    assert ap[0.5] == pytest.approx(1 / 3)
    ti, pi, iou = match_objects(contingency(t, p), 0.3)
    assert sorted(zip(ti.tolist(), pi.tolist())) == [(0, 1), (1, 0)]


def test_non_sequential_ids_give_the_same_metrics():
    t, p = canvas(), canvas()
    t[2:12, 2:14], t[2:12, 16:24], t[14:20, 0:6] = 1, 2, 3
    p[2:12, 2:24], p[14:20, 1:6], p[0:2, 30:34] = 1, 2, 3
    mapped_t = np.select([t == 1, t == 2, t == 3], [2**31 - 1, 40_000, -7], 0).astype(np.int32)
    mapped_p = np.select([p == 1, p == 2, p == 3], [65536, 3, 2**30], 0).astype(np.int32)
    assert object_metrics(mapped_t, mapped_p).as_dict() == object_metrics(t, p).as_dict()
    cont = contingency(mapped_t, mapped_p)
    assert cont.true_ids.tolist() == [-7, 40_000, 2**31 - 1]


def test_other_integer_dtypes_are_accepted():
    t = canvas()
    t[2:10, 2:10] = 3
    expected = object_metrics(t, t).as_dict()
    for dtype in (np.uint16, np.int64, np.uint64, np.uint8):
        assert object_metrics(t.astype(dtype), t).as_dict() == expected
    huge = np.where(t > 0, np.uint64(2**63 + 5), np.uint64(0))
    assert object_metrics(huge, t).correct == 1
    assert object_metrics(t > 0, t).correct == 1


# ---------------------------------------------------------------- empty images

def test_both_empty_is_perfect_by_convention():
    m = object_metrics(canvas(), canvas())
    assert counts(m) == dict.fromkeys(COUNTS, 0)
    assert m.precision == m.recall == m.f1 == m.jaccard == m.ap50 == m.map == 1.0


def test_empty_truth_or_empty_prediction_scores_zero():
    y = canvas()
    y[2:10, 2:10], y[12:18, 30:38] = 1, 2
    only_pred = object_metrics(canvas(), y)
    only_true = object_metrics(y, canvas())
    assert (only_pred.gained, only_pred.missed) == (2, 0)
    assert (only_true.gained, only_true.missed) == (0, 2)
    for m in (only_pred, only_true):
        assert m.precision == m.recall == m.f1 == m.jaccard == m.ap50 == m.map == 0.0
        assert m.mean_matched_iou == 0.0


def test_zero_size_images():
    m = object_metrics(np.zeros((0, 5), np.int32), np.zeros((0, 5), np.int32))
    assert m.n_true == m.n_pred == 0 and m.f1 == 1.0


# ---------------------------------------------------------------- errors a caller can act on

def test_bad_inputs_raise_value_errors_with_hints():
    y = canvas()
    with pytest.raises(ValueError, match="shape"):
        object_metrics(y, canvas((20, 41)))
    with pytest.raises(ValueError, match="integer"):
        object_metrics(y.astype(float), y)
    with pytest.raises(ValueError, match="one feature at a time"):
        object_metrics(np.stack([y, y]), np.stack([y, y]))
    with pytest.raises(ValueError, match="outside"):
        object_metrics(y, y, iou_threshold=0.0)
    with pytest.raises(ValueError, match="outside"):
        average_precision(y, y, thresholds=(1.5,))


def test_aggregate_rejects_empty_and_mixed_thresholds():
    y = canvas()
    with pytest.raises(ValueError, match="at least one"):
        aggregate([])
    with pytest.raises(ValueError, match="different IoU"):
        aggregate([object_metrics(y, y), object_metrics(y, y, iou_threshold=0.7)])


def test_as_dict_is_json_serialisable():
    t, p = canvas(), canvas()
    t[2:10, 2:10], p[3:10, 2:10] = 1, 8
    d = object_metrics(t, p).as_dict()
    assert json.loads(json.dumps(d))["ap"]["0.50"] == d["ap50"]
    assert set(ERROR_KINDS) <= set(d)


# ---------------------------------------------------------------- properties

@settings(max_examples=150, deadline=None)
@given(label_pairs())
def test_contingency_matches_direct_mask_counts(pair):
    t, p = pair
    cont = contingency(t, p)
    assert cont.true_ids.tolist() == [i for i in np.unique(t) if i != 0]
    assert cont.pred_ids.tolist() == [j for j in np.unique(p) if j != 0]
    assert cont.true_area.tolist() == [int((t == i).sum()) for i in cont.true_ids]
    assert cont.pred_area.tolist() == [int((p == j).sum()) for j in cont.pred_ids]
    table = {(int(cont.true_ids[a]), int(cont.pred_ids[b])): int(n)
             for a, b, n in zip(cont.pair_true, cont.pair_pred, cont.pair_area)}
    direct = {(int(i), int(j)): int(np.logical_and(t == i, p == j).sum())
              for i in cont.true_ids for j in cont.pred_ids}
    assert table == {k: v for k, v in direct.items() if v > 0}
    assert cont.fg_union == int(np.logical_or(t != 0, p != 0).sum())


@settings(max_examples=150, deadline=None)
@given(label_pairs())
def test_average_precision_agrees_with_direct_per_object_computation(pair):
    t, p = pair
    thresholds = AP_THRESHOLDS + (0.1, 0.25, 1 / 3)
    ap = average_precision(t, p, thresholds=thresholds)
    for threshold in thresholds:
        assert ap[threshold] == pytest.approx(direct_ap(t, p, threshold))
    m = object_metrics(t, p)
    assert m.ap50 == pytest.approx(direct_ap(t, p, 0.5))
    assert m.map == pytest.approx(np.mean([direct_ap(t, p, th) for th in AP_THRESHOLDS]))


@settings(max_examples=100, deadline=None)
@given(label_pairs())
def test_matches_are_one_to_one_and_above_threshold(pair):
    t, p = pair
    cont = contingency(t, p)
    _, _, iou = direct_iou(t, p)
    for threshold in (0.2, 0.5, 0.75):
        ti, pi, match_iou = match_objects(cont, threshold)
        assert len(set(ti.tolist())) == ti.size and len(set(pi.tolist())) == pi.size
        assert np.all(match_iou >= threshold)
        assert np.allclose(match_iou, iou[ti, pi])
        assert ti.size == direct_tp(iou, threshold)


@settings(max_examples=150, deadline=None)
@given(label_pairs())
def test_error_types_partition_the_objects(pair):
    t, p = pair
    cont = contingency(t, p)
    kinds = error_types(cont)
    true_names = [ERROR_KINDS[k] for k in kinds.true_kind]
    pred_names = [ERROR_KINDS[k] for k in kinds.pred_kind]
    assert "gained" not in true_names and "missed" not in pred_names
    assert true_names.count("correct") == pred_names.count("correct") == kinds.correct
    assert true_names.count("missed") == kinds.missed
    assert pred_names.count("gained") == kinds.gained
    # each split holds one true and >= 2 preds, each merge >= 2 trues and one pred
    assert true_names.count("split") == kinds.split <= pred_names.count("split") / 2
    assert pred_names.count("merge") == kinds.merge <= true_names.count("merge") / 2
    assert 2 * kinds.catastrophe <= min(true_names.count("catastrophe"),
                                        pred_names.count("catastrophe"))
    m = object_metrics(t, p)
    assert m.tp >= m.correct  # a correct pair is always a match


@settings(max_examples=100, deadline=None)
@given(label_pairs())
def test_swapping_truth_and_prediction_mirrors_the_metrics(pair):
    t, p = pair
    a, b = object_metrics(t, p), object_metrics(p, t)
    assert (a.missed, a.gained, a.split, a.merge) == (b.gained, b.missed, b.merge, b.split)
    assert (a.correct, a.catastrophe, a.tp) == (b.correct, b.catastrophe, b.tp)
    assert a.precision == pytest.approx(b.recall) and a.recall == pytest.approx(b.precision)
    assert (a.f1, a.ap50, a.map, a.jaccard) == pytest.approx((b.f1, b.ap50, b.map, b.jaccard))


@settings(max_examples=100, deadline=None)
@given(label_pairs(), st.randoms(use_true_random=False))
def test_metrics_do_not_depend_on_id_values(pair, rnd):
    t, p = pair
    fresh = rnd.sample(range(1, 2**31 - 1), 20)
    remap_t = {v: fresh[k] for k, v in enumerate(i for i in np.unique(t) if i != 0)}
    remap_p = {v: fresh[-1 - k] for k, v in enumerate(j for j in np.unique(p) if j != 0)}
    t2 = np.vectorize(lambda v: remap_t.get(v, 0), otypes=[np.int32])(t)
    p2 = np.vectorize(lambda v: remap_p.get(v, 0), otypes=[np.int32])(p)
    assert_same_metrics(object_metrics(t2, p2), object_metrics(t, p))


@settings(max_examples=100, deadline=None)
@given(label_pairs(), label_pairs())
def test_aggregate_equals_metrics_of_the_images_side_by_side(first, second):
    (t1, p1), (t2, p2) = first, second
    h, w = t1.shape[0] + t2.shape[0], t1.shape[1] + t2.shape[1]
    big_t, big_p = np.zeros((h, w), np.int32), np.zeros((h, w), np.int32)
    big_t[:t1.shape[0], :t1.shape[1]], big_p[:t1.shape[0], :t1.shape[1]] = t1, p1
    big_t[t1.shape[0]:, t1.shape[1]:] = compact(t2, offset=2**31 - 100)
    big_p[t1.shape[0]:, t1.shape[1]:] = compact(p2, offset=2**31 - 100)
    pooled = aggregate([object_metrics(t1, p1), object_metrics(t2, p2)])
    whole = object_metrics(big_t, big_p)
    assert_same_metrics(pooled, whole)


def test_aggregate_of_one_result_is_that_result():
    t, p = canvas(), canvas()
    t[2:12, 2:14], t[2:12, 16:24] = 1, 2
    p[2:12, 2:24] = 3
    m = object_metrics(t, p)
    assert_same_metrics(aggregate([m]), m)
