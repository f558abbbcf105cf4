"""Crop plan and cropping: cut an image into a grid of overlapping square crops.

An image of shape (H, W) is cut into a row-major grid of square crops (``crop_plan``). Along each
axis the crops start every ``crop_size - overlap`` pixels; the last crop of a row/column is shifted
back to end exactly at the image border, so no crop holds padding and every crop has size
``min(crop_size, H) x min(crop_size, W)``. ``crop_stack`` cuts an image or a label stack along a
plan. Crops are annotated independently and stitched back with ``stitch_crops``, which lives in
``backend.core.stitch`` (ownership rule, link rule, conflicts, guarantees) and is re-exported here
with ``StitchResult``, so ``from backend.core.tiling import crop_plan, stitch_crops`` works. The
plan geometry that stitching relies on (is a plan a grid covering the image, where do the areas
the crops own meet) is computed here too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CropWindow",
    "StitchResult",
    "crop_plan",
    "crop_stack",
    "default_overlap",
    "stitch_crops",
]


@dataclass(frozen=True)
class CropWindow:
    """Half-open pixel box ``[y0, y1) x [x0, x1)`` of one crop, in image coordinates (px)."""

    y0: int
    x0: int
    y1: int
    x1: int

    def __post_init__(self) -> None:
        for name in ("y0", "x0", "y1", "x1"):
            object.__setattr__(self, name, int(getattr(self, name)))
        if not (0 <= self.y0 < self.y1 and 0 <= self.x0 < self.x1):
            raise ValueError(
                f"crop window (y0={self.y0}, x0={self.x0}, y1={self.y1}, x1={self.x1}) is empty "
                "or starts before 0; it needs 0 <= y0 < y1 and 0 <= x0 < x1"
            )

    @property
    def height(self) -> int:
        """Rows in the window (px)."""
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        """Columns in the window (px)."""
        return self.x1 - self.x0

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(slice(y0, y1), slice(x0, x1))``, to index the last two axes of an image."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


def default_overlap(crop_size: int) -> int:
    """Default overlap between neighbouring crops: a tenth of the crop, rounded up.

    Parameters
    ----------
    crop_size : int
        Crop side (px), >= 1.

    Returns
    -------
    int
        ``ceil(crop_size / 10)`` px (27 for 270), capped at ``crop_size - 1`` so that the plan
        always advances (0 for a 1-px crop).
    """
    crop_size = _positive_int(crop_size, "crop_size")
    return min(-(-crop_size // 10), crop_size - 1)


def crop_plan(
    shape: tuple[int, int], crop_size: int = 270, overlap: int | None = None
) -> list[CropWindow]:
    """Edge-aligned grid of crop windows covering an image.

    Parameters
    ----------
    shape : (int, int)
        Image (H, W) in px; both >= 1. An (F, H, W) or (C, H, W) shape is not accepted: pass
        ``array.shape[-2:]``.
    crop_size : int
        Crop side (px), >= 1. An axis shorter than this gets one crop as long as the axis.
    overlap : int or None
        Minimum overlap between neighbouring crops (px), ``0 <= overlap < crop_size``. None means
        ``default_overlap(crop_size)``. The last crop of a row/column overlaps its neighbour by at
        least this much (more when the image is not a multiple of the stride).

    Returns
    -------
    list of CropWindow
        Row-major (by y0, then x0). Crops start every ``crop_size - overlap`` px; the last crop
        of each axis ends at the image border. All windows have the same size,
        ``min(crop_size, H) x min(crop_size, W)``.

    Raises
    ------
    ValueError
        If the shape is not two positive ints, ``crop_size < 1``, ``overlap < 0`` or
        ``overlap >= crop_size``.
    """
    height, width = _image_shape(shape)
    crop_size = _positive_int(crop_size, "crop_size")
    if overlap is None:
        overlap = default_overlap(crop_size)
    overlap = _int(overlap, "overlap")
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0 px, got {overlap}")
    if overlap >= crop_size:
        raise ValueError(
            f"overlap ({overlap} px) must be smaller than crop_size ({crop_size} px), "
            "or the crops would never advance"
        )
    stride = crop_size - overlap
    ys, xs = _axis_starts(height, crop_size, stride), _axis_starts(width, crop_size, stride)
    h, w = min(crop_size, height), min(crop_size, width)
    return [CropWindow(y0, x0, y0 + h, x0 + w) for y0 in ys for x0 in xs]


def crop_stack(array: np.ndarray, plan: list[CropWindow]) -> list[np.ndarray]:
    """Cut a (C, H, W) image or an (F, H, W) label stack along a crop plan.

    Parameters
    ----------
    array : np.ndarray
        (C, H, W) image or (F, H, W) label stack, any dtype.
    plan : list of CropWindow
        Windows inside (H, W), e.g. from ``crop_plan(array.shape[-2:])``.

    Returns
    -------
    list of np.ndarray
        One C-contiguous copy per window, (C, window.height, window.width), same dtype as
        ``array``, in plan order. Copies, so editing a crop never changes ``array``.

    Raises
    ------
    ValueError
        If ``array`` is not 3-D or a window reaches outside it.
    """
    array = np.asarray(array)
    if array.ndim != 3:
        raise ValueError(
            f"expected a (C, H, W) or (F, H, W) array, got shape {array.shape}; "
            "for a single (H, W) label image pass array[None]"
        )
    height, width = array.shape[1:]
    crops = []
    for window in plan:
        if window.y1 > height or window.x1 > width:
            raise ValueError(f"{window} reaches outside the {height}x{width} image")
        crops.append(np.ascontiguousarray(array[:, window.y0 : window.y1, window.x0 : window.x1]))
    return crops


# --------------------------------------------------------------------------------------------
# plan geometry


def _int(value, name: str) -> int:
    """``value`` as a Python int, or ValueError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _positive_int(value, name: str) -> int:
    """``value`` as a Python int >= 1, or ValueError naming ``name``."""
    value = _int(value, name)
    if value < 1:
        raise ValueError(f"{name} must be >= 1 px, got {value}")
    return value


