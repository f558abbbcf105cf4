"""Classical round-0 segmenter, used until a trained model is promoted.

NumPy / SciPy / scikit-image only: it runs without the ``ml`` extra (never imports Keras).

* Nuclei: the nuclear channel is normalised (0.5 / 99.9 percentiles), smoothed, freed of
  uneven background (a grey opening larger than a nucleus is subtracted) and thresholded
  (0.7 x Otsu, so dim nuclei survive); touching nuclei are split by a marker watershed of
  the smoothed distance transform, markers being its h-maxima.
* Whole cells: a marker watershed seeded by the nuclei on the smoothed membrane image (cell
  borders are bright), limited to a foreground mask (0.3 x Otsu of the smoothed, background-
  corrected sum of the membrane and nuclear channels, holes filled) and to
  ``max_cell_radius`` pixels around each nucleus.
  Without a membrane channel, nuclei are grown by a fixed number of pixels instead.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from worker.model.postprocess import remove_small_and_relabel


def _normalized(channel: np.ndarray) -> np.ndarray:
    channel = np.asarray(channel, dtype=np.float32)
    low, high = np.percentile(channel, [0.5, 99.9])
    if high <= low:
        return np.zeros(channel.shape, np.float32)
    return np.clip((channel - low) / (high - low), 0.0, 1.0).astype(np.float32)


def _flatten_background(channel: np.ndarray, object_size: int) -> np.ndarray:
    """Subtract a smooth background estimated by a grey opening larger than the objects."""
    size = int(object_size) | 1
    step = max(1, size // 8)  # estimate on a subsampled grid: the background is smooth
    small = channel[::step, ::step]
    opened = ndi.grey_opening(small, size=(max(3, size // step),) * 2, mode="reflect")
    opened = ndi.uniform_filter(opened, size=max(3, size // step), mode="reflect")
    zoom = (channel.shape[0] / small.shape[0], channel.shape[1] / small.shape[1])
    background = ndi.zoom(opened, zoom, order=1, mode="nearest", grid_mode=True)
    background = background[: channel.shape[0], : channel.shape[1]]
    return np.clip(channel - background, 0.0, None)


def _otsu(values: np.ndarray) -> float:
    from skimage.filters import threshold_otsu

    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() == values.max():
        return float("inf")
    return float(threshold_otsu(values))


def segment_nuclei(
    nuclear: np.ndarray,
    *,
    smoothing: float = 0.5,
    object_size: int = 41,
    threshold_fraction: float = 0.7,
    split_depth: float = 0.5,
    min_size: int = 15,
) -> np.ndarray:
    """Nuclei by threshold + distance-transform watershed.

    Parameters
    ----------
    nuclear : np.ndarray, shape (H, W)
        Nuclear channel (e.g. DAPI), any numeric dtype.
    smoothing : float
        Gaussian sigma (pixels) before thresholding.
    object_size : int
        Diameter (pixels) larger than any nucleus: the scale of the background estimate.
    threshold_fraction : float
        The threshold is this fraction of Otsu's threshold of the background-corrected image
        (below 1 so that dim nuclei survive).
    split_depth : float
        Minimum depth (pixels of the smoothed distance transform) of the neck between two
        touching nuclei for them to be split (h-maxima height).
    min_size : int
        Nuclei with fewer pixels are dropped.

    Returns
    -------
    np.ndarray of int32, shape (H, W)
        Nuclear labels 1..n, 0 = background.
    """
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    image = _normalized(nuclear)
    if smoothing > 0:
        image = ndi.gaussian_filter(image, smoothing)
    image = _flatten_background(image, object_size)
    mask = image > threshold_fraction * _otsu(image)
    mask = ndi.binary_opening(mask, iterations=1)
    mask = ndi.binary_fill_holes(mask)
    if not mask.any():
        return np.zeros(image.shape, np.int32)
    distance = ndi.gaussian_filter(ndi.distance_transform_edt(mask).astype(np.float32), 1.0)
    peaks = h_maxima(distance, split_depth) & mask
    markers, _ = ndi.label(peaks, structure=np.ones((3, 3), bool))
    labels = watershed(-distance, markers, mask=mask)
    return remove_small_and_relabel(labels.astype(np.int32), min_size)


def tissue_foreground(
    channels: list[np.ndarray], *, smoothing: float = 2.0, threshold_fraction: float = 0.3,
    object_size: int = 81,
) -> np.ndarray:
    """Where cells are: threshold of the smoothed, background-corrected sum of channels.

    Parameters
    ----------
    channels : list of np.ndarray, each shape (H, W)
        E.g. [membrane, nuclear]; each is normalised to [0, 1] (0.5 / 99.9 percentiles).
    smoothing : float
        Gaussian sigma (pixels); bridges the dim interiors between bright membranes.
    threshold_fraction : float
        The threshold is this fraction of Otsu's threshold.
    object_size : int
        Diameter (pixels) larger than any cell: the scale of the background estimate.

    Returns
    -------
    np.ndarray of bool, shape (H, W)
    """
    total = np.sum([_normalized(c) for c in channels], axis=0)
    total = _flatten_background(ndi.gaussian_filter(total, smoothing), object_size)
    foreground = total > threshold_fraction * _otsu(total)
    foreground = ndi.binary_closing(foreground, iterations=2)
    return ndi.binary_fill_holes(foreground)


def segment_whole_cells(
    nuclei: np.ndarray,
    membrane: np.ndarray | None,
    foreground: np.ndarray | None = None,
    *,
    smoothing: float = 1.0,
    max_cell_radius: int = 20,
    expansion: int = 4,
    min_size: int = 15,
) -> np.ndarray:
    """Whole cells grown from the nuclei.

    Parameters
    ----------
    nuclei : np.ndarray of int32, shape (H, W)
        Nuclear labels (seeds); every cell keeps its nucleus's id.
    membrane : np.ndarray, shape (H, W), or None
        Membrane channel (bright on cell borders). None: nuclei grown by ``expansion`` px.
    foreground : np.ndarray of bool, shape (H, W), optional
        Where cells may be; by default :func:`tissue_foreground` of the membrane channel.
    smoothing : float
        Gaussian sigma (pixels) of the membrane image used as watershed elevation.
    max_cell_radius : int
        Cells reach at most this many pixels beyond their nucleus.
    expansion : int
        Growth (pixels) without a membrane channel.
    min_size : int
        Cells with fewer pixels are dropped.

    Returns
    -------
    np.ndarray of int32, shape (H, W)
        Whole-cell labels with the ids of their nuclei, 0 = background.
    """
    from skimage.segmentation import expand_labels, watershed

    nuclei = np.asarray(nuclei, dtype=np.int32)
    if membrane is None:
        return expand_labels(nuclei, distance=expansion).astype(np.int32)
    elevation = ndi.gaussian_filter(_normalized(membrane), smoothing)
    if foreground is None:
        foreground = tissue_foreground([membrane])
    near_nucleus = ndi.distance_transform_edt(nuclei == 0) <= max_cell_radius
    mask = (np.asarray(foreground, bool) & near_nucleus) | (nuclei > 0)
    cells = watershed(elevation, markers=nuclei, mask=mask).astype(np.int32)
    sizes = np.bincount(cells.ravel())
    small = sizes < min_size
    small[0] = False
    cells[small[cells]] = 0
    return cells


def segment_baseline(
    image: np.ndarray,
    nuclear_channel: int = 0,
    membrane_channel: int | None = 1,
    **kwargs,
) -> np.ndarray:
    """Segment nuclei and whole cells of one multiplexed image without a trained model.

    Parameters
    ----------
    image : np.ndarray, shape (C, H, W)
        Raw intensities, any numeric dtype, channels first.
    nuclear_channel : int
        Index of the nuclear channel (e.g. DAPI).
    membrane_channel : int or None
        Index of the membrane channel; None (or a 1-channel image) grows nuclei instead.
    **kwargs
        ``object_size``, ``split_depth`` (nuclei) and ``max_cell_radius``, ``expansion``
        (whole cells), ``min_size`` (both).

    Returns
    -------
    np.ndarray of int32, shape (2, H, W)
        (whole_cell, nuclear) labels; a nucleus carries the id of its cell.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(
            f"expected an image of shape (C, H, W), got shape {image.shape}; "
            "a single-channel (H, W) image is image[None]"
        )
    n_channels = image.shape[0]
    if not 0 <= nuclear_channel < n_channels:
        raise ValueError(
            f"nuclear_channel {nuclear_channel} is out of range for an image with "
            f"{n_channels} channel(s)"
        )
    if membrane_channel is not None and not 0 <= membrane_channel < n_channels:
        if n_channels == 1:
            membrane_channel = None
        else:
            raise ValueError(
                f"membrane_channel {membrane_channel} is out of range for an image with "
                f"{n_channels} channels; pass membrane_channel=None to grow nuclei instead"
            )
    nuclear_keys = ("object_size", "threshold_fraction", "split_depth", "min_size")
    nuclear_kwargs = {k: kwargs[k] for k in nuclear_keys if k in kwargs}
    cell_keys = ("max_cell_radius", "expansion", "min_size")
    cell_kwargs = {k: kwargs[k] for k in cell_keys if k in kwargs}
    unknown = set(kwargs) - set(nuclear_kwargs) - set(cell_kwargs)
    if unknown:
        raise TypeError(f"segment_baseline got unknown options {sorted(unknown)}")

    nuclei = segment_nuclei(image[nuclear_channel], **nuclear_kwargs)
    if membrane_channel is None:
        cells = segment_whole_cells(nuclei, None, **cell_kwargs)
    else:
        membrane = image[membrane_channel]
        foreground = tissue_foreground([membrane, image[nuclear_channel]])
        cells = segment_whole_cells(nuclei, membrane, foreground, **cell_kwargs)
    nuclei = np.where(cells == nuclei, nuclei, 0)  # drop nuclei whose cell was dropped
    return np.stack([cells, nuclei]).astype(np.int32)
