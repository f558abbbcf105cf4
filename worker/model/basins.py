"""The basin graph of a height map: steepest-ascent basins, their saddles, its spanning tree.

Pure NumPy / SciPy, vectorised (no Python loop over pixels or basins). Shared by the h-maxima
markers (:mod:`worker.model.hmaxima`) and the flood from them (:mod:`worker.model.marker_flood`).

* every mask pixel points to its highest 4-neighbour or to itself, in (height, flat index)
  order: equal heights are ordered too, so every chain of pointers strictly climbs and ends
  at a *summit*; a pixel's *basin* is its summit's. Inside a basin every pixel reaches the
  summit through pixels at least as high;
* two basins are linked by their 4-adjacent pixel pairs (p, q) at ``min(f(p), f(q))``; the
  *saddle* of the two basins is the highest of those. The lowest pixel on the best path
  between any two pixels (the bottleneck, what h-maxima and flooding are about) is the
  lowest saddle on the best path between their basins;
* best paths between basins lie in the maximum spanning tree of the basin graph, built with
  Borůvka rounds: a few vectorised passes over the pixel pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Directions of :func:`steepest_neighbour`, in increasing flat-index order.
UP, LEFT, SELF, RIGHT, DOWN = range(5)


def steepest_neighbour(values: np.ndarray, lowest) -> np.ndarray:
    """Direction of the highest of each pixel and its 4 neighbours, exact and tie-free.

    The order is (value, flat index): of equal values the later pixel in raster order wins,
    so every chain of pointers strictly climbs. Comparisons only, no arithmetic: any dtype
    with a total order works (float32 heights, uint64 keys).

    Parameters
    ----------
    values : np.ndarray, shape (H, W)
        Pixels that must never be chosen hold ``lowest``.
    lowest : scalar of values.dtype
        Below every value that may be chosen (``-inf`` for heights, 0 for keys).

    Returns
    -------
    np.ndarray of int8, shape (H, W)
        :data:`UP`, :data:`LEFT`, :data:`SELF` (a summit), :data:`RIGHT` or :data:`DOWN`.
    """
    rows, cols = values.shape
    padded = np.full((rows + 2, cols + 2), lowest, values.dtype)
    padded[1:-1, 1:-1] = values
    views = {UP: padded[:-2, 1:-1], LEFT: padded[1:-1, :-2], SELF: values,
             RIGHT: padded[1:-1, 2:], DOWN: padded[2:, 1:-1]}
    best = np.maximum(views[UP], views[LEFT])
    for direction in (SELF, RIGHT, DOWN):
        np.maximum(best, views[direction], out=best)
    code = np.full(values.shape, UP, np.int8)
    for direction in (LEFT, SELF, RIGHT, DOWN):  # the later of equal values wins
        np.copyto(code, np.int8(direction), where=views[direction] == best)
    return code


def index_dtype(size: int) -> type:
    """int32 for indices below 2**31 (half the memory traffic of int64), else int64."""
    return np.int32 if size < 2**31 else np.int64


def ordered_bits(values: np.ndarray) -> np.ndarray:
    """uint32 with the order of float32 values (-0.0 must already be +0.0; -inf is lowest)."""
    bits = np.array(values, dtype=np.float32).view(np.int32)
    sign = bits >> 31  # -1 for negative values: flip their magnitude bits
    sign &= 0x7FFFFFFF
    bits ^= sign
    unsigned = bits.view(np.uint32)
    unsigned ^= np.uint32(2**31)
    return unsigned


def pointers_from(code: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Flat index each pixel points to, itself outside the mask.

    Parameters
    ----------
    code : np.ndarray of int8, shape (H, W)
        Directions from :func:`steepest_neighbour`.
    inside : np.ndarray of bool, shape (H * W,)
        The mask, flattened.

    Returns
    -------
    np.ndarray of int32 (int64 from 2**31 pixels), shape (H * W,)
    """
    cols = code.shape[1]
    dtype = index_dtype(code.size)
    step = np.array([-cols, -1, 0, 1, cols], dtype)
    pointer = np.arange(code.size, dtype=dtype)
    pointer[inside] += step[code.ravel()[inside]]
    return pointer


def follow(pointer: np.ndarray) -> np.ndarray:
    """Root of every element of an acyclic pointer forest (``p[root] == root``).

    Pointer jumping: about log2 of the longest chain rounds of ``p = p[p]`` (whole-array
    passes: cheaper than tracking the elements not yet at a root).

    Parameters
    ----------
    pointer : np.ndarray of int, shape (n,)

    Returns
    -------
    np.ndarray of the same dtype, shape (n,)
    """
    while True:
        jumped = pointer[pointer]
        if np.array_equal(jumped, pointer):
            return jumped
        pointer = jumped


