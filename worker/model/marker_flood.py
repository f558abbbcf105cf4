"""Marker watershed by flooding, ``skimage.segmentation.watershed(-height, markers, mask)``.

Pure NumPy / SciPy: no priority queue, no Python loop over pixels or basins.

A priority flood labels a pixel with the label of the neighbour that was flooded (popped)
first, and neighbours are popped in the order of their *flood level*: the best, over paths
from a marker, of the lowest height on the path. So the flood is rebuilt in two steps, on
the basin graph of :mod:`worker.model.basins`:

1. flood levels. Inside a 4-basin the flood level is ``min(f, b)``, with ``b`` the basin's
   level: infinite for a basin whose summit is a marker pixel, else the best bottleneck of a
   path to a marked basin. Best paths lie in the maximum spanning tree with all marked
   basins merged into one root, which is a subgraph of the basins' own spanning tree plus
   that root: Borůvka rounds over it, a breadth-first pass to orient it and pointer doubling
   give every basin its ``b`` and its depth (tree edges to the root);
2. labels. Every mask pixel points to the 4-neighbour (or itself) of highest
   (flood level, -depth of its basin, flat index): the neighbour that floods it. The highest
   pixel of an unmarked basin points instead to the pixel that floods the basin first: of
   the pixel pairs through which the basin is entered at level ``b``, the one with the
   highest outside flood level. Every pointer climbs in (flood level, -depth), so pointer
   jumping ends, at a marked basin's summit (its marker's id) or in an unreached basin (0).

The only differences with scikit-image's heap are tie-breaks between pixels at the same flood
level: the heap takes the older entry, this flood the basin nearer a marker, then the higher
flat index. Noisy maps (no two pixels at exactly the same height) give identical label
images; exact or blurred targets of symmetric cells give equal heights, and a pixel reached
from two markers through the same lowest pixel may go either way (well under 1% of pixels).
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order

from worker.model.basins import (SELF, BasinGraph, follow, ordered_bits, pointers_from,
                                 spanning_tree, steepest_neighbour)

_MAX_DEPTH = np.uint64(2**32 - 1)


def _levels_and_depths(graph: BasinGraph, tree: np.ndarray, marked: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orient the rooted tree; flood level and depth of every basin.

    Parameters
    ----------
    graph : BasinGraph
    tree : np.ndarray of int64
        Pair numbers of the maximum spanning forest with the marked basins merged.
    marked : np.ndarray of bool, shape (n + 1,)

    Returns
    -------
    level : np.ndarray of float32, shape (n + 1,)
        ``b``: +inf for marked basins, -inf for basins no marker reaches.
    depth : np.ndarray of int64, shape (n + 1,)
        Tree edges to the root (0 for marked basins; 2**32 - 1 when unreached).
    reached : np.ndarray of bool, shape (n + 1,)
    """
    a, b, saddle = graph.a, graph.b, graph.saddle
    size = graph.n_basins + 1
    seeds = np.flatnonzero(marked)
    rows = np.concatenate([a[tree], np.zeros(seeds.size, np.int64)])
    cols = np.concatenate([b[tree], seeds])
    links = coo_matrix((np.ones(rows.size, np.int8), (rows, cols)), shape=(size, size)).tocsr()
    order, predecessor = breadth_first_order(links, 0, directed=False,
                                             return_predecessors=True)
    reached = np.zeros(size, bool)
    reached[order] = True
    child = np.where(predecessor[a[tree]] == b[tree], a[tree], b[tree])
    parent_edge = np.full(size, -1, np.int64)
    parent_edge[child] = tree
    hanging = reached & ~marked
    hanging[0] = False

    level = np.full(size, np.inf, np.float32)
    level[hanging] = saddle[parent_edge[hanging]]
    depth = np.zeros(size, np.int64)
    depth[hanging] = 1
    up = np.where(hanging, predecessor, 0).astype(np.int64)
    while True:  # pointer doubling: minimum saddle and number of edges up to the root
        active = up != 0
        if not active.any():
            break
        level = np.where(active, np.minimum(level, level[up]), level)
        depth = np.where(active, depth + depth[up], depth)
        up = np.where(active, up[up], up)
    level[~reached] = -np.inf
    depth[~reached] = int(_MAX_DEPTH)
    return level, depth, reached


