"""Training targets and input normalisation for the PanopticNet.

Pure NumPy / SciPy / scikit-image: this module never imports Keras, so the web tier and the
round-0 baseline can use it without the ``ml`` extra.

Two transforms of a label image are learned per feature (Greenwald et al., Methods,
"PanopticNet transforms"):

* the *pixel-wise* transform: one-hot (background, interior, border), where the border is the
  one-pixel inner rim of every cell (pixels of a cell that touch another label or background);
* the *inner distance* transform: ``1 / (1 + alpha * beta * r)`` inside each cell, with ``r``
  the Euclidean distance (pixels) of the pixel to its cell's centroid,
  ``alpha = 1 / sqrt(cell area)`` and ``beta = 1``; 0 on background.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: Label features, in the order of the last axis of ``y`` and the first axis of label stacks.
FEATURES: tuple[str, ...] = ("whole_cell", "nuclear")

#: Classes of the pixel-wise transform, in channel order.
PIXELWISE_CLASSES: tuple[str, ...] = ("background", "interior", "border")

_CROSS = ndi.generate_binary_structure(2, 1)


def output_names(features: tuple[str, ...] = FEATURES) -> list[str]:
    """Names of the model heads, two per feature.

    Parameters
    ----------
    features : tuple of str
        Feature names, e.g. ``("whole_cell", "nuclear")``.

    Returns
    -------
    list of str
        ``[f"{feature}_pixelwise", f"{feature}_distance", ...]`` in feature order.
    """
    names = []
    for feature in features:
        names += [f"{feature}_pixelwise", f"{feature}_distance"]
    return names


def _check_label_image(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(
            f"expected one label image of shape (H, W), got shape {labels.shape}; "
            "pass one feature of one image at a time"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"label image must hold integers, got dtype {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError("label image holds negative ids; 0 is background, cells are > 0")
    return labels.astype(np.int64, copy=False)


def cell_border(labels: np.ndarray) -> np.ndarray:
    """Inner rim of every cell: cell pixels with a 4-neighbour of a different label.

    Parameters
    ----------
    labels : np.ndarray of int, shape (H, W)
        Instance labels, 0 = background.

    Returns
    -------
    np.ndarray of bool, shape (H, W)
        True on border pixels. Pixels on the image edge are not border because of the edge
        alone (the image is extended by reflection).
    """
    labels = _check_label_image(labels)
    high = ndi.grey_dilation(labels, footprint=_CROSS, mode="nearest")
    low = ndi.grey_erosion(labels, footprint=_CROSS, mode="nearest")
    return (labels > 0) & ((high != labels) | (low != labels))


def pixelwise_transform(labels: np.ndarray) -> np.ndarray:
    """One-hot (background, interior, border) transform of a label image.

    Parameters
    ----------
    labels : np.ndarray of int, shape (H, W)
        Instance labels, 0 = background.

    Returns
    -------
    np.ndarray of float32, shape (H, W, 3)
        Channels in :data:`PIXELWISE_CLASSES` order; exactly one channel is 1 per pixel.
    """
    labels = _check_label_image(labels)
    border = cell_border(labels)
    interior = (labels > 0) & ~border
    background = labels == 0
    return np.stack([background, interior, border], axis=-1).astype(np.float32)


def inner_distance_transform(labels: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """Size-normalised inverse distance of every cell pixel to its cell's centroid.

    ``value = 1 / (1 + alpha * beta * r)`` with ``alpha = 1 / sqrt(area)``; vectorised over
    cells (per-label sums with ``np.bincount`` and a per-pixel lookup, no loop over cells).

    Parameters
    ----------
    labels : np.ndarray of int, shape (H, W)
        Instance labels, 0 = background. Ids need not be consecutive.
    beta : float
        Scale hyper-parameter (the paper uses 1).

    Returns
    -------
    np.ndarray of float32, shape (H, W, 1)
        Values in (0, 1] inside cells (1 at a centroid pixel), 0 on background.
    """
    labels = _check_label_image(labels)
    out = np.zeros(labels.shape + (1,), dtype=np.float32)
    cell = labels > 0
    if not cell.any():
        return out
    ids, compact = np.unique(labels[cell], return_inverse=True)
    ys, xs = np.nonzero(cell)
    area = np.bincount(compact).astype(np.float64)
    cy = np.bincount(compact, weights=ys) / area
    cx = np.bincount(compact, weights=xs) / area
    r = np.hypot(ys - cy[compact], xs - cx[compact])
    alpha = 1.0 / np.sqrt(area[compact])
    out[ys, xs, 0] = 1.0 / (1.0 + alpha * beta * r)
    return out


def targets_for(y: np.ndarray, features: tuple[str, ...] = FEATURES) -> dict[str, np.ndarray]:
    """Targets of all heads for a batch of label stacks.

    Parameters
    ----------
    y : np.ndarray of int32, shape (N, H, W, F)
        Instance labels, features on the last axis in ``features`` order (TissueNet layout).
    features : tuple of str
        Names of the ``F`` features.

    Returns
    -------
    dict of str to np.ndarray of float32
        ``{feature}_pixelwise``: (N, H, W, 3) one-hot; ``{feature}_distance``: (N, H, W, 1).
    """
    y = np.asarray(y)
    if y.ndim != 4 or y.shape[-1] != len(features):
        raise ValueError(
            f"expected labels of shape (N, H, W, {len(features)}) with features "
            f"{features} on the last axis, got shape {y.shape}"
        )
    n, h, w, _ = y.shape
    targets = {}
    for f, feature in enumerate(features):
        pix = np.empty((n, h, w, 3), np.float32)
        dist = np.empty((n, h, w, 1), np.float32)
        for i in range(n):
            pix[i] = pixelwise_transform(y[i, ..., f])
            dist[i] = inner_distance_transform(y[i, ..., f])
        targets[f"{feature}_pixelwise"] = pix
        targets[f"{feature}_distance"] = dist
    return targets


def normalize_channel(
    channel: np.ndarray, percentile: float = 99.9, kernel_size: int | None = 128
) -> np.ndarray:
    """Clip one channel at a high percentile, scale to [0, 1], then apply CLAHE.

    Parameters
    ----------
    channel : np.ndarray, shape (H, W)
        Intensities in any numeric dtype.
    percentile : float
        Upper clip percentile (99.9 in the paper).
    kernel_size : int or None
        CLAHE tile size in pixels (capped at the image size). A fixed size in pixels keeps
        training tiles and whole images normalised alike; None uses scikit-image's default
        (1/8 of the image).

    Returns
    -------
    np.ndarray of float32, shape (H, W)
        Values in [0, 1]; all zeros for a constant channel.
    """
    from skimage.exposure import equalize_adapthist

    channel = np.asarray(channel, dtype=np.float64)
    if not np.all(np.isfinite(channel)):
        raise ValueError("image holds NaN or infinite values; clean the input before predicting")
    low = float(channel.min())
    high = float(np.percentile(channel, percentile))
    if high <= low:
        high = float(channel.max())
    if high <= low:
        return np.zeros(channel.shape, np.float32)
    scaled = (np.clip(channel, low, high) - low) / (high - low)
    if kernel_size is not None:
        kernel_size = max(8, min(int(kernel_size), *channel.shape))
    return equalize_adapthist(scaled, kernel_size=kernel_size).astype(np.float32)


def preprocess(
    X: np.ndarray, percentile: float = 99.9, kernel_size: int | None = 128
) -> np.ndarray:
    """Normalise a batch of images per image and channel (99.9th-percentile clip + CLAHE).

    Parameters
    ----------
    X : np.ndarray, shape (N, H, W, C)
        Raw intensities (any numeric dtype), channels last.
    percentile, kernel_size
        See :func:`normalize_channel`.

    Returns
    -------
    np.ndarray of float32, shape (N, H, W, C)
        Values in [0, 1].
    """
    X = np.asarray(X)
    if X.ndim != 4:
        raise ValueError(
            f"expected images of shape (N, H, W, C), got shape {X.shape}; "
            "a single (C, H, W) image is image.transpose(1, 2, 0)[None]"
        )
    out = np.empty(X.shape, np.float32)
    for i in range(X.shape[0]):
        for c in range(X.shape[-1]):
            out[i, ..., c] = normalize_channel(X[i, ..., c], percentile, kernel_size)
    return out
