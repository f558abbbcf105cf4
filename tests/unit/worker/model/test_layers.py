"""Tests of worker.model.layers: the custom PanopticNet layers."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras import ops  # noqa: E402

from worker.model.layers import (  # noqa: E402
    BilinearUpsample,
    CoordinateMap,
    CropToReference,
    PadToMultiple,
)


def test_pad_to_multiple_pads_bottom_right_with_zeros():
    x = np.ones((1, 5, 9, 2), np.float32)
    padded = ops.convert_to_numpy(PadToMultiple(8)(x))
    assert padded.shape == (1, 8, 16, 2)
    assert padded[:, :5, :9].min() == 1 and padded[:, 5:].max() == 0 and padded[:, :, 9:].max() == 0


def test_coordinate_map_appends_rows_and_columns_in_unit_range():
    x = np.zeros((2, 3, 5, 1), np.float32)
    out = ops.convert_to_numpy(CoordinateMap()(x))
    assert out.shape == (2, 3, 5, 3)
    np.testing.assert_allclose(out[0, :, 0, 1], [-1, 0, 1])
    np.testing.assert_allclose(out[1, 0, :, 2], [-1, -0.5, 0, 0.5, 1])
    np.testing.assert_array_equal(out[..., 0], 0)


@pytest.mark.parametrize("shape", [(1, 4, 6, 3), (2, 7, 5, 1)])
def test_bilinear_upsample_matches_keras_resize(shape):
    x = np.random.default_rng(2).random(shape, dtype=np.float32)
    ours = ops.convert_to_numpy(BilinearUpsample(1)(x))
    reference = ops.convert_to_numpy(
        ops.image.resize(x, (shape[1] * 2, shape[2] * 2), interpolation="bilinear", antialias=False)
    )
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    assert ops.convert_to_numpy(BilinearUpsample(3)(x)).shape == (shape[0], shape[1] * 8,
                                                                    shape[2] * 8, shape[3])


def test_crop_to_reference_undoes_the_padding():
    x = np.random.default_rng(3).random((1, 5, 9, 2), dtype=np.float32)
    padded = PadToMultiple(8)(x)
    np.testing.assert_array_equal(ops.convert_to_numpy(CropToReference()([padded, x])), x)


@pytest.mark.parametrize("layer", [PadToMultiple(16), CoordinateMap(), BilinearUpsample(2)])
def test_layers_survive_a_config_round_trip(layer):
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
