"""Server-side label tools (threshold, watershed split, autofit), relabelling and the QC rules.

The three tools run on a *box* that the API layer cuts out of one crop: ``image`` is one channel
(or a composite) of the box as (h, w) uint8 after the image's display range, ``labels`` the same
box of one feature as (h, w) int32, 0 = background. Each tool returns a new (h, w) int32 labels box
and never modifies its inputs; the caller sends back only ``changed_box(before, after)``. Common
guarantees:

* pixels of every cell other than the target ``label`` never change (split changes no pixel
  outside the target cell; autofit none outside a band of ``band`` px around it);
* a tool never deletes the target cell;
* bad input raises :class:`LabelToolError` (a ``ValueError``) with a message the user can act on.

"Connected" means 8-connected throughout (as in :mod:`backend.core.tiling`); holes are the
4-connected background regions an 8-connected mask encloses.

QC rules (TissueNet, Greenwald et al. 2021, Methods): cells under 15 px are removed and images
with fewer than 20 cells are left out of a dataset.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import apply_hysteresis_threshold, threshold_otsu
from skimage.segmentation import watershed

__all__ = [
    "AUTOFIT_BAND_PX",
    "MIN_CELL_AREA_PX",
    "MIN_CELLS_PER_IMAGE",
    "SPLIT_MIN_PIECE_FRACTION",
    "THRESHOLD_LOW_FRACTION",
    "LabelToolError",
    "autofit",
    "changed_box",
    "image_passes_qc",
    "relabel_sequential",
    "remove_small_objects_labels",
    "split_cell",
    "threshold_box",
    "threshold_levels",
    "watershed_split",
]

MIN_CELL_AREA_PX = 15
"""QC: cells with fewer pixels than this are removed."""
MIN_CELLS_PER_IMAGE = 20
"""QC: images with fewer cells than this are left out of a dataset."""
THRESHOLD_LOW_FRACTION = 0.5
"""Default low hysteresis level, as a fraction of the way from the box minimum to ``high``."""
AUTOFIT_BAND_PX = 5
"""Default distance (px) that autofit may move the outline outwards."""
SPLIT_MIN_PIECE_FRACTION = 0.05
"""Split: a watershed piece under this share of the cell (or under ``MIN_CELL_AREA_PX``) is a crumb,
and the cell is cut halfway between the seeds instead."""

_INT32_MAX = int(np.iinfo(np.int32).max)
_EIGHT = np.ones((3, 3), dtype=bool)
_SMOOTH_SIGMA_PX = 1.0
_MIN_INTENSITY_CONTRAST = 0.1  # split: in-cell spread / box spread below this -> shape only


class LabelToolError(ValueError):
    """A label tool cannot run on this input; the message says what the user should change."""


# ------------------------------------------------------------------ validation

def _as_labels(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    arr = np.asarray(labels)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise LabelToolError(f"{name} must be an integer label array (int32), "
                             f"got dtype {arr.dtype}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > _INT32_MAX):
        raise LabelToolError(f"{name} ids must lie in 0..{_INT32_MAX} (int32); "
                             f"got values from {arr.min()} to {arr.max()}")
    return arr.astype(np.int32, copy=False)


def _check_box(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    img = np.asarray(image)
    lab = _as_labels(labels)
    if img.ndim != 2 or lab.ndim != 2:
        raise LabelToolError(f"the tool needs one 2-D image box and one 2-D labels box; got image "
                             f"shape {img.shape} and labels shape {lab.shape}")
    if img.shape != lab.shape:
        raise LabelToolError(f"image box {img.shape} and labels box {lab.shape} differ in shape; "
                             "cut both from the same box")
    if img.size == 0:
        raise LabelToolError("the box is empty; drag a box of at least one pixel")
    if not (img.dtype == bool or np.issubdtype(img.dtype, np.integer)
            or np.issubdtype(img.dtype, np.floating)):
        raise LabelToolError(f"the image box must hold real numbers (uint8), got dtype {img.dtype}")
    img = img.astype(np.float64)
    if not np.isfinite(img).all():
        raise LabelToolError("the image box holds NaN or infinite values")
    return img, lab


def _whole(value, what: str, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an int within ``lo..hi``; whole floats (``4.0``, as JSON may send) pass."""
    whole = not isinstance(value, (bool, np.bool_)) and (
        isinstance(value, Integral) or (isinstance(value, Real) and float(value).is_integer()))
    if not whole or (lo is not None and value < lo) or (hi is not None and value > hi):
        span = f" in {lo}..{hi}" if hi is not None else f" >= {lo}" if lo is not None else ""
        raise LabelToolError(f"{what} must be a whole number{span}, got {value!r}")
    return int(value)


