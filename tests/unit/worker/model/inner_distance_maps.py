"""Random label images and the model-like maps made from them, for the post-processing tests.

Kinds of map (like ``bench/postprocess.py``, which uses the same recipe at 2048²):

* ``clean``: the exact training targets (inner distance, one-hot pixelwise);
* ``blurred``: Gaussian sigma 1 px;
* ``noisy``: blurred, then per-pixel noise sigma 0.02;
* ``smoothed``: noisy, then the inner distance smoothed again (sigma 1 px), as
  ``maxima_smoothing=1`` does.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from backend.core.synthetic import synthetic_tissue
from worker.model.transforms import targets_for

KINDS = ("clean", "blurred", "noisy", "smoothed")


def random_labels(seed: int, size: int) -> np.ndarray:
    """A (size, size) int32 label image: synthetic tissue (even seeds) or cut Voronoi cells.

    The Voronoi cells are regions of random points cut to a disk of random radius around
    each point: touching cells of varied size, some isolated, some non-convex pieces.
    """
    if seed % 2 == 0:
        return synthetic_tissue(size, size, n_channels=1, seed=seed).whole_cell
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, max(3, size * size // 120)))
    points = np.zeros((size, size), np.int32)
    ys, xs = rng.integers(0, size, (2, n))
    points[ys, xs] = np.arange(1, n + 1)
    distance, (iy, ix) = ndi.distance_transform_edt(points == 0, return_indices=True)
    labels = points[iy, ix]
    labels[distance > rng.uniform(3, 14)] = 0
    return labels.astype(np.int32)


def model_like_maps(labels: np.ndarray, kind: str, seed: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inner distance, interior and background maps of ``labels``, of the given kind.

    Returns
    -------
    inner_distance, interior, background : np.ndarray of float32, shape (H, W)
    """
    rng = np.random.default_rng(seed)
    targets = targets_for(np.stack([labels, labels], -1)[None])
    distance = targets["whole_cell_distance"][0, ..., 0]
    pixelwise = targets["whole_cell_pixelwise"][0]
    if kind != "clean":
        distance = ndi.gaussian_filter(distance, 1.0)
        pixelwise = ndi.gaussian_filter(pixelwise, (1.0, 1.0, 0))
    if kind in ("noisy", "smoothed"):
        distance = distance + rng.normal(0, 0.02, distance.shape)
        pixelwise = np.clip(pixelwise + rng.normal(0, 0.02, pixelwise.shape), 1e-3, None)
        pixelwise /= pixelwise.sum(-1, keepdims=True)
    if kind == "smoothed":
        distance = ndi.gaussian_filter(distance, 1.0, truncate=3.0)
    return (distance.astype(np.float32), pixelwise[..., 1].astype(np.float32),
            pixelwise[..., 0].astype(np.float32))


def cell_mask(interior: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The mask :func:`worker.model.postprocess.deep_watershed` builds with its defaults."""
    smoothed = ndi.gaussian_filter(interior, 2, truncate=3.0)
    return (smoothed > 0.2) | (background < 0.5)
