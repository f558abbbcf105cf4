"""Tests of worker.model.panoptic: architecture, custom layers, losses, save/load."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras import ops  # noqa: E402

from worker.model.panoptic import build_panoptic, load_panoptic  # noqa: E402
from worker.model.transforms import output_names  # noqa: E402

OUTPUTS = sorted(output_names())


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(0)
    return build_panoptic(2, "small")


@pytest.mark.parametrize("channels", [2, 6])
def test_small_model_builds_and_predicts_any_size(channels):
    model = build_panoptic(channels, "small")
    x = np.random.default_rng(0).random((1, 70, 45, channels), dtype=np.float32)
    outputs = model(x, training=False)
    assert sorted(outputs) == OUTPUTS
    for name, value in outputs.items():
        value = ops.convert_to_numpy(value)
        assert value.shape == (1, 70, 45, 3 if name.endswith("pixelwise") else 1)
        assert value.dtype == np.float32
        if name.endswith("pixelwise"):
            np.testing.assert_allclose(value.sum(-1), 1.0, atol=1e-5)


def test_resnet50_model_takes_six_channels():
    model = build_panoptic(6, "resnet50")
    assert model.input_shape == (None, None, None, 6)
    outputs = model(np.zeros((1, 128, 128, 6), np.float32), training=False)
    assert ops.convert_to_numpy(outputs["whole_cell_distance"]).shape == (1, 128, 128, 1)
    # the backbone is ResNet50 without downloaded weights (about 23.6 M parameters)
    assert model.get_layer("resnet50_backbone").count_params() > 20_000_000


def test_build_rejects_bad_arguments():
    with pytest.raises(ValueError, match="backbone"):
        build_panoptic(2, "vgg")
    with pytest.raises(ValueError, match="n_channels"):
        build_panoptic(0, "small")


def test_save_and_load_give_identical_outputs(small_model, tmp_path):
    path = tmp_path / "model.keras"
    small_model.save(path)
    loaded = load_panoptic(path)
    x = np.random.default_rng(1).random((2, 64, 64, 2), dtype=np.float32)
    before = small_model.predict_on_batch(x)
    after = loaded.predict_on_batch(x)
    for name in OUTPUTS:
        np.testing.assert_array_equal(np.asarray(before[name]), np.asarray(after[name]))