def _entry_pixels(graph: BasinGraph, flood: np.ndarray, level: np.ndarray, depth: np.ndarray,
                  hanging: np.ndarray) -> np.ndarray:
    """For every unmarked reached basin, the outside pixel that floods it first.

    Candidates are the 4-adjacent pairs (outside o, inside i) with
    ``min(flood[o], f[i]) == level[basin]`` whose outside pixel is flooded before the basin
    (higher flood level, or the same level in a basin nearer the root: the tree edge to the
    parent always qualifies); of those, the highest ``flood[o]``, then the highest index.

    Returns
    -------
    np.ndarray of int64, shape (n + 1,)
        Flat pixel index, -1 where not applicable.
    """
    # min(flood[o], f[i]) <= saddle: only pairs at or above the inside basin's level qualify
    level_a, level_b = level[graph.a], level[graph.b]
    near = np.flatnonzero(graph.saddle >= np.minimum(level_a, level_b))
    p, q, a, b = graph.p[near], graph.q[near], graph.a[near], graph.b[near]
    flood_p, flood_q = flood[p], flood[q]
    height_p, height_q = graph.height[p], graph.height[q]
    best = np.full(level.size, -np.inf, np.float32)
    picks = []
    for outside, basin_o, flood_o, basin_i, height_i, target in (
            (p, a, flood_p, b, height_q, level_b[near]),
            (q, b, flood_q, a, height_p, level_a[near])):
        ok = hanging[basin_i] & (np.minimum(flood_o, height_i) == target)
        ok &= (flood_o > target) | (depth[basin_o] < depth[basin_i])
        picks.append((outside[ok], basin_i[ok], flood_o[ok]))
        np.maximum.at(best, basin_i[ok], flood_o[ok])
    entry = np.full(level.size, -1, np.int64)
    for outside, basin_i, flood_o in picks:
        top = flood_o == best[basin_i]
        np.maximum.at(entry, basin_i[top], outside[top])
    return entry


def flood_from_markers(graph: BasinGraph, markers: np.ndarray) -> np.ndarray:
    """``watershed(-height, markers, mask=mask)`` (4-connected), up to tie-breaks.

    Parameters
    ----------
    graph : BasinGraph
        The map (higher floods first) and mask, from
        :func:`worker.model.basins.basin_graph`.
    markers : np.ndarray of int32, shape (H, W)
        Marker ids > 0 inside the mask. Every basin summit that is a marker pixel makes its
        basin flood from that marker, so markers must be closed under climbing: from a
        marker pixel, the steepest ascent stays in the same marker (true of h-maxima and of
        regional maxima, with their plateaus).

    Returns
    -------
    np.ndarray of int32, shape (H, W)
        Id of the marker that floods each mask pixel, 0 outside the mask and where no marker
        floods.
    """
    f, basin, n_basins = graph.height, graph.basin, graph.n_basins
    label = np.zeros(n_basins + 1, np.int32)
    label[1:] = markers.ravel()[graph.summits]
    marked = label > 0
    if not marked.any():
        return np.zeros(graph.shape, np.int32)

    tree = spanning_tree(n_basins, graph.a, graph.b, graph.saddle, edges=graph.tree, root=marked)
    level, depth, reached = _levels_and_depths(graph, tree, marked)
    hanging = reached & ~marked
    hanging[0] = False

    flood = np.minimum(f, level[basin])  # -inf outside the mask and in unreached basins
    nearness = (_MAX_DEPTH - depth.astype(np.uint64))[basin]
    # outside the mask and in unreached basins flood is -inf: below every pixel that moves
    key = (ordered_bits(flood).astype(np.uint64) << np.uint64(32)) | nearness
    code = steepest_neighbour(key.reshape(graph.shape), np.uint64(0))
    # pixels of marked (and unreached) basins are ends: their basin's label is theirs
    moving = hanging[basin]
    pointer = pointers_from(code, moving)
    jumps = np.flatnonzero(moving & (code.ravel() == SELF))
    pointer[jumps] = _entry_pixels(graph, flood, level, depth, hanging)[basin[jumps]]
    out = label[basin[follow(pointer)]]
    return out.reshape(graph.shape).astype(np.int32, copy=False)
