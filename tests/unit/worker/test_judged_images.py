"""The promotion comparison leaves out held-out images drawn by the predictors it compares."""

from __future__ import annotations

import numpy as np

from worker.training import judged_images


def _tiles(n):
    X = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1)
    return X, X.astype(np.int32)


def test_images_a_reference_drew_are_left_out():
    X, y = _tiles(4)
    owners = [7, 7, 8, 9]  # image 7 has two tiles
    drawn = {7: "model v1", 8: "generalist", 9: "model v1"}
    Xk, yk, held = judged_images(X, y, owners, drawn, {"model v1"})
    assert Xk[:, 0, 0, 0].tolist() == [2.0] and yk[:, 0, 0, 0].tolist() == [2]
    assert held == {"images": [8], "left_out": {"7": "model v1", "9": "model v1"}, "ground_truth": []}
    # against the generalist and the baseline (round 0), v1's images are fair and 8 is not
    _, _, held = judged_images(X, y, owners, drawn, {"generalist", "baseline"})
    assert held == {"images": [7, 9], "left_out": {"8": "generalist"}, "ground_truth": []}


def test_everything_is_kept_when_a_reference_drew_every_image_or_nobody_knows():
    X, y = _tiles(3)
    Xk, _, held = judged_images(X, y, [1, 2, 3], {1: "model v2", 2: "model v2", 3: "model v2"}, {"model v2"})
    assert Xk.shape[0] == 3 and held == {"images": [1, 2, 3], "left_out": {}, "ground_truth": []}
    Xk, _, held = judged_images(X, y, [1, 2, 3], {}, {"model v2"})  # approved outside any round
    assert Xk.shape[0] == 3 and held["left_out"] == {}
    Xk, _, held = judged_images(X, y, [], {}, {"model v2"})  # tiles of unknown images
    assert Xk.shape[0] == 3 and held == {"images": [], "left_out": {}, "ground_truth": []}


def test_ground_truth_tiles_are_kept_whoever_drew_the_approved_labels():
    X, y = _tiles(4)
    owners = [7, 7, 8, 9]
    drawn = {7: "model v1", 8: "model v1", 9: "model v1"}
    truth = np.array([True, True, False, False])  # image 7 came with the lab's ground truth
    Xk, _, held = judged_images(X, y, owners, drawn, {"model v1"}, truth=truth)
    assert Xk[:, 0, 0, 0].tolist() == [0.0, 1.0]
    assert held == {"images": [7], "left_out": {"8": "model v1", "9": "model v1"}, "ground_truth": [7]}
    # no ground truth and every image drawn by the reference: all kept, as before
    Xk, _, held = judged_images(X, y, owners, drawn, {"model v1"}, truth=np.zeros(4, bool))
    assert Xk.shape[0] == 4 and held["ground_truth"] == [] and held["left_out"] == {}