def _image_shape(shape) -> tuple[int, int]:
    """(H, W) as two positive Python ints."""
    if len(shape) != 2:
        raise ValueError(f"shape must be (H, W), got {tuple(shape)}; pass array.shape[-2:]")
    return _positive_int(shape[0], "image height"), _positive_int(shape[1], "image width")


def _axis_starts(length: int, crop_size: int, stride: int) -> list[int]:
    """Crop starts along one axis; the last crop ends at ``length`` (px)."""
    if length <= crop_size:
        return [0]
    n = -(-(length - crop_size) // stride) + 1
    return [min(i * stride, length - crop_size) for i in range(n)]


def _grid_axes(plan: list[CropWindow], height: int, width: int):
    """Check that ``plan`` is a full grid tiling the image; return its layout.

    Returns (order, rows, cols, row_cuts, col_cuts): ``plan[order[k]]`` is the k-th window
    row-major, ``rows`` / ``cols`` the sorted (start, end) intervals (px), and the cuts (len
    n + 1, px) the middles of consecutive overlaps, which bound the area each crop owns.
    """
    rows = sorted({(w.y0, w.y1) for w in plan})
    cols = sorted({(w.x0, w.x1) for w in plan})
    position = {(w.y0, w.y1, w.x0, w.x1): i for i, w in enumerate(plan)}
    if len(position) != len(plan) or len(plan) != len(rows) * len(cols):
        raise ValueError(
            f"the crop plan is not a grid: {len(plan)} windows ({len(position)} distinct) "
            f"for {len(rows)} row and {len(cols)} column intervals; "
            "build it with crop_plan(shape, crop_size, overlap)"
        )
    order = [position[(y0, y1, x0, x1)] for y0, y1 in rows for x0, x1 in cols]
    return order, rows, cols, _axis_cuts(rows, height, "y"), _axis_cuts(cols, width, "x")


def _smallest_overlap(intervals: list[tuple[int, int]]) -> int:
    """Smallest positive overlap (px) between consecutive sorted intervals; 0 if none."""
    return min((e - s for (_, e), (s, _) in zip(intervals, intervals[1:]) if e > s), default=0)


def _axis_cuts(intervals: list[tuple[int, int]], length: int, axis: str) -> np.ndarray:
    """Ownership cuts (len n + 1) for sorted intervals; checks they tile [0, length)."""
    starts = np.array([a for a, _ in intervals])
    ends = np.array([b for _, b in intervals])
    problem = None
    if starts[0] != 0 or ends[-1] != length:
        problem = f"the crops span {axis} {starts[0]}..{ends[-1]} instead of 0..{length}"
    elif np.any(ends[1:] <= ends[:-1]):
        problem = f"one crop lies inside another along {axis}"
    elif np.any(starts[1:] > ends[:-1]):
        problem = f"neighbouring crops leave a gap along {axis}"
    if problem:
        raise ValueError(
            f"the crop plan is not a grid covering the image: {problem}; "
            "build it with crop_plan(shape, crop_size, overlap)"
        )
    return np.concatenate([[0], (starts[1:] + ends[:-1]) // 2, [length]])


def __getattr__(name: str):
    """Re-export ``stitch_crops`` and ``StitchResult`` from ``backend.core.stitch``.

    Resolved on first use, because ``backend.core.stitch`` imports this module.
    """
    if name in ("stitch_crops", "StitchResult"):
        from backend.core import stitch

        return getattr(stitch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