def _label_id(value, what: str = "label") -> int:
    return _whole(value, what, 1, _INT32_MAX)


def _cell_mask(lab: np.ndarray, label: int) -> np.ndarray:
    mask = lab == label
    if not mask.any():
        raise LabelToolError(f"cell {label} has no pixel in the box; select the cell and draw the "
                             "box over it")
    return mask


def _check_seeds(seeds, lab: np.ndarray, label: int) -> list[tuple[int, int]]:
    try:
        pairs = [tuple(p) for p in seeds]
    except TypeError:
        raise LabelToolError("seeds must be a list of (y, x) points") from None
    if len(pairs) < 2:
        raise LabelToolError(f"a split needs at least 2 seeds, one click in each part of the cell; "
                             f"got {len(pairs)}")
    h, w = lab.shape
    points: list[tuple[int, int]] = []
    for i, pair in enumerate(pairs):
        if len(pair) != 2:
            raise LabelToolError(f"seed {i} must be a (y, x) point, got {pair!r}")
        y, x = _whole(pair[0], f"seed {i} y"), _whole(pair[1], f"seed {i} x")
        if not (0 <= y < h and 0 <= x < w):
            raise LabelToolError(f"seed {i} at (y={y}, x={x}) lies outside the {h}x{w} box")
        if lab[y, x] != label:
            found = "background" if lab[y, x] == 0 else f"cell {lab[y, x]}"
            raise LabelToolError(f"seed {i} at (y={y}, x={x}) lies on {found}, not on cell "
                                 f"{label}; the seeds must lie inside one cell")
        if (y, x) in points:
            raise LabelToolError(f"seed {i} repeats the point (y={y}, x={x}); click each part of "
                                 "the cell once")
        points.append((y, x))
    return points


def _check_new_ids(new_ids, n_seeds: int, lab: np.ndarray, label: int) -> list[int]:
    try:
        ids = [_label_id(v, "each new id") for v in new_ids]
    except TypeError:
        raise LabelToolError("new_ids must be a list of whole numbers") from None
    if len(ids) != n_seeds - 1:
        raise LabelToolError(f"{n_seeds} seeds need {n_seeds - 1} new ids (one per seed after the "
                             f"first); got {len(ids)}")
    if len(set(ids)) != len(ids) or label in ids:
        raise LabelToolError(f"the new ids {ids} must differ from each other and from cell {label}")
    used = np.isin(np.asarray(ids, dtype=np.int32), lab)
    if used.any():
        raise LabelToolError(f"new id {ids[int(np.argmax(used))]} is already a cell in the box; "
                             "request fresh ids")
    return ids


# ------------------------------------------------------------------ shared mask operations

