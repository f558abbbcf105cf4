""""Add a cell here": the mask of a missed cell around a click, from a model's maps.

A seeded watershed on the inverted inner-distance map: every distance peak of the free pixels
(foreground > 0.5 and not yet labelled) near the click is a marker, the flood runs inside the free
pixels, and the cell is the basin the click falls in, so it stops where a neighbouring cell's
basin begins. The window grows from a size read off the distance to the nearest non-free pixel
at the click until the cell no longer reaches its edge (at most the box the editor sent).

When the round's predictor left no maps (the classical baseline), :func:`image_maps` derives a
pair from one stain of the box itself: a smoothed intensity normalised so that 0.5 is its Otsu
level as foreground, and the distance to the nearest non-foreground pixel (for a stain brighter
at the rim than inside, such as a membrane, to the nearest bright pixel) as distance.

All arrays are one feature's box, ``(h, w)``; points are ``(y, x)`` box pixels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from backend.core.labels import MIN_CELL_AREA_PX, LabelToolError

__all__ = ["FOREGROUND_LEVEL", "MAX_WINDOW_PX", "add_cell_mask", "image_maps"]

FOREGROUND_LEVEL = 0.5
"""A pixel is foreground where the foreground map is at least this."""
MAX_WINDOW_PX = 97
"""Largest side of the window the tool looks at (the editor sends the click ± 48 px)."""
_MIN_HALF_PX = 8
_PEAK_DEPTH = 0.2
"""A distance peak is a marker when it stands this share of the window's highest distance above
the saddle to a higher peak (h-maxima), so plateaus and noise of one cell make one marker."""
_SMOOTH_SIGMA_PX = 1.0
_RIM_SHARE = 0.3
"""A stain is rim-like (a membrane) when more than this share of its stained pixels lie below
its bright level (the cells' dim interiors)."""


def _check(distance: np.ndarray, foreground: np.ndarray, labels: np.ndarray,
           point: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    distance, foreground, labels = np.asarray(distance), np.asarray(foreground), np.asarray(labels)
    if labels.ndim != 2 or distance.shape != labels.shape or foreground.shape != labels.shape:
        raise LabelToolError(f"distance {distance.shape}, foreground {foreground.shape} and labels "
                             f"{labels.shape} must be (h, w) boxes of the same shape")
    if labels.dtype.kind not in "iu":
        raise LabelToolError(f"labels must hold integer ids, got dtype {labels.dtype}")
    y, x = (int(v) for v in point)
    if not (0 <= y < labels.shape[0] and 0 <= x < labels.shape[1]):
        raise LabelToolError(f"the click ({y}, {x}) lies outside the box of {labels.shape[0]}×{labels.shape[1]} px")
    return (distance.astype(np.float32, copy=False), foreground.astype(np.float32, copy=False),
            labels, y, x)


def _window(shape: tuple[int, int], y: int, x: int, half: int) -> tuple[slice, slice]:
    return (slice(max(0, y - half), min(shape[0], y + half + 1)),
            slice(max(0, x - half), min(shape[1], x + half + 1)))


def _basin(distance: np.ndarray, free: np.ndarray, y: int, x: int) -> np.ndarray:
    """The watershed basin of (y, x) on the inverted ``distance``, inside ``free`` (one window)."""
    d = ndi.gaussian_filter(np.where(free, distance, 0.0), _SMOOTH_SIGMA_PX)
    d[~free] = 0.0
    peak = float(d.max())
    markers, _ = ndi.label(h_maxima(d, max(peak * _PEAK_DEPTH, 1e-6)) & free, structure=np.ones((3, 3)))
    region, _ = ndi.label(free, structure=np.ones((3, 3)))
    if not (markers[region == region[y, x]] > 0).any():  # the click's piece holds no peak: it is one
        markers[y, x] = markers.max() + 1
    basins = watershed(-d, markers, mask=free)
    return basins == basins[y, x]


def add_cell_mask(distance: np.ndarray, foreground: np.ndarray, labels: np.ndarray,
                  point: tuple[int, int], *, max_window: int = MAX_WINDOW_PX) -> np.ndarray:
    """The mask of the unlabelled cell under a click.

    Parameters
    ----------
    distance : (h, w) ndarray, float
        Inner-distance map of one feature (any units: a model's inner distance, or pixels for
        :func:`image_maps`); larger towards a cell's centre.
    foreground : (h, w) ndarray, float
        Probability (0..1) that a pixel belongs to a cell of that feature.
    labels : (h, w) ndarray, int
        The feature's current labels in the box (0 = background); labelled pixels are never taken.
    point : (int, int)
        The click, (y, x) in box pixels.
    max_window : int
        Largest side (px) of the window the cell may fill.

    Returns
    -------
    (h, w) ndarray, bool
        The new cell: one 8-connected piece holding the click, on free pixels only.

    Raises
    ------
    LabelToolError
        The click lies outside the box, on a labelled pixel, or on background (foreground
        < :data:`FOREGROUND_LEVEL`), or the cell found is smaller than the QC minimum.
    """
    distance, foreground, labels, y, x = _check(distance, foreground, labels, point)
    if labels[y, x] != 0:
        raise LabelToolError(f"the click ({y}, {x}) is on cell {int(labels[y, x])}; add a cell where no "
                             "cell is labelled yet (select that cell to edit it)")
    if not foreground[y, x] >= FOREGROUND_LEVEL:
        raise LabelToolError(f"the maps show background at the click ({y}, {x}) (foreground "
                             f"{float(foreground[y, x]):.2f} < {FOREGROUND_LEVEL}); click inside a missed cell, "
                             "or draw it with the brush")
    free = (foreground >= FOREGROUND_LEVEL) & (labels == 0)
    limit = max(_MIN_HALF_PX, int(max_window) // 2)
    around = _window(free.shape, y, x, limit)
    reach = ndi.distance_transform_edt(np.pad(free[around], 1))[1:-1, 1:-1][y - around[0].start, x - around[1].start]
    half = int(min(limit, max(_MIN_HALF_PX, np.ceil(4 * reach) + 4)))
    while True:
        win = _window(free.shape, y, x, half)
        cell = _basin(distance[win], free[win], y - win[0].start, x - win[1].start)
        edges = np.zeros(cell.shape, bool)
        edges[0, :] = win[0].start > 0
        edges[-1, :] = win[0].stop < free.shape[0]
        edges[:, 0] |= win[1].start > 0
        edges[:, -1] |= win[1].stop < free.shape[1]
        if half >= limit or not (cell & edges).any():
            break
        half = min(limit, 2 * half)
    out = np.zeros(free.shape, bool)
    out[win] = cell
    if int(out.sum()) < MIN_CELL_AREA_PX:
        raise LabelToolError(f"the maps show no cell of at least {MIN_CELL_AREA_PX} px at the click ({y}, {x}); "
                             "draw it with the brush")
    return out


def image_maps(stain: np.ndarray, whole_cell: bool) -> tuple[np.ndarray, np.ndarray]:
    """Distance and foreground maps of a box derived from one stain, for rounds without a model.

    Parameters
    ----------
    stain : (h, w) ndarray, uint8 (any real dtype)
        The box of the feature's stain after the display range (nuclear: DAPI; whole cell: the
        membrane or cytoplasm marker).
    whole_cell : bool
        True for a whole-cell stain: cells fill the stained tissue, so anything above the Otsu level
        of the log intensity (dim cell interiors included) is foreground; False for a nuclear stain:
        the nuclei are what lies above the Otsu level of the intensity.

    Returns
    -------
    distance : (h, w) ndarray, float32
        Pixels to the nearest pixel that is not foreground; for a whole-cell stain brighter at the
        rim than inside (a membrane: more than :data:`_RIM_SHARE` of the foreground lies below its
        bright level), to the nearest bright rim pixel, so touching cells keep separate peaks.
    foreground : (h, w) ndarray, float32
        The stain smoothed (σ 1 px) above its 2nd percentile, scaled so that the foreground level
        is 0.5, clipped to 0..1.
    """
    img = ndi.gaussian_filter(np.asarray(stain, np.float32), _SMOOTH_SIGMA_PX)
    if img.ndim != 2:
        raise LabelToolError(f"the stain must be an (h, w) box, got shape {img.shape}")
    above = img - float(np.percentile(img, 2))
    if float(above.max()) <= 0:
        zeros = np.zeros(img.shape, np.float32)
        return zeros, zeros
    bright = float(threshold_otsu(above))
    level = float(np.expm1(threshold_otsu(np.log1p(np.maximum(above, 0.0))))) if whole_cell else bright
    foreground = np.clip(FOREGROUND_LEVEL * above / max(level, 1e-6), 0.0, 1.0).astype(np.float32)
    stained = foreground >= FOREGROUND_LEVEL
    interior = stained & (above <= bright)
    rim_stain = whole_cell and int(interior.sum()) > _RIM_SHARE * int(stained.sum())
    distance = ndi.distance_transform_edt(np.pad(interior if rim_stain else stained, 1))[1:-1, 1:-1]
    return distance.astype(np.float32), foreground
