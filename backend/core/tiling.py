"""Crop plan, cropping, and stitching of label crops by maximum overlap.

An image of shape (H, W) is cut into a row-major grid of square crops (``crop_plan``). Along each
axis the crops start every ``crop_size - overlap`` pixels; the last crop of a row/column is shifted
back to end exactly at the image border, so no crop holds padding and every crop has size
``min(crop_size, H) x min(crop_size, W)``. Crops are annotated independently (their ids mean
nothing outside the crop) and stitched back with ``stitch_crops``:

Ownership rule
    Every output pixel is taken from exactly one crop. Along each axis, the overlap between two
    consecutive crops is cut at its middle (``(next_start + this_end) // 2``); the pixel belongs to
    the crop on its side of the cut. For equal-size crops this is the crop whose centre is nearest
    (ties go to the later crop), and the owned areas tile the image as rectangles.
Link rule
    Per feature, a node is one (crop, id) pair. For every two neighbouring crops (side or corner
    neighbours in the grid), the pixels of their overlap are counted by (id in the first crop,
    id in the second crop), background included. Each cell is linked to the id it overlaps most
    in the other crop (ties: the smaller id, background first); a cell whose largest overlap is
    background is not linked. Links are taken in both directions and merged transitively
    (connected components), so a cell spanning four crops is one id. Ids are then compacted to
    1..n in the order of the crops (row-major) and of the ids within a crop.
Conflicts
    A pixel of an overlap is a conflict when the two crops disagree about it: one says background
    and the other a cell, or both say a cell but the two cells are not each other's best match
    (e.g. one annotator split a cell the other kept whole: the piece overlapping less is
    flagged).

Guarantee: when the crops agree (cut from one label image and renumbered, or edited
consistently), ``stitch_crops(plan, crop_stack(y, plan), shape).labels`` equals ``y`` up to
renumbering, with no conflicts, for every shape, crop size and overlap >= 1 px, provided every cell
is 8-connected (any two 8-adjacent pixels then share a crop, so the pieces of a cell always meet
in some overlap). With overlap 0 nothing can be linked. On inconsistent crops:

* the result is deterministic and independent of the order of the plan;
* a cell that no crop edited comes back exactly, under an id of its own;
* a cell that no crop split or merged keeps one id across every crop border, whichever crops
  deleted it: it is never duplicated under two ids;
* a cell split by one crop and kept whole by its neighbour comes back whole when both pieces
  reach their overlap (a piece that does not reach it stays separate); two cells merged by one
  crop and kept apart by its neighbour come back merged;
* a cell deleted by one crop survives, clipped to the area owned by the crops that kept it;
* conflicts flag every such place for the reviewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = [
    "CropWindow",
    "StitchResult",
    "crop_plan",
    "crop_stack",
    "default_overlap",
    "stitch_crops",
]

_INT32_MAX = int(np.iinfo(np.int32).max)


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


@dataclass
class StitchResult:
    """Stitched labels of one image.

    Attributes
    ----------
    labels : np.ndarray
        (F, H, W) int32; per feature, 0 is background and cells are numbered 1..n_cells[f].
    conflicts : np.ndarray
        (F, H, W) bool; True where two overlapping crops disagreed (see the module docstring).
    n_cells : tuple of int
        Number of cells per feature.
    """

    labels: np.ndarray
    conflicts: np.ndarray
    n_cells: tuple[int, ...]

    @property
    def n_conflict_pixels(self) -> int:
        """Number of True entries in ``conflicts``, all features together."""
        return int(np.count_nonzero(self.conflicts))


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


def stitch_crops(
    plan: list[CropWindow], label_crops: list[np.ndarray], shape: tuple[int, int]
) -> StitchResult:
    """Stitch independently labelled crops into one label stack, linking cells by max overlap.

    See the module docstring for the ownership rule, the link rule, what counts as a conflict,
    and the reconstruction guarantee.

    Parameters
    ----------
    plan : list of CropWindow
        The crop grid, e.g. from ``crop_plan(shape, ...)``, in any order: it must be a full grid
        (every row interval combined with every column interval, each once) whose consecutive
        intervals overlap or abut and together cover the image.
    label_crops : list of np.ndarray
        One (F, window.height, window.width) integer array per window, same order as ``plan``;
        ids are >= 0 (0 is background), at most 2**31 - 1, and local to each crop.
    shape : (int, int)
        Image (H, W) in px.

    Returns
    -------
    StitchResult
        ``labels`` (F, H, W) int32 with ids compacted to 1..n per feature, ``conflicts``
        (F, H, W) bool, ``n_cells`` per feature. Deterministic: the same crops in another plan
        order give the same arrays.

    Raises
    ------
    ValueError
        If the plan is not such a grid, a crop's shape does not match its window or the other
        crops' feature count, or a crop holds negative, too large or non-integer labels.
    """
    height, width = _image_shape(shape)
    if len(plan) != len(label_crops):
        raise ValueError(f"got {len(plan)} crop windows but {len(label_crops)} label crops")
    if not plan:
        raise ValueError("the crop plan is empty; build one with crop_plan(shape)")
    if not all(isinstance(window, CropWindow) for window in plan):
        raise ValueError("the crop plan must hold CropWindow objects, as crop_plan returns")
    grid = _grid(tuple(plan), height, width)
    crops = [np.asarray(label_crops[i]) for i in grid.plan_index]
    n_features = _check_crops(crops, grid.windows)
    labels = np.empty((n_features, height, width), np.int32)
    conflicts = np.zeros((n_features, height, width), bool)
    n_cells = tuple(
        _stitch_feature(grid, [crop[f] for crop in crops], labels[f], conflicts[f])
        for f in range(n_features)
    )
    return StitchResult(labels=labels, conflicts=conflicts, n_cells=n_cells)


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


def _later_neighbours(i: int, j: int) -> tuple[tuple[int, int], ...]:
    """Grid cells after (i, j) that may overlap it: right, down-left, down, down-right."""
    return (i, j + 1), (i + 1, j - 1), (i + 1, j), (i + 1, j + 1)


@lru_cache(maxsize=32)
def _grid(plan: tuple[CropWindow, ...], height: int, width: int) -> _Grid:
    """Cached ``_Grid``: images of one project share a few plan geometries."""
    return _Grid(list(plan), height, width)


class _Grid:
    """Grid structure of a plan: windows in row-major order, owned areas, overlapping pairs."""

    def __init__(self, plan: list[CropWindow], height: int, width: int) -> None:
        rows = sorted({(w.y0, w.y1) for w in plan})
        cols = sorted({(w.x0, w.x1) for w in plan})
        position = {(w.y0, w.y1, w.x0, w.x1): i for i, w in enumerate(plan)}
        if len(position) != len(plan) or len(plan) != len(rows) * len(cols):
            raise ValueError(
                f"the crop plan is not a grid: {len(plan)} windows ({len(position)} distinct) "
                f"for {len(rows)} row and {len(cols)} column intervals; "
                "build it with crop_plan(shape, crop_size, overlap)"
            )
        row_cuts = _axis_cuts(rows, height, "y")
        col_cuts = _axis_cuts(cols, width, "x")
        self.plan_index: list[int] = []
        self.windows: list[CropWindow] = []
        self.owned: list[tuple[tuple[slice, slice], tuple[slice, slice]]] = []
        self.strips: list[list[tuple[slice, slice]]] = []
        for i, (y0, y1) in enumerate(rows):
            for j, (x0, x1) in enumerate(cols):
                key = (y0, y1, x0, x1)
                if key not in position:
                    raise ValueError(
                        f"the crop plan is not a grid: no window for rows {y0}:{y1}, "
                        f"columns {x0}:{x1}; build it with crop_plan(shape, crop_size, overlap)"
                    )
                self.plan_index.append(position[key])
                self.windows.append(plan[position[key]])
                oy0, oy1 = int(row_cuts[i]) - y0, int(row_cuts[i + 1]) - y0
                ox0, ox1 = int(col_cuts[j]) - x0, int(col_cuts[j + 1]) - x0
                self.owned.append(
                    (
                        (slice(oy0, oy1), slice(ox0, ox1)),
                        (slice(oy0 + y0, oy1 + y0), slice(ox0 + x0, ox1 + x0)),
                    )
                )
                # the rest of the crop: rows above / below the owned box, columns left / right
                h, w = y1 - y0, x1 - x0
                strips = [
                    ((0, oy0), (0, w)),
                    ((oy1, h), (0, w)),
                    ((oy0, oy1), (0, ox0)),
                    ((oy0, oy1), (ox1, w)),
                ]
                self.strips.append(
                    [(slice(*r), slice(*c)) for r, c in strips if r[0] < r[1] and c[0] < c[1]]
                )
        # side and corner neighbours with a non-empty overlap: (a, b, direction, overlap in a's
        # frame, in b's frame, in the image). The owned areas of 8-adjacent pixels always belong
        # to neighbouring crops, so farther crops (overlapping only at tiny strides) are not linked.
        n_rows, n_cols = len(rows), len(cols)
        self.pairs: list[tuple] = []
        self.neighbour = np.zeros((len(self.windows), 4), np.int64)
        self.pair_index = np.zeros((len(self.windows), 4), np.int64)
        self.pair_shape: list[tuple[int, int]] = []
        sizes = [0]
        for a, wa in enumerate(self.windows):
            i, j = divmod(a, n_cols)
            for direction, (i2, j2) in enumerate(_later_neighbours(i, j)):
                if not (i2 < n_rows and 0 <= j2 < n_cols):
                    continue
                b = i2 * n_cols + j2
                wb = self.windows[b]
                y0, y1 = max(wa.y0, wb.y0), min(wa.y1, wb.y1)
                x0, x1 = max(wa.x0, wb.x0), min(wa.x1, wb.x1)
                if y0 >= y1 or x0 >= x1:
                    continue
                in_a = (slice(y0 - wa.y0, y1 - wa.y0), slice(x0 - wa.x0, x1 - wa.x0))
                in_b = (slice(y0 - wb.y0, y1 - wb.y0), slice(x0 - wb.x0, x1 - wb.x0))
                self.neighbour[a, direction] = b
                self.pair_index[a, direction] = len(self.pairs)
                self.pairs.append((a, b, direction, in_a, in_b, (slice(y0, y1), slice(x0, x1))))
                self.pair_shape.append((y1 - y0, x1 - x0))
                sizes.append((y1 - y0) * (x1 - x0))
        self.pair_start = np.cumsum(sizes)


# --------------------------------------------------------------------------------------------
# stitching


def _check_crops(crops: list[np.ndarray], windows: list[CropWindow]) -> int:
    """Check each crop is (F, h, w) integer matching its window; return F."""
    n_features = None
    for crop, window in zip(crops, windows):
        if crop.ndim != 3 or crop.shape[1:] != (window.height, window.width):
            raise ValueError(
                f"label crop of shape {crop.shape} does not fit {window}: expected "
                f"(F, {window.height}, {window.width})"
            )
        if crop.dtype.kind not in "iu":
            raise ValueError(f"label crops must hold integer ids, got dtype {crop.dtype}")
        if n_features is None:
            n_features = crop.shape[0]
        elif crop.shape[0] != n_features:
            raise ValueError(
                "label crops disagree on the number of features: "
                f"{n_features} and {crop.shape[0]}"
            )
    if not n_features:
        raise ValueError("label crops have no feature axis entries (F = 0)")
    return n_features


def _local_ids(raw: np.ndarray) -> tuple[np.ndarray, int]:
    """Range-check one (h, w) crop of ids; return ids to index tables with, and their maximum.

    Ids up to a few times the crop's pixel count are used as they are (tables indexed by id);
    larger ones are first replaced by their rank among the crop's ids (0 stays 0).
    """
    low = int(raw.min()) if raw.dtype.kind == "i" else 0
    top = int(raw.max())
    if low < 0 or top > _INT32_MAX:
        raise ValueError(
            f"label ids must lie in 0..{_INT32_MAX} (int32), found {low if low < 0 else top}"
        )
    if top <= max(4 * raw.size, 4096):
        return (raw.astype(np.int64) if raw.dtype == np.uint64 else raw), top
    ids, inverse = np.unique(raw, return_inverse=True)
    inverse = inverse.reshape(raw.shape).astype(np.int32) + (1 if ids[0] != 0 else 0)
    return inverse, int(inverse.max())


def _stitch_feature(
    grid: _Grid, crops: list[np.ndarray], out: np.ndarray, conflicts: np.ndarray
) -> int:
    """Stitch one feature of all crops into ``out`` (H, W) int32; mark ``conflicts``; return n."""
    # 1. nodes: per crop, the ids present (0 always) numbered 0.. in id order, after the nodes of
    #    the previous crops; remember which nodes own pixels (only those get an output id)
    raws, tables, offsets, owned_nodes = [], [], [], []
    n_nodes = 0
    for raw, (owned_local, _), strips in zip(crops, grid.owned, grid.strips):
        raw, top = _local_ids(raw)
        owned = np.zeros(top + 1, bool)
        owned[raw[owned_local]] = True
        seen = owned.copy()
        for strip in strips:
            seen[raw[strip]] = True
        seen[0] = True
        owned[0] = False
        table = (np.cumsum(seen) - 1).astype(np.int32)  # id -> node index within the crop
        owned_nodes.append(table[owned] + n_nodes)
        if table.size > raw.size // 2 + 1024:  # sparse ids: index tables by node, not by id
            raw = table[raw]
            table = np.arange(int(table[-1]) + 1, dtype=np.int32)
        raws.append(raw)
        tables.append(table)
        offsets.append(n_nodes)
        n_nodes += int(table[-1]) + 1
    offsets = np.array(offsets)
    sizes = np.diff(np.append(offsets, n_nodes))

    # 2. links by maximum overlap, from the (node in a, direction, node in b) counts of all overlaps
    if grid.pairs:
        edges = _overlap_links(grid, raws, tables, offsets, sizes, conflicts)
    else:
        edges = np.zeros((2, 0), np.int64)

    # 3. transitive merge; ids 1..n for components that own pixels; one relabel per crop
    graph = coo_matrix((np.ones(edges.shape[1], np.int8), tuple(edges)), (n_nodes, n_nodes))
    _, component = connected_components(graph, directed=False)
    shown = np.zeros(component.max() + 1, bool)
    shown[component[np.concatenate(owned_nodes)]] = True
    new_id = np.cumsum(shown).astype(np.int32)[component]
    new_id[offsets] = 0
    for raw, table, offset, (owned_local, owned_image) in zip(raws, tables, offsets, grid.owned):
        np.take(new_id[offset:][table], raw[owned_local], out=out[owned_image], mode="clip")
    return int(np.count_nonzero(shown))


def _overlap_links(grid, raws, tables, offsets, sizes, conflicts):
    """Count id pairs over every overlap; return link edges (2, E) and mark conflict pixels.

    Each overlap pixel gets the code ``(node_a * 4 + direction) * n_max + local_b``: node_a is the
    global node in the first crop, direction which neighbour (right, down-left, down, down-right)
    the second crop is, local_b the node index within the second crop.
    """
    n_max = int(sizes.max())
    stride = 4 * n_max
    space = int(offsets[-1] + sizes[-1]) * stride
    dtype = np.int32 if space <= _INT32_MAX else np.int64
    codes = np.empty(grid.pair_start[-1], dtype)
    scaled = {}  # crop -> its id -> node_a * stride table
    for p, (a, b, direction, in_a, in_b, _) in enumerate(grid.pairs):
        seg = codes[grid.pair_start[p] : grid.pair_start[p + 1]].reshape(grid.pair_shape[p])
        if a not in scaled:
            scaled[a] = (tables[a] + offsets[a]).astype(dtype) * stride
        np.take(scaled[a], raws[a][in_a], out=seg, mode="clip")
        seg += (tables[b] + direction * n_max)[raws[b][in_b]]
    code, count = _count_codes(codes, space)
    node_a, rest = np.divmod(code, stride)
    direction, local_b = np.divmod(rest, n_max)
    crop_a = np.repeat(np.arange(sizes.size), sizes)[node_a]
    local_a = node_a - offsets[crop_a]
    pair = grid.pair_index[crop_a, direction]
    best_for_a = _best_match(pair, local_a, local_b, count)
    best_for_b = _best_match(pair, local_b, local_a, count)
    cells = (local_a > 0) & (local_b > 0)
    link = cells & (best_for_a | best_for_b)
    node_b = offsets[grid.neighbour[crop_a, direction]] + local_b
    agree = (cells & best_for_a & best_for_b) | ((local_a == 0) & (local_b == 0))
    for p in np.unique(pair[~agree]):  # pixels whose (a, b) entry is a disagreement
        seg = codes[grid.pair_start[p] : grid.pair_start[p + 1]].reshape(grid.pair_shape[p])
        conflicts[grid.pairs[p][5]] |= np.isin(seg, code[~agree & (pair == p)])
    return np.stack([node_a[link], node_b[link]])


def _count_codes(codes: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of ``codes`` (all in 0..space-1) and how often each occurs (int64).

    Works on runs of equal consecutive codes (overlaps are mostly long runs), and finds the
    distinct run values with a scatter into an uninitialised table instead of a sort.
    """
    start = np.empty(codes.size, bool)
    start[0] = True
    np.not_equal(codes[1:], codes[:-1], out=start[1:])
    at = np.flatnonzero(start)
    values = codes[at]
    lengths = np.diff(np.append(at, codes.size))
    run = np.arange(values.size)
    if space <= max(8 * codes.size, 1 << 24):
        slot = np.empty(space, np.int32 if values.size <= _INT32_MAX else np.int64)
        slot[values] = run  # one run of each value wins the slot and leads its value
        leader_of = slot[values]
    else:
        _, first_of, inverse = np.unique(values, return_index=True, return_inverse=True)
        leader_of = first_of[inverse.ravel()]
    leader = leader_of == run
    group = np.cumsum(leader) - 1
    count = np.bincount(group[leader_of], weights=lengths, minlength=int(group[-1]) + 1)
    return values[leader], count.astype(np.int64)


def _best_match(pair: np.ndarray, node: np.ndarray, other: np.ndarray, count: np.ndarray):
    """Per (pair, node): True on the entry with the largest count (ties: smallest ``other``)."""
    order = np.lexsort((other, -count, node, pair))
    sorted_pair, sorted_node = pair[order], node[order]
    first = np.ones(order.size, bool)
    first[1:] = (sorted_pair[1:] != sorted_pair[:-1]) | (sorted_node[1:] != sorted_node[:-1])
    best = np.zeros(order.size, bool)
    best[order[first]] = True
    return best
