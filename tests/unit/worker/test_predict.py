"""The one predict path: channel selection, scale handling, and what a predictor returns."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from backend.core.metrics import object_metrics
from worker.predict import BASELINE, Predictor, model_input, predict_image


class BlobModel:
    """A stand-in network for bright round nuclei: interior = the normalised nuclear stain,
    inner distance = its square (peaked at every blob's centre). Keras-free and exact."""

    input_shape = (None, None, None, 2)
    output_names = ["whole_cell_pixelwise", "whole_cell_distance", "nuclear_pixelwise",
                    "nuclear_distance"]

    def __init__(self):
        self.shapes = []

    def predict_on_batch(self, x):
        self.shapes.append(x.shape)
        nuclear = np.clip((x[..., :1] - 0.25) * 2.0, 0, 1)
        pixelwise = np.concatenate([1 - nuclear, nuclear, np.zeros_like(nuclear)], -1)
        distance = nuclear ** 2
        return {"whole_cell_pixelwise": pixelwise, "whole_cell_distance": distance,
                "nuclear_pixelwise": pixelwise, "nuclear_distance": distance}


def blob_image(side: int, sigma: float, seed: int = 0) -> np.ndarray:
    """(2, side, side) float32: separated Gaussian nuclei on a grid, a blank membrane channel."""
    rng = np.random.default_rng(seed)
    image = np.zeros((side, side), np.float32)
    step = int(sigma * 6)
    for y in range(step // 2, side - step // 2, step):
        for x in range(step // 2, side - step // 2, step):
            image[y + rng.integers(-2, 3), x + rng.integers(-2, 3)] = 1.0
    image = ndi.gaussian_filter(image, sigma) * 1000 + rng.normal(0, 0.2, image.shape) + 100
    return np.stack([image, np.zeros_like(image)]).astype(np.float32)


def halve(image: np.ndarray) -> np.ndarray:
    """The same field of view at twice the pixel size (2×2 block means)."""
    c, h, w = image.shape
    return image.reshape(c, h // 2, 2, w // 2, 2).mean(axis=(2, 4))


def upsample2(labels: np.ndarray) -> np.ndarray:
    return labels.repeat(2, axis=-2).repeat(2, axis=-1)


@pytest.mark.parametrize("use_mpp", [True, False])
def test_an_image_at_twice_the_pixel_size_gives_the_same_objects(use_mpp):
    fine = blob_image(256, sigma=3.0)
    coarse = halve(fine)
    predictor = Predictor("blobs", BlobModel(), {}, {"nucleus_diameter": 10.0, "mpp": 0.5})
    at_fine = predict_image(predictor, fine, mpp=0.5 if use_mpp else None)
    at_coarse = predict_image(predictor, coarse, mpp=1.0 if use_mpp else None)
    assert at_coarse.shape == (2, 128, 128) and at_coarse.dtype == np.int32
    n_fine = int(at_fine[1].max())
    assert n_fine >= 100
    assert abs(int(at_coarse[1].max()) - n_fine) <= 1
    assert object_metrics(at_fine[1], upsample2(at_coarse[1])).f1 >= 0.97


def test_the_model_runs_at_its_scale_and_labels_come_back_at_the_image_size():
    image = halve(blob_image(256, sigma=3.0))
    model = BlobModel()
    predictor = Predictor("blobs", model, {}, {"nucleus_diameter": 10.0, "mpp": 0.5})
    labels = predict_image(predictor, image, mpp=1.0)
    assert labels.shape == (2, 128, 128)
    assert model.shapes[0][1:3] == (256, 256)  # tiles of the 2× enlarged image


def test_model_input_selects_nuclear_and_membrane_and_blanks_a_missing_membrane():
    raw = np.stack([np.full((4, 5), v, np.uint16) for v in (10, 20, 30)])
    np.testing.assert_array_equal(model_input(raw, 2, nuclear_channel=2, membrane_channel=0)[:, 0, 0],
                                  [30, 10])
    one = model_input(raw[:1], 2)
    assert one.shape == (2, 4, 5) and not one[1].any()
    assert model_input(raw, 2, membrane_channel=None)[1].sum() == 0
    with pytest.raises(ValueError, match="nuclear channel 5"):
        model_input(raw, 2, nuclear_channel=5)


def test_baseline_predicts_at_native_scale_and_refuses_non_finite_images():
    image = blob_image(96, sigma=2.5)
    labels = predict_image(BASELINE, image)
    assert labels.shape == (2, 96, 96) and labels[1].max() > 10
    image[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        predict_image(BASELINE, image)
