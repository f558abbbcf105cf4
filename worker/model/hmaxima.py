"""h-maxima markers of an inner-distance map, exactly as ``skimage.morphology.h_maxima``.

Pure NumPy / SciPy, no Python loop over pixels or peaks. The result is, pixel for pixel,

    label(h_maxima(height_0, h, footprint=disk(radius)) & mask & (height_0 >= h),
          connectivity=2)

with ``height_0`` the map with the pixels outside ``mask`` set to 0 (so that an isolated cell's
dynamic is its peak height); :func:`reference_marker_watershed` computes it that way. The
conventions, all scikit-image's (and deepcell-toolbox's, which calls ``h_maxima`` with
``footprint=disk(radius)``):

* connectivity of the h-maxima (the reconstruction): the disk of ``radius`` px
  (:func:`worker.model.postprocess.deep_watershed` defaults to 1, the 4-neighbourhood that
  the flood uses too);
* a pixel is marked when the map minus its reconstruction by dilation from ``map - h - res``
  is at least ``h`` (float32 arithmetic, ``res = 2e-6 |map|``: scikit-image's allowance for
  rounding, which also marks pixels within ``res`` of their peak);
* no marker at all when ``h`` exceeds the map's range (``h > ptp``);
* markers are the 8-connected components of the marked pixels;
* absolute floor: marked pixels below ``h`` are dropped (it only bites where the mask holds
  negative values or there is no background: elsewhere the zeros outside the mask already
  give a peak lower than ``h`` a dynamic below ``h``).

How (the reconstruction only matters at peaks, so it is done on a graph of basins, see
:mod:`worker.model.basins`):

1. the steepest-ascent 4-basins. With ``radius`` 1 (4-connected descent) they are the nodes;
   with a larger disk, a summit that is not the highest pixel of its disk points to that
   pixel, and the basins of the remaining summits (unions of 4-basins) are the nodes: every
   pixel of a node still reaches its summit through pixels at least as high, in disk steps;
2. edges: with ``radius`` 1 the maximum spanning tree of the 4-basins (best paths lie in it);
   with a larger disk the pixel pairs within the disk that link two nodes. Only saddles
   above 0 and within about ``h`` of the lower peak can change a peak's fate (a path through
   a lower saddle is beaten by the part of it that stops at the saddle's higher-peaked side);
3. the reconstruction on that graph, ``rec[v] = max(rec[v], min(rec[u], saddle))`` from
   ``rec = peak - h - res``, repeated to a fixed point (about as many rounds as the longest
   chain of basins above a saddle, a dozen), is the pixel reconstruction at every summit;
4. a pixel is a marker pixel when ``f - rec[its node] >= h`` (and ``f >= h``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from worker.model.basins import BasinGraph, follow


def disk_offsets(radius: int, half: bool = False) -> list[tuple[int, int]]:
    """(dy, dx) of a disk of ``radius`` px around a pixel, without the pixel itself.

    Parameters
    ----------
    radius : int
        Radius in pixels (``dy² + dx² <= radius²``, scikit-image's ``disk``).
    half : bool
        Only one offset of each ``±`` pair (those after the centre in raster order).

    Returns
    -------
    list of (int, int)
    """
    r = int(radius)
    offsets = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)
               if 0 < dy * dy + dx * dx <= r * r]
    if half:
        offsets = [(dy, dx) for dy, dx in offsets if dy > 0 or (dy == 0 and dx > 0)]
    return offsets


def _disk_summit_of(summits: np.ndarray, height: np.ndarray, radius: int,
                    root4: np.ndarray) -> np.ndarray:
    """For each 4-summit, the summit of its disk-basin (a flat pixel index).

    A 4-summit that is not the highest pixel of its disk (in (value, index) order) points to
    that pixel's 4-summit; pointer jumping over summits resolves the chains.
    """
    rows, cols = height.shape
    flat = height.ravel()
    ys, xs = np.divmod(summits, cols)
    best_value = flat[summits]
    best_index = summits.copy()
    for dy, dx in disk_offsets(radius):
        inside = (ys + dy >= 0) & (ys + dy < rows) & (xs + dx >= 0) & (xs + dx < cols)
        other = np.where(inside, summits + (dy * cols + dx), summits)
        value = flat[other]
        higher = (value > best_value) | ((value == best_value) & (other > best_index))
        best_value = np.where(higher, value, best_value)
        best_index = np.where(higher, other, best_index)
    position = np.full(flat.size, -1, np.int64)
    position[summits] = np.arange(summits.size)
    to = position[root4[best_index]]
    return summits[follow(to)]


def _relevant_saddles(basins: np.ndarray, height: np.ndarray, peak: np.ndarray,
                      h: float, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel pairs within the disk that link two basins at a saddle that may matter.

    A pair (p, q) links basins a and b at ``min(f(p), f(q))``. Only saddles above 0 (paths
    through the zero background never rise above it, and the absolute floor already decides
    peaks below ``h``) and above ``min(peak_a, peak_b) - h`` (less a margin far above float32
    rounding) can change a reconstruction value: a path through a lower saddle is beaten by
    the part of it that stops at that saddle's higher-peaked side.

    Returns
    -------
    a, b : np.ndarray of int32, shape (E,)
        Basin ids (one entry per pixel pair; pairs of the same basins repeat).
    saddle : np.ndarray of float32, shape (E,)
    """
    rows, cols = basins.shape
    threshold = _relevance_floor(peak, h)
    firsts, seconds, saddles = [], [], []
    for dy, dx in disk_offsets(radius, half=True):
        ya, yb = slice(0, rows - dy), slice(dy, rows)
        xa, xb = slice(max(0, -dx), min(cols, cols - dx)), slice(max(0, dx), min(cols, cols + dx))
        a, b = basins[ya, xa], basins[yb, xb]
        differ = (a != b) & (a > 0) & (b > 0)
        a, b = a[differ], b[differ]
        saddle = np.minimum(height[ya, xa][differ], height[yb, xb][differ])
        keep = (saddle > 0) & (saddle >= np.minimum(threshold[a], threshold[b]))
        firsts.append(a[keep])
        seconds.append(b[keep])
        saddles.append(saddle[keep])
    return np.concatenate(firsts), np.concatenate(seconds), np.concatenate(saddles)


def _reconstruction_at_summits(peak: np.ndarray, a: np.ndarray, b: np.ndarray,
                               saddle: np.ndarray, h: float) -> np.ndarray:
    """``skimage.morphology.reconstruction(f - h - res, f)`` at every summit, on the graph."""
    rec = peak - h - 2 * np.finfo(np.float32).resolution * np.abs(peak)
    while True:
        grown = rec.copy()
        np.maximum.at(grown, b, np.minimum(rec[a], saddle))
        np.maximum.at(grown, a, np.minimum(rec[b], saddle))
        if np.array_equal(grown, rec):
            return rec
        rec = grown


def _relevance_floor(peak: np.ndarray, h: float) -> np.ndarray:
    """Saddles below ``min`` of the two peaks' floors cannot change a reconstruction value.

    The floor is ``peak - h`` less a margin far above float32 rounding, so that dropped
    saddles are beaten by kept ones at every summit, exactly.
    """
    return peak - np.float32(1.02 * h) - np.float32(8e-6) * np.abs(peak) - np.float32(1e-6)


def _tree_saddles(graph: BasinGraph, peak: np.ndarray, h: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relevant edges of the 4-basins' maximum spanning tree (``radius`` 1)."""
    a, b, saddle = graph.a[graph.tree], graph.b[graph.tree], graph.saddle[graph.tree]
    floor = _relevance_floor(peak, h)
    keep = (saddle > 0) & (saddle >= np.minimum(floor[a], floor[b]))
    return a[keep], b[keep], saddle[keep]


def hmaxima_markers(graph: BasinGraph, h: float, radius: int) -> np.ndarray:
    """h-maxima markers of the graph's map inside its mask (see the module docstring).

    Parameters
    ----------
    graph : BasinGraph
        The map (inner distance) and mask, from :func:`worker.model.basins.basin_graph`.
    h : float
        The h of h-maxima (> 0), in the map's units.
    radius : int
        Radius in pixels of the disk footprint (the reconstruction's connectivity); 1 is the
        4-neighbourhood.

    Returns
    -------
    np.ndarray of int32, shape (H, W)
        Marker ids 1..n (8-connected components of the marked pixels, raster order), 0
        elsewhere.
    """
    markers = np.zeros(graph.shape, np.int32)
    f, inside = graph.height, graph.inside
    if graph.n_basins == 0:
        return markers
    values = f[inside]
    high, low = values.max(), values.min()
    if not inside.all():
        high, low = max(high, np.float32(0)), min(low, np.float32(0))
    if h > np.float32(high) - np.float32(low):  # scikit-image: no h-maxima at all
        return markers

    if radius == 1:
        node_of_basin = np.arange(graph.n_basins + 1)
        peak = graph.peak
        a, b, saddle = _tree_saddles(graph, peak, h)
    else:
        disk_summit = _disk_summit_of(graph.summits, f.reshape(graph.shape), radius,
                                      graph.summit)
        tops = np.unique(disk_summit)
        node_of_basin = np.zeros(graph.n_basins + 1, np.int64)
        node_of_basin[1:] = np.searchsorted(tops, disk_summit) + 1
        peak = np.concatenate([[np.float32(-np.inf)], f[tops]])
        nodes = node_of_basin[graph.basin].reshape(graph.shape)
        a, b, saddle = _relevant_saddles(nodes, f.reshape(graph.shape), peak, h, radius)
    rec = _reconstruction_at_summits(peak, a, b, saddle, h)
    rec_of_basin = rec[node_of_basin]
    rec_of_basin[0] = np.inf  # outside the mask: f - rec = -inf, never marked
    marked = (f - rec_of_basin[graph.basin] >= h) & (f >= h)
    ndi.label(marked.reshape(graph.shape), structure=np.ones((3, 3), bool), output=markers)
    return markers


def reference_marker_watershed(height: np.ndarray, mask: np.ndarray, h: float, radius: int
                               ) -> np.ndarray:
    """The slow scikit-image definition that :func:`hmaxima_markers` and the flood reproduce.

    Used only by the tests and ``bench/postprocess.py``.

    Parameters
    ----------
    height : np.ndarray of float32, shape (H, W)
    mask : np.ndarray of bool, shape (H, W)
    h : float
    radius : int

    Returns
    -------
    np.ndarray of int32, shape (H, W)
        ``watershed(-height_0, markers, mask=mask)`` with the h-maxima markers (ids in raster
        order of the markers), 0 outside the mask and where no marker floods.
    """
    from skimage.measure import label
    from skimage.morphology import disk, h_maxima
    from skimage.segmentation import watershed

    height_0 = np.where(mask, height, 0).astype(np.float32)
    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    peaks = h_maxima(height_0, h, footprint=disk(radius)).astype(bool)
    markers = label(peaks & mask & (height_0 >= h), connectivity=2)
    return watershed(-height_0, markers, mask=mask).astype(np.int32)
