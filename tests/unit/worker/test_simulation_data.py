"""``looplabel simulate --data``: a lab's labelled NPZ feeds the rounds and the held-out set."""

from __future__ import annotations

import io

import numpy as np
import pytest

from backend.core.synthetic import synthetic_tissue
from worker.simulate import SimulationConfig, SimulationError


def _npz(tmp_path, n, channels=3, nuclear_only=False):
    tissues = [synthetic_tissue(64, 80, n_channels=channels, seed=i) for i in range(n)]
    X = np.stack([np.moveaxis(t.image, 0, -1) for t in tissues])
    y = np.stack([t.nuclear if nuclear_only else np.moveaxis(t.labels, 0, -1) for t in tissues])
    path = tmp_path / "lab.npz"
    np.savez(path, X=X, y=y)
    return path, X, y


def test_the_first_images_are_held_out_and_the_rest_feed_the_rounds_balanced_by_difficulty(tmp_path):
    from worker.simulation_data import difficulty, reference_predictors

    path, X, y = _npz(tmp_path, 7)
    config = SimulationConfig(data=path, data_channels="2,1", images=2, rounds=2, test_images=3)
    source = config.source
    assert source.channels == 2 and source.channel_names == ["nuclear", "membrane"]
    X_test, y_test = source.test_set()
    np.testing.assert_array_equal(X_test, X[:3][..., [2, 1]])
    np.testing.assert_array_equal(y_test, y[:3])
    sent = {}
    for r in range(2):
        for name, blob in source.round_files(r):
            with np.load(io.BytesIO(blob)) as arrays:
                sent[name] = (r, arrays["X"], arrays["y"])
    assert sorted(sent) == [f"lab_{i:04d}.npz" for i in range(3, 7)]  # every other image, once
    for name, (_, image, truth) in sent.items():
        i = int(name[4:8])
        np.testing.assert_array_equal(image, X[i][..., [2, 1]])
        np.testing.assert_array_equal(truth, y[i])
    # of the three ways to pair the four images, the deal is the one whose rounds' totals of the
    # round-0 candidates' errors (each scaled by its mean) are the most even
    references = reference_predictors()
    d = np.array([difficulty(references, np.moveaxis(X[i][..., [2, 1]], -1, 0), np.moveaxis(y[i], -1, 0))
                  for i in range(3, 7)], dtype=float)
    d /= np.where(d.mean(axis=0) > 0, d.mean(axis=0), 1.0)

    def spread(pair):
        first = d[list(pair)].sum(axis=0)
        return float(np.sum(first ** 2 + (d.sum(axis=0) - first) ** 2))

    round_of = {int(name[4:8]): r for name, (r, _, _) in sent.items()}
    dealt = tuple(i - 3 for i in sorted(i for i, r in round_of.items() if r == round_of[3]))
    assert spread(dealt) <= min(spread(pair) for pair in ((0, 1), (0, 2), (0, 3))) + 1e-9


def test_rounds_are_dealt_to_even_totals_of_difficulty():
    from worker.simulation_data import balanced_rounds

    # one image as hard as two others: dealt by strata of rank, a round would get 560+243+194+135
    scores = [560, 422, 342, 269, 257, 244, 243, 234, 229, 216, 194, 178, 172, 167, 135, 99]
    plan = balanced_rounds(scores, rounds=4, per_round=4, seed=1)
    assert sorted(i for images in plan for i in images) == list(range(16))
    assert all(len(images) == 4 for images in plan)
    totals = [sum(scores[i] for i in images) for images in plan]
    assert max(totals) - min(totals) <= 0.05 * np.mean(totals)
    assert balanced_rounds(scores, 4, 4, seed=1) == plan  # the same seed deals the same rounds
    assert sorted(map(tuple, balanced_rounds(scores, 4, 4, seed=2))) == sorted(map(tuple, plan))
    with pytest.raises(ValueError, match="cannot fill"):
        balanced_rounds(scores, rounds=3, per_round=4, seed=0)


def test_rounds_are_even_in_every_measure_of_difficulty():
    from worker.simulation_data import balanced_rounds

    # two predictors that find different images hard: dealt by the first alone ({0,1} {2,3} is
    # even for it), the second would get 10+10 against 90+90
    scores = [(50, 10), (50, 10), (50, 90), (50, 90)]
    plan = balanced_rounds(scores, rounds=2, per_round=2, seed=0)
    assert sorted(sum(scores[i][1] for i in images) for images in plan) == [100, 100]


def test_no_swap_can_narrow_a_dealt_round_pair():
    from worker.simulation_data import balanced_rounds

    rng = np.random.default_rng(7)
    for _ in range(20):
        scores = rng.integers(0, 500, size=12).tolist()
        plan = balanced_rounds(scores, rounds=3, per_round=4, seed=0)
        totals = [sum(scores[i] for i in images) for images in plan]
        for a in range(3):
            for b in range(3):
                for i in plan[a]:
                    for j in plan[b]:
                        d = scores[i] - scores[j]
                        assert (totals[a] - d) ** 2 + (totals[b] + d) ** 2 >= totals[a] ** 2 + totals[b] ** 2 - 1e-6


def test_synthetic_rounds_draw_the_same_images_whatever_the_deal():
    from worker.simulation_data import SyntheticImages, cell_count

    source = SyntheticImages(96, 2, seed=3, images_per_round=2, test_images=0, rounds=2)
    drawn = [np.load(io.BytesIO(blob))["y"][..., 0] for r in range(2) for _, blob in source.round_files(r)]
    pool = sorted(cell_count(synthetic_tissue(96, 96, n_channels=2, seed=3 * 100_003 + r * 1000 + k).whole_cell)
                  for r in range(2) for k in range(2))
    assert sorted(cell_count(labels) for labels in drawn) == pool


@pytest.mark.parametrize("kwargs, message", [
    ({"images": 4, "rounds": 2, "test_images": 2}, "need 10"),
    ({"data_channels": "0,9"}, "channel"),
])
def test_data_that_cannot_feed_the_loop_is_refused(tmp_path, kwargs, message):
    path, _, _ = _npz(tmp_path, 5)
    with pytest.raises(SimulationError, match=message):
        SimulationConfig(data=path, **{"images": 1, "rounds": 2, "test_images": 1, **kwargs})


def test_nuclear_only_truth_is_refused_with_the_reason(tmp_path):
    path, _, _ = _npz(tmp_path, 5, nuclear_only=True)
    with pytest.raises(SimulationError, match="whole-cell and nuclear"):
        SimulationConfig(data=path, images=1, rounds=2, test_images=1)


def test_corrections_per_100_cells_weigh_crops_by_their_cells():
    from worker.simulate import _per_100

    # 3 of 10 cells and 1 of 30: 4 of 40 cells, not the mean of 30 % and 3.3 %
    assert _per_100([3, 1], [10, 30]) == 10.0
    assert _per_100([3, 5], [10, None]) == 30.0  # a crop without a truth count is left out
    assert _per_100([], []) is None and _per_100([2], [0]) is None
