"""Stitching of independently labelled crops back into one label stack, by maximum overlap.

The crops come from a crop plan (``backend.core.tiling.crop_plan``); their ids mean nothing
outside the crop. ``stitch_crops`` puts them back together:

Ownership rule
    Every output pixel is taken from exactly one crop. Along each axis, the overlap between two
    consecutive crops is cut at its middle (``(next_start + this_end) // 2``); the pixel belongs to
    the crop on its side of the cut. For equal-size crops this is the crop whose centre is nearest
    (ties go to the later crop), and the owned areas tile the image as rectangles.
Link rule
    Per feature, a node is one (crop, id) pair. For every two neighbouring crops (side or corner
    neighbours in the grid), the pixels of their overlap band are counted by (id in the first
    crop, id in the second crop), background included. Across each cut the band spans
    ``[cut - b // 2, cut - b // 2 + b)``, ``b`` being the smallest overlap along that axis (at
    least 2 px): the whole overlap, except that the wider overlap of an edge-aligned last crop
    (193 px for 270-px crops at 2048 px) is counted over the same width as the others. Each cell
    is linked to the id it overlaps most in the other crop (ties: the smaller id, background
    first); a cell whose largest overlap is background is not linked. Links are merged
    transitively, so a cell spanning four crops is one id. Ids are compacted to 1..n in the
    order of the crops (row-major) and of the ids within a crop (a cell: its first node's place).
Conflicts
    A pixel of a band is a conflict when the two crops disagree about it: one says background
    and the other a cell, or both say a cell but the two cells are not each other's best match
    (e.g. one annotator split a cell the other kept whole: the piece overlapping less).

Guarantee: when the crops agree (cut from one label image and renumbered, or edited
consistently), ``stitch_crops(plan, crop_stack(y, plan), shape).labels`` equals ``y`` up to
renumbering, with no conflicts, for every shape, crop size and overlap >= 1 px, provided every cell
is 8-connected (two 8-adjacent pixels share a crop, and each lies in the band between that crop
and the crop that owns it). With overlap 0 nothing can be linked. On inconsistent crops:

* the result is deterministic and independent of the order of the plan;
* a cell that no crop edited comes back exactly, under an id of its own;
* a cell that no crop split or merged keeps one id across every crop border, whichever crops
  deleted it: it is never duplicated under two ids;
* a cell split by one crop and kept whole by its neighbour comes back whole when both pieces
  reach their band (a piece that does not stays separate); two cells merged by one crop and
  kept apart by its neighbour come back merged;
* a cell deleted by one crop survives, clipped to the area owned by the crops that kept it;
* conflicts flag every such place for the reviewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from backend.core.tiling import CropWindow, _grid_axes, _image_shape, _smallest_overlap

__all__ = ["StitchResult", "stitch_crops"]

_INT32_MAX = int(np.iinfo(np.int32).max)


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
# grid geometry


def _band(start: int, end: int, cut: int, width: int) -> tuple[int, int]:
    """The overlap ``[start, end)`` clipped to ``width`` px around ``cut``."""
    return max(start, cut - width // 2), min(end, cut - width // 2 + width)


@lru_cache(maxsize=32)
def _grid(plan: tuple[CropWindow, ...], height: int, width: int) -> _Grid:
    """Cached ``_Grid``: images of one project share a few plan geometries."""
    return _Grid(list(plan), height, width)


class _Grid:
    """Plan geometry: windows row-major, owned boxes, region starts, bands of neighbour pairs.

    ``region_starts[i]``: for grid row i, whose crops lie end to end ``slot`` entries apart in
    a mask, the mask indices of the first columns and first rows of each crop's rectangles.
    """

    def __init__(self, plan: list[CropWindow], height: int, width: int) -> None:
        self.plan_index, rows, cols, row_cuts, col_cuts = _grid_axes(plan, height, width)
        self.windows = [plan[k] for k in self.plan_index]
        self.n_cols = len(cols)
        self.slot = max(b - a for a, b in rows) * max(b - a for a, b in cols)
        self.owned: list[tuple[tuple[slice, slice], tuple[slice, slice]]] = []
        self.region_starts: list[tuple[np.ndarray, np.ndarray]] = []
        box, shared = [], {}  # grid rows of one height and owned rows share their arrays
        for i, (y0, y1) in enumerate(rows):
            first_cols, first_rows = [], []
            for j, (x0, x1) in enumerate(cols):
                oy0, oy1 = int(row_cuts[i]) - y0, int(row_cuts[i + 1]) - y0
                ox0, ox1 = int(col_cuts[j]) - x0, int(col_cuts[j + 1]) - x0
                in_image = (slice(oy0 + y0, oy1 + y0), slice(ox0 + x0, ox1 + x0))
                self.owned.append(((slice(oy0, oy1), slice(ox0, ox1)), in_image))
                box.append((oy0, oy1 - oy0, ox0, ox1 - ox0))
                h, w, at = y1 - y0, x1 - x0, j * self.slot
                first_cols += [at + np.arange(h) * w + c for c in {0, ox0, ox1} - {w}]
                first_rows += [at + np.arange(w) + r * w for r in {0, oy0, oy1} - {h}]
            for key, starts in (((y1 - y0,), first_cols), ((y1 - y0, oy0, oy1), first_rows)):
                shared.setdefault(key, np.concatenate(starts))
            self.region_starts.append((shared[(y1 - y0,)], shared[(y1 - y0, oy0, oy1)]))
        box = np.array(box, np.int64).T  # owned box: first row, height, first column, width
        self.box = (box[0], box[1].astype(np.uint64), box[2], box[3].astype(np.uint64))
        self.widths = np.array([w.width for w in self.windows], np.int64)
        # pairs: side and corner neighbours (right, down-left, down, down-right) that overlap,
        # as (a, b, band in a's frame, in b's frame, in the image); farther crops never own
        # 8-adjacent pixels. Groups: pairs whose bands have the same frames, as (pair indices,
        # first crops, second crops, band in a's frame, in b's frame).
        band_y, band_x = (max(2, _smallest_overlap(intervals)) for intervals in (rows, cols))
        self.pairs: list[tuple] = []
        groups: dict[tuple, list[int]] = {}
        for a, wa in enumerate(self.windows):
            i, j = divmod(a, self.n_cols)
            for i2, j2 in ((i, j + 1), (i + 1, j - 1), (i + 1, j), (i + 1, j + 1)):
                if not (i2 < len(rows) and 0 <= j2 < self.n_cols):
                    continue
                wb = self.windows[i2 * self.n_cols + j2]
                y0, y1 = max(wa.y0, wb.y0), min(wa.y1, wb.y1)
                x0, x1 = max(wa.x0, wb.x0), min(wa.x1, wb.x1)
                if y0 >= y1 or x0 >= x1:
                    continue
                if i2 > i:
                    y0, y1 = _band(y0, y1, int(row_cuts[i2]), band_y)
                if j2 != j:
                    x0, x1 = _band(x0, x1, int(col_cuts[max(j, j2)]), band_x)
                in_a = (slice(y0 - wa.y0, y1 - wa.y0), slice(x0 - wa.x0, x1 - wa.x0))
                in_b = (slice(y0 - wb.y0, y1 - wb.y0), slice(x0 - wb.x0, x1 - wb.x0))
                key = (y0 - wa.y0, y1 - wa.y0, x0 - wa.x0, x1 - wa.x0, y0 - wb.y0, x0 - wb.x0)
                groups.setdefault(key, []).append(len(self.pairs))
                b, in_image = i2 * self.n_cols + j2, (slice(y0, y1), slice(x0, x1))
                self.pairs.append((a, b, in_a, in_b, in_image))
        self.pair_a = np.array([p[0] for p in self.pairs], np.int64)
        self.pair_b = np.array([p[1] for p in self.pairs], np.int64)
        areas = ((y.stop - y.start) * (x.stop - x.start) for *_, (y, x) in self.pairs)
        self.band_area = max(areas, default=0)
        self.groups = [
            (np.array(m), [self.pairs[p][0] for p in m], [self.pairs[p][1] for p in m])
            + self.pairs[m[0]][2:4]
            for m in groups.values()
        ]


# --------------------------------------------------------------------------------------------
# stitching


def _check_crops(crops: list[np.ndarray], windows: list[CropWindow]) -> int:
    """Check each crop is (F, h, w) integer matching its window; return F."""
    n_features = None
    for crop, window in zip(crops, windows):
        if crop.ndim != 3 or crop.shape[1:] != (window.height, window.width):
            expected = f"expected (F, {window.height}, {window.width})"
            raise ValueError(f"label crop of shape {crop.shape} does not fit {window}: {expected}")
        if crop.dtype.kind not in "iu":
            raise ValueError(f"label crops must hold integer ids, got dtype {crop.dtype}")
        if n_features is None:
            n_features = crop.shape[0]
        elif crop.shape[0] != n_features:
            counts = f"{n_features} and {crop.shape[0]}"
            raise ValueError(f"label crops disagree on the number of features: {counts}")
        if crop.dtype == np.uint64 and crop.size and int(crop.max()) > _INT32_MAX:
            raise ValueError(f"label ids must lie in 0..{_INT32_MAX} (int32), found {crop.max()}")
    if not n_features:
        raise ValueError("label crops have no feature axis entries (F = 0)")
    return n_features


def _stitch_feature(
    grid: _Grid, crops: list[np.ndarray], out: np.ndarray, conflicts: np.ndarray
) -> int:
    """Stitch one feature of all crops into ``out`` (H, W) int32; mark ``conflicts``; return n."""
    # 1. the ids of every crop, and which of them own pixels
    if len({crop.dtype for crop in crops}) > 1 or crops[0].dtype == np.uint64:
        crops = [crop.astype(np.int64) for crop in crops]
    crops = [np.ascontiguousarray(crop) for crop in crops]
    crop_of, ids, owns, top = _crop_ids(grid, crops)
    # 2. the id space: crop c's ids are id_start[c] + id, id <= top[c]; nodes are the ids seen
    id_start = np.concatenate([[0], np.cumsum(top + 1)])
    seen = np.zeros(int(id_start[-1]), bool)
    space = ids + id_start[crop_of]
    seen[space] = True
    seen[id_start[:-1]] = True  # background: node 0 of every crop
    node = np.cumsum(seen, dtype=np.int64 if seen.size > _INT32_MAX else np.int32) - 1
    n_nodes = int(node[-1]) + 1
    # 3. links by maximum overlap in the bands
    edges = np.zeros((2, 0), np.int64)
    if grid.pairs:
        edges = _band_links(grid, crops, id_start, node, conflicts)
    # 4. transitive merge; ids 1..n for the components that own pixels; one lookup per crop
    graph = coo_matrix((np.ones(edges.shape[1], np.int8), tuple(edges)), (n_nodes, n_nodes))
    _, component = connected_components(graph, directed=False)
    shown = np.zeros(int(component.max()) + 1, bool)
    shown[component[node[space[owns]]]] = True
    new_id = np.where(shown, np.cumsum(shown, dtype=np.int32), 0).astype(np.int32)
    lookup = new_id[component][node]  # id space -> output id (0 for background)
    scratch = np.empty(grid.slot, np.int32)  # np.take writes fastest to contiguous memory
    for c, (owned_local, owned_image) in enumerate(grid.owned):
        owned = crops[c][owned_local]
        result = scratch[: owned.size].reshape(owned.shape)
        np.take(lookup[id_start[c] : id_start[c + 1]], owned, out=result, mode="wrap")
        out[owned_image] = result
    return int(np.count_nonzero(shown))


def _crop_ids(grid: _Grid, crops: list[np.ndarray]):
    """The ids of every crop, read where a region of equal ids starts; validates them.

    A pixel starts a region when it differs from its left and from its upper neighbour, or has
    no such neighbour in its rectangle (the owned box, or a strip around it): every id of a
    rectangle occurs at a start. One grid row at a time, on small masks. Crops with ids much
    larger than their size are replaced, in ``crops``, by id ranks (0 stays 0). Returns (crop,
    id, owns: in the owned box and > 0) per start, by crop, and each crop's largest id (int64).
    """
    n_cols, slot = grid.n_cols, grid.slot
    chunk = n_cols * slot
    left = np.empty(chunk + 16 - chunk % 8, bool)  # whole 8-byte words, zero-padded
    up = np.empty_like(left)
    parts = []
    for i, (first_cols, first_rows) in enumerate(grid.region_starts):
        row_crops = crops[i * n_cols : (i + 1) * n_cols]
        for j, crop in enumerate(row_crops):
            (h, w), flat, at = crop.shape, crop.reshape(-1), j * slot
            np.not_equal(flat[1:], flat[:-1], out=left[at + 1 : at + h * w])
            np.not_equal(flat[w:], flat[:-w], out=up[at + w : at + h * w])
            left[at + h * w : at + slot] = False  # a crop smaller than the slot
        left[first_cols] = True
        up[first_rows] = True
        np.logical_and(left, up, out=left)
        left[chunk:] = False
        where, local = np.divmod(_true_positions(left), slot)
        first = np.searchsorted(where, np.arange(n_cols + 1))
        ids = np.empty(local.size, crops[0].dtype)
        for j, crop in enumerate(row_crops):
            part = slice(first[j], first[j + 1])
            np.take(crop.reshape(-1), local[part], out=ids[part], mode="wrap")
        where += i * n_cols
        row, col = np.divmod(local, grid.widths[where])
        owns = (row - grid.box[0][where]).view(np.uint64) < grid.box[1][where]
        owns &= (col - grid.box[2][where]).view(np.uint64) < grid.box[3][where]
        parts.append((where, ids, owns))
    crop_of, ids, owns = (np.concatenate(column) for column in zip(*parts))
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high > _INT32_MAX:
        found = low if low < 0 else high
        raise ValueError(f"label ids must lie in 0..{_INT32_MAX} (int32), found {found}")
    first = np.searchsorted(crop_of, np.arange(len(crops) + 1))
    top = np.maximum.reduceat(ids, first[:-1]).astype(np.int64)
    for c in np.flatnonzero(top > max(slot // 4, 4096)):  # sparse ids: rank them
        part = slice(first[c], first[c + 1])
        distinct = np.union1d(ids[part], [0])
        crops[c] = np.searchsorted(distinct, crops[c])
        ids[part] = np.searchsorted(distinct, ids[part])
        top[c] = distinct.size - 1
    return crop_of, ids, owns & (ids > 0), top


def _true_positions(mask: np.ndarray) -> np.ndarray:
    """``np.flatnonzero(mask)`` for a sparse bool mask whose size is a multiple of 8."""
    words = np.flatnonzero(mask.view(np.uint64) != 0)
    hits = np.flatnonzero(mask.view(np.uint64)[words].view(bool))
    return words[hits >> 3] * 8 + (hits & 7)


def _band_links(grid: _Grid, crops, id_start, node, conflicts) -> np.ndarray:
    """Count id pairs over every band; return link edges (2, E) of nodes; mark conflicts.

    Each group of bands is copied out end to end and counted once per run of equal (id in a,
    id in b). Pair p's (node in a, node in b) has the code ``base[p] + local_a * n_b + local_b``.
    """
    node_start = node[id_start[:-1]]
    n_per_crop = np.diff(np.append(node_start, node[-1] + 1)).astype(np.int64)
    n_a, n_b = n_per_crop[grid.pair_a], n_per_crop[grid.pair_b]
    base = np.concatenate([[0], np.cumsum(n_a * n_b)])
    shift = base[:-1] - node_start[grid.pair_a] * n_b - node_start[grid.pair_b]
    start_a, start_b = id_start[grid.pair_a], id_start[grid.pair_b]
    bits = grid.band_area.bit_length()  # a run is at most one band long
    packed = int(base[-1]) < 1 << (62 - bits)
    found = []
    for members, first, second, in_a, in_b in grid.groups:
        ids_a = np.stack([crops[a][in_a] for a in first]).reshape(-1)
        ids_b = np.stack([crops[b][in_b] for b in second]).reshape(-1)
        size = ids_a.size // members.size
        run = np.empty(ids_a.size, bool)
        np.not_equal(ids_a[1:], ids_a[:-1], out=run[1:])
        run[1:] |= ids_b[1:] != ids_b[:-1]
        run[::size] = True
        at = np.flatnonzero(run)
        pair = members[at // size]
        code = node[ids_a[at] + start_a[pair]] * n_b[pair]
        code += node[ids_b[at] + start_b[pair]] + shift[pair]
        found.append((code, np.diff(at, append=ids_a.size)))
    code, length = (np.concatenate(column) for column in zip(*found))
    if packed:  # sorting (code, run length) packed in one int64 beats an argsort
        key = np.sort((code << bits) + length)
        code, length = key >> bits, key & ((1 << bits) - 1)
    else:
        order = np.argsort(code)
        code, length = code[order], length[order]
    new = np.flatnonzero(np.diff(code, prepend=-1))
    code, count = code[new], np.add.reduceat(length, new)
    pair = np.searchsorted(base, code, side="right") - 1
    local_a, local_b = np.divmod(code - base[pair], n_b[pair])
    best_for_a = _first_max(code - local_b, count)  # codes sorted by (pair, local_a, local_b)
    by_b = np.argsort(base[pair] + local_b * n_a[pair] + local_a)
    best_for_b = np.zeros(code.size, bool)
    best_for_b[by_b] = _first_max(base[pair] + local_b, count, by_b)
    cells = (local_a > 0) & (local_b > 0)
    link = cells & (best_for_a | best_for_b)
    agree = (cells & best_for_a & best_for_b) | ((local_a == 0) & (local_b == 0))
    for p in np.unique(pair[~agree]):  # pixels whose (a, b) entry is a disagreement
        a, b, in_a, in_b, in_image = grid.pairs[p]
        node_a, node_b = node[crops[a][in_a] + start_a[p]], node[crops[b][in_b] + start_b[p]]
        flagged = np.isin(node_a * n_b[p] + node_b + shift[p], code[~agree & (pair == p)])
        conflicts[in_image] |= flagged
    a_of, b_of = grid.pair_a[pair[link]], grid.pair_b[pair[link]]
    return np.stack([node_start[a_of] + local_a[link], node_start[b_of] + local_b[link]])


def _first_max(group: np.ndarray, count: np.ndarray, order: np.ndarray | None = None):
    """True on the first entry with the largest count of each run of equal ``group`` values.

    Entries are taken in ``order`` (default: as given); ``group[order]`` must be sorted.
    """
    if order is not None:
        group, count = group[order], count[order]
    index = np.cumsum(np.diff(group, prepend=group[0] - 1) != 0) - 1  # run of each entry
    starts = np.flatnonzero(np.diff(index, prepend=-1))
    candidates = np.flatnonzero(count == np.maximum.reduceat(count, starts)[index])
    best = np.zeros(group.size, bool)
    best[candidates[np.diff(index[candidates], prepend=-1) != 0]] = True
    return best