def spanning_tree(n_nodes: int, a: np.ndarray, b: np.ndarray, weight: np.ndarray,
                  edges: np.ndarray | None = None, root: np.ndarray | None = None
                  ) -> np.ndarray:
    """Maximum spanning forest of a graph with nodes 0..n_nodes, by Borůvka rounds.

    Every component takes its heaviest edge (ties by edge number, a strict order, so no
    cycle forms); those edges join the forest and the components they link merge. Each round
    at least halves the components; the pixel pairs of a basin graph take about 8 rounds,
    most of the work in the first two. (weight, edge number) is one uint64 key, so a round
    is one ``np.maximum.at`` per edge end.

    Parameters
    ----------
    n_nodes : int
        Largest node id (node 0 may be unused).
    a, b : np.ndarray of int, shape (E,)
        End nodes of every edge (parallel edges allowed), E < 2**32.
    weight : np.ndarray of float32, shape (E,)
        No NaN, no -0.0.
    edges : np.ndarray of int, optional
        Only these edge numbers (default all).
    root : np.ndarray of bool, shape (n_nodes + 1,), optional
        Nodes merged beforehand into one component (as if linked by infinitely heavy edges):
        the forest then spans every node reachable from them with the best paths to them.

    Returns
    -------
    np.ndarray of int64
        Edge numbers of the forest.
    """
    dtype = index_dtype(n_nodes + 1)
    component = np.arange(n_nodes + 1, dtype=dtype)
    if root is not None and root.any():
        component[root] = np.flatnonzero(root)[0]
    if edges is None:
        edges = np.arange(a.size, dtype=np.int64)
    ends_a, ends_b = a[edges], b[edges]
    ca, cb = component[ends_a], component[ends_b]
    key = (ordered_bits(weight[edges]).astype(np.uint64) << np.uint64(32)) | np.arange(
        edges.size, dtype=np.uint64)
    low = np.uint64(2**32 - 1)
    forest = []
    while True:
        live = ca != cb
        if not live.all():
            key, ca, cb = key[live], ca[live], cb[live]
        if key.size == 0:
            break
        best = np.zeros(n_nodes + 1, np.uint64)
        np.maximum.at(best, ca, key)
        np.maximum.at(best, cb, key)
        movers = np.flatnonzero(best).astype(dtype)
        position = (best[movers] & low).astype(np.int64)
        end_a, end_b = component[ends_a[position]], component[ends_b[position]]
        other = np.where(end_a == movers, end_b, end_a)
        # two components that chose the same edge: only one of them points to the other
        keep = ~((best[other] == best[movers]) & (movers < other))
        forest.append(edges[position[keep]])
        target = np.arange(n_nodes + 1, dtype=dtype)
        target[movers[keep]] = other[keep]
        merged = follow(target)
        component = merged[component]
        ca, cb = merged[ca], merged[cb]
    return np.concatenate(forest) if forest else np.zeros(0, np.int64)


@dataclass(frozen=True)
class BasinGraph:
    """Steepest-ascent basins of a map inside a mask, their 4-adjacent pixel pairs and tree.

    Attributes
    ----------
    height : np.ndarray of float32, shape (H * W,)
        The map, flattened; ``-inf`` outside the mask (``-0.0`` made ``+0.0``).
    inside : np.ndarray of bool, shape (H * W,)
        The mask, flattened.
    shape : tuple of int
        (H, W).
    summit : np.ndarray of int32 (int64 from 2**31 pixels), shape (H * W,)
        Flat index of every pixel's summit (itself outside the mask).
    summits : np.ndarray of int32, shape (n,)
        Flat index of the summit of basin 1..n (raster order).
    basin : np.ndarray of int32, shape (H * W,)
        Basin id 1..n of every mask pixel, 0 outside.
    p, q : np.ndarray of int32, shape (E,)
        Flat indices of 4-adjacent mask pixels in different basins (q right of or below p).
    a, b : np.ndarray of int32, shape (E,)
        ``basin[p]``, ``basin[q]``.
    saddle : np.ndarray of float32, shape (E,)
        ``min(height[p], height[q])``.
    tree : np.ndarray of int64, shape (about n - 1,)
        Pair numbers forming the maximum spanning forest of the basins (weights ``saddle``).
    """

    height: np.ndarray
    inside: np.ndarray
    shape: tuple
    summit: np.ndarray
    summits: np.ndarray
    basin: np.ndarray
    p: np.ndarray
    q: np.ndarray
    a: np.ndarray
    b: np.ndarray
    saddle: np.ndarray
    tree: np.ndarray

    @property
    def n_basins(self) -> int:
        return int(self.summits.size)

    @property
    def peak(self) -> np.ndarray:
        """float32 (n + 1,): height of each basin's summit (index 0: -inf)."""
        return np.concatenate([[np.float32(-np.inf)], self.height[self.summits]])


def _adjacent_pairs(basin: np.ndarray, shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = shape
    pairs = []
    for step in (1, cols):
        first, second = basin[:-step], basin[step:]
        differ = (first != second) & (first > 0) & (second > 0)
        if step == 1:
            differ[cols - 1::cols] = False  # no pair across the end of a row
        p = np.flatnonzero(differ).astype(basin.dtype)
        pairs.append((p, p + step))
    return np.concatenate([p for p, _ in pairs]), np.concatenate([q for _, q in pairs])


def basin_graph(height: np.ndarray, mask: np.ndarray) -> BasinGraph:
    """Build the :class:`BasinGraph` of ``height`` inside ``mask``.

    Parameters
    ----------
    height : np.ndarray of float, shape (H, W)
    mask : np.ndarray of bool, shape (H, W)

    Returns
    -------
    BasinGraph
    """
    f = np.where(mask, height, -np.inf).astype(np.float32) + np.float32(0)
    inside = mask.ravel()
    code = steepest_neighbour(f, np.float32(-np.inf))
    summit = follow(pointers_from(code, inside))
    summits = np.flatnonzero(inside & (code.ravel() == SELF))
    dtype = index_dtype(f.size)
    summits = summits.astype(dtype)
    basin_of = np.zeros(f.size, dtype)
    basin_of[summits] = np.arange(1, summits.size + 1, dtype=dtype)
    basin = np.where(inside, basin_of[summit], 0).astype(dtype, copy=False)
    flat = f.ravel()
    p, q = _adjacent_pairs(basin, mask.shape)
    a, b = basin[p], basin[q]
    saddle = np.minimum(flat[p], flat[q])
    tree = spanning_tree(summits.size, a, b, saddle)
    return BasinGraph(height=flat, inside=inside, shape=mask.shape, summit=summit,
                      summits=summits, basin=basin, p=p, q=q, a=a, b=b, saddle=saddle,
                      tree=tree)
