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


def test_the_first_images_are_held_out_and_the_rest_feed_the_rounds_in_order(tmp_path):
    path, X, y = _npz(tmp_path, 7)
    config = SimulationConfig(data=path, data_channels="2,1", images=2, rounds=2, test_images=3)
    source = config.source
    assert source.channels == 2 and source.channel_names == ["nuclear", "membrane"]
    X_test, y_test = source.test_set()
    np.testing.assert_array_equal(X_test, X[:3][..., [2, 1]])
    np.testing.assert_array_equal(y_test, y[:3])
    names, blobs = zip(*source.round_files(1))
    assert names == ("lab_0005.npz", "lab_0006.npz")
    with np.load(io.BytesIO(blobs[1])) as sent:
        np.testing.assert_array_equal(sent["X"], X[6][..., [2, 1]])
        np.testing.assert_array_equal(sent["y"], y[6])


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
