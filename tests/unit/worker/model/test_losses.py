"""Tests of worker.model.losses: PanopticNet losses in keras.ops."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras import ops  # noqa: E402

from worker.model.losses import distance_loss, panoptic_losses, pixelwise_loss  # noqa: E402
from worker.model.transforms import output_names  # noqa: E402


def test_pixelwise_loss_is_scaled_cross_entropy():
    truth = np.zeros((1, 2, 2, 3), np.float32)
    truth[..., 1] = 1
    uniform = np.full((1, 2, 2, 3), 1 / 3, np.float32)
    loss = ops.convert_to_numpy(pixelwise_loss(truth, uniform))
    assert loss.shape == (1, 2, 2)
    np.testing.assert_allclose(loss, 0.01 * np.log(3), rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(pixelwise_loss(truth, truth)), 0, atol=1e-6)


def test_distance_loss_is_mean_squared_error():
    truth = np.array([[[[0.5], [1.0]]]], np.float32)
    pred = np.array([[[[0.0], [1.0]]]], np.float32)
    np.testing.assert_allclose(ops.convert_to_numpy(distance_loss(truth, pred)), [[[0.25, 0.0]]])


def test_panoptic_losses_name_every_head():
    losses = panoptic_losses()
    assert sorted(losses) == sorted(output_names())
    assert losses["nuclear_pixelwise"] is pixelwise_loss
    assert losses["whole_cell_distance"] is distance_loss
