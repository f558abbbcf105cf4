"""Tests for backend.core.consensus: IoU-matched instance voting over k annotators."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from skimage.measure import label as connected_label

from backend.core.consensus import AnnotatorAgreement, FusionResult, fuse_annotations

PROPERTY = settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# ------------------------------------------------------------------ helpers used by the tests


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two label images hold the same objects up to renumbering (0 is background)."""
    a, b = a.ravel().astype(np.int64), b.ravel().astype(np.int64)
    if not np.array_equal(a == 0, b == 0):
        return False
    pairs = np.unique(a * 2**32 + b)
    return pairs.size == np.unique(a).size == np.unique(b).size


def random_labels(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """(F, h, w) int32 of blocky 8-connected objects with background."""
    layers = []
    for _ in range(shape[0]):
        scale = int(rng.integers(1, 12))
        coarse = rng.integers(0, 4, (shape[1] // scale + 1, shape[2] // scale + 1))
        image = np.repeat(np.repeat(coarse, scale, 0), scale, 1)[: shape[1], : shape[2]]
        layers.append(connected_label(image, background=0, connectivity=2))
    return np.stack(layers).astype(np.int32)


def renumbered(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each feature's non-zero ids replaced by distinct random ids (an annotator's own ids)."""
    out = np.empty_like(labels)
    for f, layer in enumerate(labels):
        ids, inverse = np.unique(layer, return_inverse=True)
        new = rng.choice(2**31 - 1, ids.size, replace=False).astype(np.int32) + 1
        new[ids == 0] = 0
        out[f] = new[inverse.reshape(layer.shape)]
    return out


def object_count(labels: np.ndarray) -> int:
    return sum(np.unique(layer[layer > 0]).size for layer in labels)


def square(shape, y0, y1, x0, x1, value=1):
    out = np.zeros(shape, np.int32)
    out[y0:y1, x0:x1] = value
    return out


def crop_with_cells():
    """(2, 40, 40): three whole cells and two nuclei."""
    labels = np.zeros((2, 40, 40), np.int32)
    labels[0, 2:12, 2:12] = 1
    labels[0, 2:12, 20:34] = 2
    labels[0, 20:38, 5:30] = 3
    labels[1, 4:9, 4:9] = 1
    labels[1, 25:32, 10:20] = 2
    return labels


# ------------------------------------------------------------------ example cases


def test_unanimous_annotators_give_their_labels_and_perfect_scores():
    truth = crop_with_cells()
    rng = np.random.default_rng(0)
    result = fuse_annotations([renumbered(truth, rng) for _ in range(3)])
    assert isinstance(result, FusionResult)
    assert result.labels.dtype == np.int32 and result.labels.shape == truth.shape
    for f in range(2):
        assert same_partition(result.labels[f], truth[f])
    for agreement in result.agreement:
        assert agreement == AnnotatorAgreement(mean_iou=1.0, matched=5, missed=0, extra=0)
        assert agreement.score == 1.0


def test_two_of_three_keeps_a_cell_one_missed_and_drops_one_only_one_drew():
    truth = crop_with_cells()
    missing = truth.copy()
    missing[0][missing[0] == 2] = 0  # annotator 2 missed cell 2
    lonely = truth.copy()
    lonely[0, 30:36, 32:38] = 9  # annotator 0 alone drew an extra cell
    result = fuse_annotations([lonely, truth, missing])
    assert same_partition(result.labels[0], truth[0])
    assert same_partition(result.labels[1], truth[1])
    first, second, third = result.agreement
    assert (first.matched, first.missed, first.extra) == (5, 0, 1)
    assert (second.matched, second.missed, second.extra) == (5, 0, 0)
    assert (third.matched, third.missed, third.extra) == (4, 1, 0)
    assert second.score == 1.0
    assert first.score == pytest.approx(5 / 5.5) and third.score == pytest.approx(4 / 4.5)


def test_spammer_with_empty_labels_changes_nothing_and_scores_zero():
    truth = crop_with_cells()
    spam = np.zeros_like(truth)
    result = fuse_annotations([truth, spam, truth])
    for f in range(2):
        assert same_partition(result.labels[f], truth[f])
    spammer = result.agreement[1]
    assert (spammer.matched, spammer.missed, spammer.extra) == (0, 5, 0)
    assert spammer.mean_iou == 0.0 and spammer.score == 0.0
    assert result.agreement[0].score == result.agreement[2].score == 1.0


def test_annotator_splitting_a_cell_is_outvoted_and_penalised():
    truth = crop_with_cells()
    splitter = truth.copy()
    cell = splitter[0] == 3  # 18 x 25 = 450 px; split off its lower 6 rows (150 px)
    splitter[0][32:38, 5:30] = 77
    assert (splitter[0] == 3).sum() == 300
    result = fuse_annotations([truth, splitter, truth])
    assert same_partition(result.labels[0], truth[0])
    assert np.unique(result.labels[0][cell]).size == 1
    agreement = result.agreement[1]
    assert (agreement.matched, agreement.missed, agreement.extra) == (5, 0, 1)
    assert agreement.mean_iou == pytest.approx((4 + 300 / 450) / 5)
    assert agreement.score == pytest.approx(agreement.mean_iou * 5 / (5 + 0.5 * 1))
    assert result.agreement[0].score == 1.0


def test_pixels_are_decided_by_majority_vote():
    shape = (1, 20, 20)
    a = square(shape[1:], 2, 10, 2, 10)[None]
    b = square(shape[1:], 3, 11, 2, 10)[None]
    c = square(shape[1:], 2, 10, 4, 12)[None]
    result = fuse_annotations([a, b, c])
    votes = (a > 0).astype(int) + (b > 0) + (c > 0)
    np.testing.assert_array_equal(result.labels[0] > 0, votes[0] >= 2)
    unanimous = fuse_annotations([a, b, c], quorum=3)
    np.testing.assert_array_equal(unanimous.labels[0] > 0, votes[0] == 3)
    anyone = fuse_annotations([a, b, c], quorum=1)
    np.testing.assert_array_equal(anyone.labels[0] > 0, votes[0] >= 1)


def test_objects_below_the_iou_threshold_are_different_objects():
    shape = (20, 30)
    a = square(shape, 0, 10, 0, 10)[None]
    b = square(shape, 0, 10, 4, 14)[None]  # IoU with a = 60 / 140 = 0.43
    low = fuse_annotations([a, b], quorum=1, iou_threshold=0.4)
    high = fuse_annotations([a, b], quorum=1, iou_threshold=0.5)
    assert np.unique(low.labels[0][low.labels[0] > 0]).size == 1  # one matched object
    assert np.unique(high.labels[0][high.labels[0] > 0]).size == 2  # two objects
    assert low.agreement[0].matched == 1 and high.agreement[0].matched == 1
    assert high.agreement[0].extra == 0 and high.agreement[0].missed == 1


def test_clusters_match_on_the_mean_iou_over_their_members():
    shape = (20, 30)
    a = square(shape, 0, 10, 0, 10)[None]
    c = square(shape, 0, 10, 5, 15)[None]  # IoU with a (and with the copy of a) = 50 / 150
    result = fuse_annotations([a, a.copy(), c], quorum=1, iou_threshold=0.5)
    # summed IoU 0.67 would pass the threshold, the mean 0.33 does not: two objects
    assert np.unique(result.labels[0][result.labels[0] > 0]).size == 2
    np.testing.assert_array_equal(result.labels[0] == 1, a[0] > 0)
    np.testing.assert_array_equal(result.labels[0] == 2, (c[0] > 0) & (a[0] == 0))


def test_single_annotator_is_its_own_consensus():
    truth = crop_with_cells()
    result = fuse_annotations([renumbered(truth, np.random.default_rng(3))])
    for f in range(2):
        assert same_partition(result.labels[f], truth[f])
    assert result.agreement[0].score == 1.0


def test_all_empty_annotations_agree_perfectly_on_nothing():
    empty = np.zeros((2, 8, 8), np.int32)
    result = fuse_annotations([empty, empty])
    assert not result.labels.any()
    assert result.agreement[0] == AnnotatorAgreement(0.0, 0, 0, 0)
    assert result.agreement[0].score == 1.0


@pytest.mark.parametrize(
    ("annotations", "kwargs", "message"),
    [
        ([], {}, "no annotations"),
        ([np.zeros((4, 4), np.int32)], {}, r"\(F, h, w\)"),
        ([np.zeros((1, 4, 4), np.int32), np.zeros((1, 4, 5), np.int32)], {}, "same crop"),
        ([np.zeros((1, 4, 4), float)], {}, "integers"),
        ([np.full((1, 4, 4), -1, np.int32)], {}, "outside"),
        ([np.zeros((1, 4, 4), np.int32)] * 2, {"quorum": 3}, "between 1 and the 2"),
        ([np.zeros((1, 4, 4), np.int32)] * 2, {"quorum": 0}, "between 1 and the 2"),
        ([np.zeros((1, 4, 4), np.int32)], {"quorum": 1.5}, "integer"),
        ([np.zeros((1, 4, 4), np.int32)], {"iou_threshold": 0}, "iou_threshold"),
        ([np.zeros((1, 4, 4), np.int32)], {"iou_threshold": 1.5}, "iou_threshold"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(annotations, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fuse_annotations(annotations, **kwargs)


# ------------------------------------------------------------------ properties


@PROPERTY
@given(
    k=st.integers(1, 5),
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    features=st.integers(1, 2),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_identical_annotations_fuse_to_themselves(k, height, width, features, seed, data):
    quorum = data.draw(st.integers(1, k))
    rng = np.random.default_rng(seed)
    truth = random_labels(rng, (features, height, width))
    result = fuse_annotations([renumbered(truth, rng) for _ in range(k)], quorum=quorum)
    for f in range(features):
        assert same_partition(result.labels[f], truth[f])
    n = object_count(truth)
    for agreement in result.agreement:
        assert (agreement.matched, agreement.missed, agreement.extra) == (n, 0, 0)
        assert agreement.score == 1.0


@PROPERTY
@given(
    k=st.integers(1, 5),
    height=st.integers(1, 30),
    width=st.integers(1, 30),
    seed=st.integers(0, 2**32 - 1),
    threshold=st.sampled_from([0.3, 0.5, 0.75, 1.0]),
    data=st.data(),
)
def test_fusion_invariants_on_independent_annotations(k, height, width, seed, threshold, data):
    quorum = data.draw(st.integers(1, k))
    rng = np.random.default_rng(seed)
    annotations = [random_labels(rng, (2, height, width)) for _ in range(k)]
    result = fuse_annotations(annotations, quorum=quorum, iou_threshold=threshold)
    labels = result.labels
    assert labels.shape == (2, height, width) and labels.dtype == np.int32
    drawn = sum((a > 0).astype(int) for a in annotations)
    assert np.all(drawn[labels > 0] >= quorum)  # kept only where a quorum drew something
    n_fused = 0
    for layer in labels:
        ids = np.unique(layer[layer > 0])
        assert np.array_equal(ids, np.arange(1, ids.size + 1))  # compact
        n_fused += ids.size
    assert len(result.agreement) == k
    for annotation, agreement in zip(annotations, result.agreement):
        assert agreement.matched + agreement.missed == n_fused
        assert agreement.matched + agreement.extra == object_count(annotation)
        if agreement.matched:
            assert threshold - 1e-12 <= agreement.mean_iou <= 1.0
        else:
            assert agreement.mean_iou == 0.0
        assert 0.0 <= agreement.score <= 1.0
    again = fuse_annotations(annotations, quorum=quorum, iou_threshold=threshold)
    np.testing.assert_array_equal(again.labels, labels)  # deterministic
    assert again.agreement == result.agreement


@PROPERTY
@given(
    k=st.integers(1, 4),
    spammers=st.integers(1, 3),
    size=st.integers(4, 30),
    seed=st.integers(0, 2**32 - 1),
)
def test_spammers_do_not_change_the_consensus_of_a_quorum(k, spammers, size, seed):
    rng = np.random.default_rng(seed)
    truth = random_labels(rng, (2, size, size))
    honest = [renumbered(truth, rng) for _ in range(k)]
    spam = [np.zeros_like(truth) for _ in range(spammers)]
    order = rng.permutation(k + spammers)
    annotations = [(honest + spam)[i] for i in order]
    result = fuse_annotations(annotations, quorum=k)
    for f in range(2):
        assert same_partition(result.labels[f], truth[f])
    n = object_count(truth)
    for i, agreement in zip(order, result.agreement):
        if i >= k:
            assert (agreement.matched, agreement.missed, agreement.extra) == (0, n, 0)
            assert agreement.score == (0.0 if n else 1.0)
        else:
            assert agreement.score == 1.0
