"""Scale: how large objects are in pixels, and resampling to a model's working scale.

A model works at one scale, recorded with it as the median nucleus diameter (pixels) of the
images it was trained on (and, when known, their pixel size in µm). Before predicting, an image
is resampled so that its nuclei have that diameter, and the labels are resampled back; this is
what Mesmer's ``image_mpp`` and Cellpose's ``diameter`` do. The pixel size comes from the image
or project settings when known; otherwise the typical nucleus diameter is estimated from the
nuclear channel with the classical segmenter.

Pure NumPy / SciPy (never imports Keras).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: Median nucleus diameter (pixels) that the shipped generalist works at.
REFERENCE_NUCLEUS_DIAMETER = 14.0
#: Resampling factors outside this range are clipped (a wrong estimate must not explode).
FACTOR_RANGE = (0.2, 4.0)
#: Within this relative difference no resampling is done (saves work, avoids interpolation).
FACTOR_TOLERANCE = 0.05
_MIN_OBJECTS = 5


def median_diameter(labels: np.ndarray) -> float | None:
    """Median equivalent-circle diameter of the objects of a label image.

    Parameters
    ----------
    labels : np.ndarray of int, shape (..., H, W)
        Instance labels (0 = background); several images may be stacked on leading axes
        (ids are then counted per image).

    Returns
    -------
    float or None
        Pixels; None with fewer than 5 objects.
    """
    labels = np.asarray(labels)
    planes = labels.reshape((-1,) + labels.shape[-2:]) if labels.ndim >= 2 else labels[None]
    areas = []
    for plane in planes:
        counts = np.bincount(plane.ravel().astype(np.int64))[1:]
        areas.append(counts[counts > 0])
    areas = np.concatenate(areas) if areas else np.zeros(0)
    if areas.size < _MIN_OBJECTS:
        return None
    return float(2.0 * np.sqrt(np.median(areas) / np.pi))


def estimate_nucleus_diameter(nuclear: np.ndarray, max_side: int = 1024) -> float | None:
    """Typical nucleus diameter (pixels) of a nuclear-stain image, without ground truth.

    The classical nuclear segmenter (:func:`worker.model.baseline.segment_nuclei`) runs on the
    central ``max_side``² window (large images need no more to size their nuclei); the median
    equivalent diameter of its objects (down to 5 px) is the estimate.

    Parameters
    ----------
    nuclear : np.ndarray, shape (H, W)
        Nuclear channel, any numeric dtype.
    max_side : int
        Side of the central window examined.

    Returns
    -------
    float or None
        None when fewer than 5 nuclei are found (an empty or blank image).
    """
    from worker.model.baseline import segment_nuclei

    nuclear = np.asarray(nuclear)
    rows, cols = nuclear.shape
    y0, x0 = max(0, (rows - max_side) // 2), max(0, (cols - max_side) // 2)
    window = nuclear[y0 : y0 + max_side, x0 : x0 + max_side]
    if window.size == 0 or not np.isfinite(window).all() or window.min() == window.max():
        return None
    return median_diameter(segment_nuclei(window, min_size=5))  # small nuclei count too


def scale_factor(
    model_scale: dict | None,
    *,
    image_mpp: float | None = None,
    nucleus_diameter: float | None = None,
) -> float:
    """Zoom factor that brings an image to a model's working scale.

    Parameters
    ----------
    model_scale : dict or None
        The model's recorded scale: ``nucleus_diameter`` (px) and optionally ``mpp`` (µm/px).
        None or empty: the model takes images as they are (factor 1).
    image_mpp : float or None
        The image's pixel size (µm/px), when known.
    nucleus_diameter : float or None
        The image's typical nucleus diameter (px), e.g. from
        :func:`estimate_nucleus_diameter`; used when the pixel sizes are not both known.

    Returns
    -------
    float
        > 1 enlarges the image; clipped to :data:`FACTOR_RANGE`; exactly 1 within
        :data:`FACTOR_TOLERANCE`.
    """
    if not model_scale:
        return 1.0
    factor = None
    if image_mpp and model_scale.get("mpp"):
        factor = float(image_mpp) / float(model_scale["mpp"])
    elif nucleus_diameter and model_scale.get("nucleus_diameter"):
        factor = float(model_scale["nucleus_diameter"]) / float(nucleus_diameter)
    if factor is None or not np.isfinite(factor) or factor <= 0:
        return 1.0
    factor = float(np.clip(factor, *FACTOR_RANGE))
    return 1.0 if abs(factor - 1.0) <= FACTOR_TOLERANCE else factor


def resample_image(image: np.ndarray, factor: float) -> np.ndarray:
    """Zoom every channel of a (C, H, W) image by ``factor`` (linear interpolation).

    Parameters
    ----------
    image : np.ndarray, shape (C, H, W)
    factor : float
        Output size = round(input size x factor), at least 1 px.

    Returns
    -------
    np.ndarray of float32, shape (C, round(H*factor), round(W*factor))
    """
    image = np.asarray(image, dtype=np.float32)
    if factor == 1.0:
        return image
    rows, cols = image.shape[1:]
    out_shape = (max(1, int(round(rows * factor))), max(1, int(round(cols * factor))))
    zoom = (1.0, out_shape[0] / rows, out_shape[1] / cols)
    return ndi.zoom(image, zoom, order=1, mode="nearest", grid_mode=True)


def resample_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resampling of label images to ``shape`` (pixel centres aligned).

    Parameters
    ----------
    labels : np.ndarray of int, shape (..., h, w)
    shape : (int, int)
        Output (H, W).

    Returns
    -------
    np.ndarray, shape (..., H, W), same dtype
    """
    labels = np.asarray(labels)
    rows, cols = labels.shape[-2:]
    if (rows, cols) == tuple(shape):
        return labels
    ys = np.minimum(((np.arange(shape[0]) + 0.5) * rows / shape[0]).astype(np.int64), rows - 1)
    xs = np.minimum(((np.arange(shape[1]) + 0.5) * cols / shape[1]).astype(np.int64), cols - 1)
    return labels[..., ys[:, None], xs[None, :]]