def _window(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return (slice(max(0, rows[0] - margin), min(h, rows[-1] + 1 + margin)),
            slice(max(0, cols[0] - margin), min(w, cols[-1] + 1 + margin)))


def _fill_holes_within(mask: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Fill the holes of ``mask`` that lie wholly in ``free`` (holes round other cells stay)."""
    holes = ndi.binary_fill_holes(mask) & ~mask
    if not holes.any():
        return mask
    hole_ids, n = ndi.label(holes)
    blocked = np.zeros(n + 1, dtype=bool)
    blocked[hole_ids[holes & ~free]] = True
    blocked[0] = True
    return mask | ~blocked[hole_ids]


def _piece_overlapping_most(mask: np.ndarray, original: np.ndarray) -> np.ndarray | None:
    pieces, n = ndi.label(mask, structure=_EIGHT)
    if n == 0:
        return None
    overlap = np.bincount(pieces[original], minlength=n + 1)
    overlap[0] = 0
    if overlap.max() == 0:
        return None
    return pieces == int(np.argmax(overlap))


# ------------------------------------------------------------------ threshold

def _hysteresis_levels(img: np.ndarray, low: float | None, high: float | None,
                       source: np.ndarray) -> tuple[float, float]:
    for name, value in (("low", low), ("high", high)):
        if value is not None and (not isinstance(value, Real) or not np.isfinite(float(value))):
            raise LabelToolError(f"the {name} threshold must be a finite number, got {value!r}")
    if high is None:
        if img.min() == img.max():
            raise LabelToolError(f"the box has one uniform intensity ({img.min():g}), so there is "
                                 "nothing to threshold; draw the box over the cell and some "
                                 "background, or pick another channel")
        # integer pixels take Otsu's fast bincount path (the same split of integer values)
        high = float(threshold_otsu(source if np.issubdtype(source.dtype, np.integer) else img))
    if low is None:
        floor = min(float(img.min()), float(high))
        low = floor + THRESHOLD_LOW_FRACTION * (float(high) - floor)
    if float(low) > float(high):
        raise LabelToolError(f"the low threshold ({low:g}) must not exceed the high one ({high:g})")
    return float(low), float(high)


def threshold_levels(image: np.ndarray, *, low: float | None = None,
                     high: float | None = None) -> tuple[float, float]:
    """The hysteresis levels :func:`threshold_box` uses on a box: the given ones, checked, and the others.

    Parameters
    ----------
    image : (h, w) ndarray, uint8 (any real dtype is accepted)
        The box of the channel the tool looks at.
    low, high : float, optional
        Levels in image units; ``high`` defaults to Otsu's threshold over the box, ``low`` to
        ``min + THRESHOLD_LOW_FRACTION * (high - min)``.

    Returns
    -------
    (float, float)
        ``(low, high)``, image units, ``low <= high``.

    Raises
    ------
    LabelToolError
        A bad image, a level that is not a finite number, ``low > high``, or a uniform box
        without ``high``.
    """
    img, _ = _check_box(image, np.zeros(np.shape(image), dtype=np.int32))
    return _hysteresis_levels(img, low, high, np.asarray(image))


def threshold_box(image: np.ndarray, labels: np.ndarray, label: int, *, low: float | None = None,
                  high: float | None = None) -> np.ndarray:
    """Add the bright pixels of a box to one cell by hysteresis thresholding.

    A pixel is *bright* when it is above ``low`` and 4-connected, through pixels above ``low``, to
    a pixel above ``high`` (``skimage.filters.apply_hysteresis_threshold``, strict ``>``). Only
    background pixels and pixels already of ``label`` take part: pixels of other cells are neither
    changed nor used as bridges. Of the bright pixels, the largest connected piece is kept plus
    every piece that overlaps or touches the pixels of ``label`` already in the box; the holes of
    the resulting cell are filled where they hold only background. The tool only adds pixels.

    Parameters
    ----------
    image : (h, w) ndarray, uint8 (any real dtype is accepted)
        The box of the channel the user picked, or a composite, after the display range.
    labels : (h, w) ndarray, int32 (any integer dtype is accepted and converted)
        The same box of one feature; 0 is background.
    label : int
        Target cell id (> 0); it need not be in the box yet (a new cell).
    low, high : float, optional
        Hysteresis levels in image units. ``high`` defaults to Otsu's threshold over the box;
        ``low`` to ``min + THRESHOLD_LOW_FRACTION * (high - min)`` with ``min`` the box minimum.

    Returns
    -------
    (h, w) ndarray, int32
        The new labels box.

    Raises
    ------
    LabelToolError
        Bad shapes, dtypes or levels, a uniform box without explicit levels, or no bright pixel
        outside other cells.
    """
    img, lab = _check_box(image, labels)
    label = _label_id(label)
    lo, hi = _hysteresis_levels(img, low, high, np.asarray(image))
    own = lab == label
    free = own | (lab == 0)
    bright = apply_hysteresis_threshold(np.where(free, img, -np.inf), lo, hi)
    if not bright.any():
        raise LabelToolError(f"no pixel of the box outside other cells is above the threshold level "
                             f"({hi:g}); lower the level or draw the box over a brighter cell")
    pieces, n = ndi.label(bright, structure=_EIGHT)
    sizes = np.bincount(pieces.ravel(), minlength=n + 1)
    sizes[0] = 0
    keep = np.zeros(n + 1, dtype=bool)
    keep[int(np.argmax(sizes))] = True
    if own.any():
        keep[pieces[ndi.binary_dilation(own, structure=_EIGHT)]] = True
        keep[0] = False
    grown = _fill_holes_within(own | keep[pieces], free)
    out = lab.copy()
    out[grown] = label
    return out


# ------------------------------------------------------------------ watershed split

def _noise_sd(img: np.ndarray, mask: np.ndarray) -> float:
    """Robust noise estimate (image units): MAD of horizontal differences inside ``mask``."""
    pairs = mask[:, 1:] & mask[:, :-1]
    if not pairs.any():
        return 0.0
    return float(np.median(np.abs(np.diff(img, axis=1)[pairs])) / 0.954)


def _split_landscape(img: np.ndarray, mask: np.ndarray, points: list[tuple[int, int]],
                     box_spread: float) -> np.ndarray:
    """Flooding landscape in [0, 1] for the split, low at the cell centres.

    Shape term: ``1 - d / d.max()`` with ``d`` the distance (px) to the cell's edge, so pieces
    part at necks. Intensity term (after a Gaussian of 1 px): when the seeds are at least as
    bright as the cell's mean (bright-bodied cells, e.g. a nuclear stain), the inverted intensity,
    so pieces part along dark gaps; otherwise (seeds on dim interiors, e.g. a membrane stain) the
    intensity itself, so pieces part along bright ridges. Both weigh one half, unless the spread
    (1st-99th percentile) of intensity in the cell's interior is below
    ``_MIN_INTENSITY_CONTRAST`` of the box's spread or below 2.5 noise SDs (a uniform or only
    noisy cell): then the shape term alone decides.
    """
    dist = ndi.distance_transform_edt(mask)
    shape_term = 1.0 - dist / dist.max()
    smooth = ndi.gaussian_filter(img, _SMOOTH_SIGMA_PX, mode="nearest")
    interior = ndi.binary_erosion(mask, iterations=2)
    lo, hi = np.percentile(smooth[interior if interior.any() else mask], [1, 99])
    floor = max(_MIN_INTENSITY_CONTRAST * box_spread, 2.5 * _noise_sd(img, mask))
    if hi - lo <= 0 or hi - lo < floor:
        return shape_term
    level = np.clip((smooth - lo) / (hi - lo), 0.0, 1.0)
    seed_level = np.mean([level[p] for p in points])
    intensity_term = 1.0 - level if seed_level >= level[mask].mean() else level
    return 0.5 * intensity_term + 0.5 * shape_term


def _fill_unreached(basins: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Give the pixels of ``cell`` that no piece holds (0) to the nearest piece, in place."""
    unreached = cell & (basins == 0)
    if unreached.any():
        nearest = ndi.distance_transform_edt(basins == 0, return_distances=False,
                                             return_indices=True)
        basins[unreached] = basins[tuple(nearest)][unreached]
    return basins


def _nearest_seed(cell: np.ndarray, points: list[tuple[int, int]]) -> np.ndarray:
    """Pieces 1..n of ``cell``: each pixel to its nearest seed (Euclidean; ties to the earlier seed).

    A piece keeps only its part connected (4-connected) to its seed; cut-off parts (possible in a
    non-convex cell) join the nearest piece that does."""
    yy, xx = np.indices(cell.shape)
    distance = np.stack([(yy - y) ** 2 + (xx - x) ** 2 for y, x in points])
    basins = np.where(cell, np.argmin(distance, axis=0) + 1, 0).astype(np.int32)
    for k, point in enumerate(points, start=1):
        parts, _ = ndi.label(basins == k)
        basins[(basins == k) & (parts != parts[point])] = 0
    return _fill_unreached(basins, cell)


def _has_crumb(basins: np.ndarray, cell: np.ndarray, n_pieces: int) -> bool:
    """Whether some piece is under ``MIN_CELL_AREA_PX`` or ``SPLIT_MIN_PIECE_FRACTION`` of the cell."""
    sizes = np.bincount(basins[cell], minlength=n_pieces + 1)[1:]
    return int(sizes.min()) < max(MIN_CELL_AREA_PX, SPLIT_MIN_PIECE_FRACTION * int(cell.sum()))


def split_cell(image: np.ndarray, labels: np.ndarray, label: int, seeds: list[tuple[int, int]],
               new_ids: list[int]) -> tuple[np.ndarray, bool]:
    """Split one cell into one piece per seed: by marker watershed, or halfway between the seeds.

    ``skimage.segmentation.watershed`` floods the landscape described in ``_split_landscape``
    (half shape: distance to the cell's edge; half intensity, inverted for bright-bodied cells,
    as is for membrane-like stains, left out when the cell is uniform or only noisy) from the
    seed pixels, restricted to the cell (4-connected flooding, so each piece is connected).
    Pixels the flood cannot reach (parts of the cell not connected to any seed) go to the nearest
    piece.

    Where the image and the shape show no border between the seeds (two seeds in one cell), the
    flood from the seed lower in the landscape takes nearly all of the cell and leaves the other
    seed a crumb of a few pixels at the rim. When a piece is under ``MIN_CELL_AREA_PX`` or under
    ``SPLIT_MIN_PIECE_FRACTION`` of the cell, the cell is cut halfway between the seeds instead:
    each pixel goes to the seed it is nearest to (Euclidean), and a piece keeps only its part
    connected to its seed (in a non-convex cell the rest joins the nearest piece).

    Parameters
    ----------
    image : (h, w) ndarray, uint8 (any real dtype is accepted)
        The box of the channel the user picked, after the display range.
    labels : (h, w) ndarray, int32 (any integer dtype is accepted and converted)
        The same box of one feature; 0 is background.
    label : int
        The cell to split (> 0, present in the box).
    seeds : sequence of (y, x) int
        At least 2 distinct points, box coordinates (px), each on a pixel of ``label``.
    new_ids : sequence of int
        ``len(seeds) - 1`` fresh ids (> 0, distinct, not in the box) for the pieces of
        ``seeds[1:]``; the piece of ``seeds[0]`` keeps ``label``.

    Returns
    -------
    labels : (h, w) ndarray, int32
        The new labels box. The pieces cover exactly the cell's former pixels; every other pixel
        is unchanged; each seed's pixel is in its own piece.
    halfway : bool
        Whether the cell was cut halfway between the seeds (the watershed left a crumb).

    Raises
    ------
    LabelToolError
        Bad shapes or dtypes, ``label`` not in the box, fewer than 2 seeds, a seed outside the box
        or off the cell, repeated seeds, or a wrong number of (or already used) new ids.
    """
    img, lab = _check_box(image, labels)
    label = _label_id(label)
    mask = _cell_mask(lab, label)
    points = _check_seeds(seeds, lab, label)
    ids = _check_new_ids(new_ids, len(points), lab, label)
    lo, hi = np.percentile(img, [1, 99])
    rows, cols = _window(mask, margin=3)
    cell, local = mask[rows, cols], [(y - rows.start, x - cols.start) for y, x in points]
    markers = np.zeros(cell.shape, dtype=np.int32)
    for k, point in enumerate(local, start=1):
        markers[point] = k
    landscape = _split_landscape(img[rows, cols], cell, local, float(hi - lo))
    basins = _fill_unreached(watershed(landscape, markers, mask=cell), cell)
    halfway = _has_crumb(basins, cell, len(local))
    if halfway:
        basins = _nearest_seed(cell, local)
    piece_id = np.asarray([0, label, *ids], dtype=np.int32)
    out = lab.copy()
    out[rows, cols][cell] = piece_id[basins[cell]]
    return out, halfway


def watershed_split(image: np.ndarray, labels: np.ndarray, label: int,
                    seeds: list[tuple[int, int]], new_ids: list[int]) -> np.ndarray:
    """:func:`split_cell`'s labels box alone (same parameters, same errors).

    Returns
    -------
    (h, w) ndarray, int32
        The new labels box.
    """
    return split_cell(image, labels, label, seeds, new_ids)[0]


# ------------------------------------------------------------------ autofit

def _padded(u: np.ndarray) -> np.ndarray:
    return np.pad(u, 1, mode="edge")


def _line_neighbours(p: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """For a padded mask, the two neighbours along each 3-px line (|, -, \\, /) of every pixel."""
    return [(p[:-2, 1:-1], p[2:, 1:-1]), (p[1:-1, :-2], p[1:-1, 2:]),
            (p[:-2, :-2], p[2:, 2:]), (p[:-2, 2:], p[2:, :-2])]


def _sup_inf(u: np.ndarray) -> np.ndarray:
    """Union over the four 3-px lines of the erosion by that line."""
    return np.logical_or.reduce([u & a & b for a, b in _line_neighbours(_padded(u))])


def _inf_sup(u: np.ndarray) -> np.ndarray:
    """Intersection over the four 3-px lines of the dilation by that line."""
    return np.logical_and.reduce([u | a | b for a, b in _line_neighbours(_padded(u))])


def _front(u: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour on the other side of the outline."""
    p = _padded(u)
    near = [p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]]
    return np.logical_or.reduce([n != u for n in near])


def autofit(image: np.ndarray, labels: np.ndarray, label: int, *, iterations: int = 20,
            band: int = AUTOFIT_BAND_PX) -> np.ndarray:
    """Refit one cell's outline to the image by a band-limited morphological Chan-Vese contour.

    Morphological active contour without edges (Marquez-Neila, Baumela & Alvarez 2014, the
    method of ``skimage.segmentation.morphological_chan_vese``) initialised with the cell's mask,
    with both region means taken only over the *allowed* pixels: those within ``band`` px
    (Euclidean) of the cell that are background or the cell itself. Each iteration moves every
    pixel on the outline to the side whose mean intensity (after a Gaussian of 1 px) it is closer
    to, smooths the outline with the morphological curvature operator, and clips it to the allowed
    pixels. The cell then keeps its holes filled (where they hold only background) and only the
    connected piece overlapping its former pixels most. If nothing would remain, the cell is
    returned unchanged. (The skimage function itself takes the outside mean over the whole box,
    so bright neighbours far away would pull on the outline; hence the band-limited loop here.)

    Parameters
    ----------
    image : (h, w) ndarray, uint8 (any real dtype is accepted)
        The box of the channel the user picked, after the display range.
    labels : (h, w) ndarray, int32 (any integer dtype is accepted and converted)
        The same box of one feature; 0 is background.
    label : int
        The cell to refit (> 0, present in the box).
    iterations : int, default 20
        Contour iterations, 1..500; each moves the outline by at most about 1 px.
    band : int, default ``AUTOFIT_BAND_PX``
        How far (px, 1..50) the outline may grow beyond the cell's current pixels.

    Returns
    -------
    (h, w) ndarray, int32
        The new labels box; only pixels of ``label`` or background within the band change.

    Raises
    ------
    LabelToolError
        Bad shapes or dtypes, ``label`` not in the box, or ``iterations`` / ``band`` out of range.
    """
    img, lab = _check_box(image, labels)
    label = _label_id(label)
    mask = _cell_mask(lab, label)
    iterations, band = _whole(iterations, "iterations", 1, 500), _whole(band, "band", 1, 50)
    rows, cols = _window(mask, margin=band + 1)
    cell = mask[rows, cols]
    reach = ndi.distance_transform_edt(~cell) <= band
    allowed = reach & ((lab[rows, cols] == 0) | cell)
    smooth = ndi.gaussian_filter(img[rows, cols], _SMOOTH_SIGMA_PX, mode="nearest")
    u = cell.copy()
    for step in range(iterations):
        outside = allowed & ~u
        if not u.any() or not outside.any():
            break
        pull = (smooth - smooth[u].mean()) ** 2 - (smooth - smooth[outside].mean()) ** 2
        front = _front(u) & allowed
        u[front & (pull < 0)] = True
        u[front & (pull > 0)] = False
        u = (_sup_inf(_inf_sup(u)) if step % 2 == 0 else _inf_sup(_sup_inf(u))) & allowed
    fitted = _piece_overlapping_most(_fill_holes_within(u, allowed), cell)
    out = lab.copy()
    if fitted is None:
        return out
    window = out[rows, cols]
    window[cell] = 0
    window[fitted] = label
    return out


# ------------------------------------------------------------------ relabelling and QC

def _features(labels: np.ndarray) -> np.ndarray:
    arr = _as_labels(labels)
    if arr.ndim not in (2, 3):
        raise LabelToolError(f"labels must be (H, W) or a (F, H, W) stack, got shape {arr.shape}")
    return arr


def relabel_sequential(labels: np.ndarray) -> np.ndarray:
    """Renumber the cells 1..n in the order of their old ids (background stays 0).

    Parameters
    ----------
    labels : (H, W) or (F, H, W) ndarray, integer
        One feature, or a stack whose features are renumbered separately.

    Returns
    -------
    ndarray, int32, same shape
        Old id ``a < b`` maps to new ids ``a' < b'``; a feature with n cells uses 1..n.
    """
    arr = _features(labels)
    if arr.ndim == 3:
        return np.stack([relabel_sequential(f) for f in arr]) if len(arr) else arr.copy()
    ids = np.unique(arr)
    ids = ids[ids != 0]
    out = np.zeros(arr.shape, dtype=np.int32)
    cells = arr != 0
    out[cells] = np.searchsorted(ids, arr[cells]) + 1
    return out


def remove_small_objects_labels(labels: np.ndarray,
                                min_size: int = MIN_CELL_AREA_PX) -> np.ndarray:
    """QC: set to background every cell with fewer than ``min_size`` pixels (ids are kept).

    Parameters
    ----------
    labels : (H, W) or (F, H, W) ndarray, integer
        One feature, or a stack whose features are filtered separately.
    min_size : int, default 15
        Smallest cell area kept (px). A cell's area counts all its pixels, connected or not.

    Returns
    -------
    ndarray, int32, same shape
    """
    min_size = _whole(min_size, "min_size", 0)
    arr = _features(labels)
    if arr.ndim == 3:
        return np.stack([remove_small_objects_labels(f, min_size) for f in arr]) \
            if len(arr) else arr.copy()
    ids, inverse, counts = np.unique(arr, return_inverse=True, return_counts=True)
    small = (counts < min_size) & (ids != 0)
    out = arr.copy()
    out[small[inverse.reshape(arr.shape)]] = 0
    return out


def image_passes_qc(labels: np.ndarray, min_cells: int = MIN_CELLS_PER_IMAGE) -> bool:
    """QC: whether an image holds at least ``min_cells`` cells (distinct non-zero ids).

    Run :func:`remove_small_objects_labels` first, as the dataset build does.

    Parameters
    ----------
    labels : (H, W) or (F, H, W) ndarray, integer
        One feature, or a stack: then every feature must hold ``min_cells`` cells.
    min_cells : int, default 20

    Returns
    -------
    bool
    """
    min_cells = _whole(min_cells, "min_cells", 0)
    arr = _features(labels)
    stack = arr if arr.ndim == 3 else arr[None]
    return all(int(np.count_nonzero(np.unique(f))) >= min_cells for f in stack)


def changed_box(before: np.ndarray, after: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight half-open box ``(y0, x0, y1, x1)`` (px) of the pixels that differ, or ``None``.

    Parameters
    ----------
    before, after : (h, w) or (F, h, w) ndarray
        Two versions of a labels box; for stacks a pixel differs when any feature differs.

    Returns
    -------
    tuple of int or None
        Rows ``y0 <= y < y1`` and columns ``x0 <= x < x1`` enclose every changed pixel;
        ``None`` when nothing changed.
    """
    a, b = np.asarray(before), np.asarray(after)
    if a.shape != b.shape or a.ndim not in (2, 3):
        raise LabelToolError(f"cannot compare a {a.shape} box with a {b.shape} box; both must be "
                             "(h, w) or (F, h, w) and of the same shape")
    diff = a != b
    if diff.ndim == 3:
        diff = diff.any(axis=0)
    if not diff.any():
        return None
    rows, cols = np.flatnonzero(diff.any(axis=1)), np.flatnonzero(diff.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1
