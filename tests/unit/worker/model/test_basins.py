"""Tests of worker.model.basins: steepest-ascent basins, their pixel pairs and spanning trees."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from worker.model.basins import basin_graph, follow, ordered_bits, spanning_tree


@settings(deadline=None, max_examples=30)
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 24), cols=st.integers(1, 24),
       levels=st.sampled_from([3, 1000, 0]))
def test_basins_climb_to_local_maxima(seed, rows, cols, levels):
    rng = np.random.default_rng(seed)
    height = rng.random((rows, cols)).astype(np.float32)
    if levels:  # many exactly equal heights: plateaus
        height = np.round(height * levels).astype(np.float32)
    mask = rng.random((rows, cols)) < 0.8
    graph = basin_graph(height, mask)
    flat, inside = height.ravel(), mask.ravel()
    assert (graph.basin[~inside] == 0).all() and (graph.basin[inside] > 0).all()
    np.testing.assert_array_equal(graph.summit[graph.summit], graph.summit)
    assert (flat[graph.summit[inside]] >= flat[inside]).all()
    assert (graph.basin[graph.summits] == np.arange(1, graph.n_basins + 1)).all()
    # no summit has a higher 4-neighbour in the mask
    padded = np.full((rows + 2, cols + 2), -np.inf, np.float32)
    padded[1:-1, 1:-1] = np.where(mask, height, -np.inf)
    ys, xs = np.divmod(graph.summits, cols)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        assert (padded[ys + 1 + dy, xs + 1 + dx] <= flat[graph.summits]).all()
    # pairs: 4-adjacent, different basins, saddle = lower pixel
    assert np.isin(graph.q - graph.p, [1, cols]).all()
    assert (graph.a != graph.b).all()
    np.testing.assert_array_equal(graph.saddle, np.minimum(flat[graph.p], flat[graph.q]))


def _tree_weight_and_components(n, a, b, w, forest):
    """Weight of ``forest`` and the number of components of the whole graph."""
    links = coo_matrix((np.ones(a.size), (a, b)), shape=(n + 1, n + 1))
    components = connected_components(links, directed=False)[0]
    return float(w[forest].astype(np.float64).sum()), components


@settings(deadline=None, max_examples=40)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 60), m=st.integers(0, 200),
       ties=st.booleans())
def test_spanning_tree_is_a_maximum_spanning_forest(seed, n, m, ties):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(1, n + 1, (2, m))
    keep = a != b
    a, b = a[keep], b[keep]
    w = rng.random(a.size).astype(np.float32)
    if ties:
        w = np.round(w * 4).astype(np.float32) / 4
    forest = spanning_tree(n, a, b, w)
    weight, components = _tree_weight_and_components(n, a, b, w, forest)
    # a forest: n + 1 nodes (0 unused) in `components` trees
    assert forest.size == n + 1 - components
    assert connected_components(coo_matrix((np.ones(forest.size), (a[forest], b[forest])),
                                           shape=(n + 1, n + 1)), directed=False)[0] == components
    # of maximum weight: scipy's minimum spanning tree of (2 - w) over the heaviest parallel edge
    if a.size:
        heaviest = {}
        for x, y, z in zip(a, b, w):
            key = (min(x, y), max(x, y))
            heaviest[key] = max(heaviest.get(key, -1.0), float(z))
        rows, cols = zip(*heaviest)
        flipped = coo_matrix((2.0 - np.array(list(heaviest.values())), (rows, cols)),
                             shape=(n + 1, n + 1))
        mst = minimum_spanning_tree(flipped)
        assert abs(weight - (2.0 * mst.nnz - mst.sum())) < 1e-4


@settings(deadline=None, max_examples=30)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 40), m=st.integers(1, 120))
def test_rooted_tree_gives_best_bottlenecks_to_the_root(seed, n, m):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(1, n + 1, (2, m))
    keep = a != b
    a, b = a[keep], b[keep]
    w = rng.random(a.size).astype(np.float32)
    root = np.zeros(n + 1, bool)
    root[rng.integers(1, n + 1, 2)] = True
    forest = spanning_tree(n, a, b, w, root=root)
    # best bottleneck to the root over the whole graph, by relaxation
    best = np.where(root, np.inf, -np.inf)
    for _ in range(n + 1):
        grown = best.copy()
        np.maximum.at(grown, b, np.minimum(best[a], w))
        np.maximum.at(grown, a, np.minimum(best[b], w))
        best = grown
    # the same over the forest alone
    fa, fb, fw = a[forest], b[forest], w[forest]
    tree_best = np.where(root, np.inf, -np.inf)
    for _ in range(n + 1):
        grown = tree_best.copy()
        np.maximum.at(grown, fb, np.minimum(tree_best[fa], fw))
        np.maximum.at(grown, fa, np.minimum(tree_best[fb], fw))
        tree_best = grown
    np.testing.assert_array_equal(tree_best, best)


def test_ordered_bits_orders_like_the_floats():
    values = np.array([-np.inf, -3.5, -1e-30, 0.0, 1e-30, 0.5, 2.0, np.inf], np.float32)
    keys = ordered_bits(values)
    assert keys.dtype == np.uint32 and (np.diff(keys.astype(np.int64)) > 0).all()
    shuffled = np.random.default_rng(0).permutation(values)
    np.testing.assert_array_equal(np.sort(shuffled), shuffled[np.argsort(ordered_bits(shuffled))])


def test_follow_finds_roots():
    pointer = np.array([0, 0, 1, 2, 4, 4, 5])
    np.testing.assert_array_equal(follow(pointer), [0, 0, 0, 0, 4, 4, 4])
