"""Tests of worker.model.infer: tiling, blending, untiling, whole-image prediction."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.model.infer import (
    batch_size_for,
    blend_window,
    predict_labels,
    predict_outputs,
    tile_origins,
)
from worker.model.transforms import preprocess


class PixelwiseModel:
    """Stand-in model whose outputs are per-pixel functions of the input.

    Blending overlapping tiles of a per-pixel function must give that function of the whole
    image back, whatever the tiling, so any tiling or weighting error shows.
    """

    output_names = ["nuclear_distance", "nuclear_pixelwise",
                    "whole_cell_distance", "whole_cell_pixelwise"]
    input_shape = (None, None, None, 2)

    def __init__(self):
        self.batch_shapes = []

    @staticmethod
    def function(x):
        a, b = x[..., :1], x[..., 1:2]
        logits = np.concatenate([a, b, a * b], axis=-1)
        soft = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        return {"nuclear_distance": a, "nuclear_pixelwise": soft,
                "whole_cell_distance": b + 0.5 * a, "whole_cell_pixelwise": soft[..., ::-1]}

    def predict_on_batch(self, x):
        self.batch_shapes.append(x.shape)
        return self.function(x)


@given(st.integers(1, 600), st.integers(8, 256), st.data())
def test_tile_origins_cover_the_axis_with_the_overlap(size, tile, data):
    size = max(size, tile)
    overlap = data.draw(st.integers(0, tile - 1))
    starts = np.array(tile_origins(size, tile, overlap))
    assert starts[0] == 0 and starts[-1] == size - tile
    assert np.all(np.diff(starts) > 0)
    assert np.all(np.diff(starts) <= tile - overlap)  # neighbours overlap by >= overlap
    covered = np.zeros(size, bool)
    for s in starts:
        covered[s : s + tile] = True
    assert covered.all()


def test_tile_origins_reject_bad_arguments():
    with pytest.raises(ValueError, match="shorter"):
        tile_origins(10, 16, 0)
    with pytest.raises(ValueError, match="overlap"):
        tile_origins(100, 16, 16)


@given(st.integers(2, 128), st.data())
def test_blend_window_is_positive_symmetric_and_flat_inside(tile, data):
    overlap = data.draw(st.integers(0, tile - 1))
    window = blend_window(tile, overlap)
    assert window.shape == (tile, tile) and window.dtype == np.float32
    assert window.min() > 0 and window.max() <= 1
    np.testing.assert_allclose(window, window[::-1, ::-1])
    np.testing.assert_allclose(window, window.T)
    if tile > 2 * overlap:
        assert window[tile // 2, tile // 2] == pytest.approx(1.0)


@pytest.mark.parametrize("shape", [(2, 100, 70), (2, 40, 50), (2, 64, 64), (2, 129, 200)])
def test_blended_tiles_equal_the_whole_image_prediction(shape):
    image = np.random.default_rng(0).integers(0, 4000, shape).astype(np.uint16)
    model = PixelwiseModel()
    outputs = predict_outputs(model, image, tile=64, overlap=16, batch_size=3)
    expected = PixelwiseModel.function(preprocess(np.moveaxis(image, 0, -1)[None])[0])
    for name, value in outputs.items():
        assert value.shape == shape[1:] + (expected[name].shape[-1],)
        np.testing.assert_allclose(value, expected[name], atol=1e-5)
    # no blank tiles: the batches hold exactly the tiles, in at most two shapes (two traces)
    assert len(set(model.batch_shapes)) <= 2
    assert not (model.batch_shapes[-1][0] > model.batch_shapes[0][0])


@pytest.mark.parametrize("n_rows, batch_size, expected", [(5, 32, [25]), (5, 8, [7, 7, 7, 4]),
                                                          (4, 8, [8, 8]), (1, 4, [1])])
def test_tiles_run_in_equal_batches_without_blank_tiles(n_rows, batch_size, expected):
    side = 64 + (n_rows - 1) * 48  # tile 64, overlap 16: n_rows tiles per axis
    model = PixelwiseModel()
    predict_outputs(model, np.ones((2, side, side), np.float32), tile=64, overlap=16,
                    batch_size=batch_size)
    assert [shape[0] for shape in model.batch_shapes] == expected


def test_predict_outputs_rejects_wrong_channels_and_layout():
    with pytest.raises(ValueError, match="channel"):
        predict_outputs(PixelwiseModel(), np.zeros((3, 32, 32)), tile=32, overlap=8)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        predict_outputs(PixelwiseModel(), np.zeros((32, 32)), tile=32, overlap=8)


def test_batch_size_follows_the_memory_budget():
    assert batch_size_for(256, memory_budget_bytes=1) == 1
    assert batch_size_for(256, memory_budget_bytes=2**40) == 32
    assert batch_size_for(128, 2**30) == 4 * batch_size_for(256, 2**30)
    assert 1 <= batch_size_for(256) <= 32


@pytest.fixture(scope="module")
def small_model():
    keras = pytest.importorskip("keras")
    from worker.model.panoptic import build_panoptic

    keras.utils.set_random_seed(0)
    return build_panoptic(2, "small")


@pytest.mark.parametrize("shape", [(2, 90, 70), (2, 50, 40)])
def test_predict_labels_with_a_keras_model_handles_any_size(small_model, shape):
    image = np.random.default_rng(1).integers(0, 1000, shape).astype(np.uint16)
    labels = predict_labels(small_model, image, tile=64, overlap=16)
    assert labels.shape == (2,) + shape[1:]
    assert labels.dtype == np.int32
