"""Held-out synthetic multiplexed tissue: a second, independent generator for generalisation checks.

The generalist model trains on ``backend.core.synthetic``; this module shares no code or drawing
approach with it, so scores on its images say how far the model generalises beyond the look of
its own training data. Each image has exact ground truth: whole-cell ids ``1..n`` (each one
4-connected object) and nuclei carrying their cell's id, strictly inside it (every 4-neighbour of
a nucleus pixel belongs to the same cell); some cells have no nucleus (sectioned off).

Kinds (channel 0 nuclear stain, channel 1 membrane / whole-cell stain):

- ``polygonal``: epithelium as a warped Voronoi tessellation of Poisson-disc seeds with lumens cut
  out and spindle-shaped stromal cells in the gaps; membrane stain along cell borders with a
  per-cell, uneven thickness; nuclei off-centre ellipses, Gaussian-blob bright, dark nucleoli.
- ``cytoplasmic``: tumour-like nests of rounded cells (weighted tessellation of packed discs with
  wobbly outlines); a pan-cytokeratin-like filamentous stain fills the cytoplasm and spares the
  nucleus; some cells are marker-negative.
- ``clustered``: dense clusters of small round lymphocytes (8-12 px, bright ring membrane, dense
  nuclei filling the cell) over sparse large irregular cells with pale kidney-ish nuclei.
- ``nuclear_only`` (one channel): cultured cells under DAPI, large varied nuclei from well
  separated to touching, G1/G2 brightness, a few condensed mitotic nuclei. Its whole-cell layer is
  the unstained cell territory around each nucleus (the CLI writes only the nuclei).

Optics and camera for every kind: Gaussian PSF with a weak wide halo, out-of-focus haze,
autofluorescent background, vignetting, Poisson shot noise times gain, Gaussian read noise and
offset, 16-bit counts.

Usage: ``python bench/heldout_tissue.py OUT.npz [--n 8] [--size 512] [--kind mixed] [--seed 0]``
writes ``X`` (N, H, W, C) float32 raw counts, ``y`` (N, H, W, 2) int32 (whole_cell, nuclear) or,
when every image is ``nuclear_only``, ``y`` (N, H, W) int32 nuclei, and ``kinds`` (N,) str; then
prints one JSON line. ``mixed`` cycles over the multichannel kinds.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from worker.model.transforms import cell_border  # labels only; no drawing code is shared

KINDS = ("polygonal", "cytoplasmic", "clustered", "nuclear_only")
MULTICHANNEL_KINDS = ("polygonal", "cytoplasmic", "clustered")
MIN_CELL_AREA = 15  # px; TissueNet QC drops smaller cells, so the ground truth survives QC
MIN_NUCLEUS_AREA = 5  # px
_CROSS = ndimage.generate_binary_structure(2, 1)


def heldout_tissue(height: int, width: int, *, seed: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """One held-out synthetic tissue image with exact instance ground truth.

    Parameters
    ----------
    height, width : int
        Image size in px, each at least 16.
    seed : int
        Seed of everything drawn; the same seed and kind give the same arrays.
    kind : str
        One of ``KINDS``.

    Returns
    -------
    image : np.ndarray, uint16 (C, H, W)
        Raw camera counts; channel 0 nuclear stain, channel 1 membrane / whole-cell stain
        (C = 1 for ``nuclear_only``).
    labels : np.ndarray, int32 (2, H, W)
        ``labels[0]`` whole-cell ids 1..n (0 background), each one 4-connected object;
        ``labels[1]`` nuclei carrying their cell's id, strictly inside that cell.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    if height < 16 or width < 16:
        raise ValueError(f"image must be at least 16x16 px, got {height}x{width}")
    rng = np.random.default_rng(seed)
    shape = (int(height), int(width))
    draw = {"polygonal": _polygonal, "cytoplasmic": _cytoplasmic,
            "clustered": _clustered, "nuclear_only": _nuclear_only}[kind]
    density, cells, nuclei = draw(rng, shape)
    image = _acquire(rng, density, nuclear_only=kind == "nuclear_only")
    return image, np.stack([cells, nuclei]).astype(np.int32)


# ----------------------------------------------------------------------------- kinds (geometry + stains)
# Each ``_<kind>(rng, shape)`` returns the fluorophore density float32 (C, H, W) (arbitrary units,
# objects about 1), whole cells int32 (H, W) and nuclei int32 (H, W), already through _finalize.

def _polygonal(rng, shape):
    """Epithelium: warped Voronoi of Poisson-disc seeds, lumens cut out, stromal spindle cells."""
    d = rng.uniform(14, 30)
    seeds = _poisson_disc(rng, shape, spacing=0.9 * d)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    amp = rng.uniform(0.06, 0.16) * d
    warped = np.stack([(yy + amp * _smooth_field(rng, shape, 1.3 * d)).ravel(),
                       (xx + amp * _smooth_field(rng, shape, 1.3 * d)).ravel()], 1)
    owner = cKDTree(seeds).query(warped, workers=1)[1].reshape(shape).astype(np.int32) + 1
    lumen_field = _smooth_field(rng, shape, 4.5 * d)
    tissue = lumen_field < np.quantile(lumen_field, 1 - rng.uniform(0.12, 0.32))
    cells = np.where(tissue, owner, 0)
    n_epi = len(seeds)
    n_spindle = int(rng.poisson((~tissue).sum() / (d * d * 3.0)))
    next_id = n_epi + 1
    for _ in range(n_spindle):  # fibroblasts: thin ellipses drawn on stroma only
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        a, b = rng.uniform(0.5, 0.9) * d, rng.uniform(0.12, 0.22) * d + 2
        spot = _ellipse(shape, cy, cx, a, b, rng.uniform(0, np.pi)) & (cells == 0)
        cells[spot] = next_id
        next_id += 1
    count = next_id
    frac = np.full(count, rng.uniform(0.5, 0.65))
    frac[n_epi + 1:] = 0.6
    nuclei = _place_nuclei(rng, cells, frac, offset=0.35, p_missing=0.08)
    cells, nuclei, kept = _finalize(cells, nuclei)
    n = len(kept)
    brightness = rng.lognormal(0, 0.3, n + 1)
    thickness = rng.uniform(0.6, 2.4, n + 1)
    membrane = _border_stain(rng, cells, thickness, brightness, interior=rng.uniform(0.03, 0.12))
    membrane += 0.06 * _fibres(rng, shape) * (cells == 0)  # stromal autofluorescent matrix
    nuclear = _nuclear_stain(rng, nuclei, rng.lognormal(0, 0.25, n + 1), nucleoli=1.5)
    return np.stack([nuclear, membrane]), cells, nuclei


def _cytoplasmic(rng, shape):
    """Nests of rounded cells with a filamentous cytoplasmic marker sparing the nucleus."""
    d = rng.uniform(18, 36)
    nest_field = _smooth_field(rng, shape, 4 * d)
    nests = nest_field > np.quantile(nest_field, rng.uniform(0.2, 0.45))
    seeds = _poisson_disc(rng, shape, spacing=0.78 * d)
    seeds = seeds[nests[seeds[:, 0].astype(int), seeds[:, 1].astype(int)]]
    radii = 0.5 * d * rng.lognormal(0.08, 0.12, len(seeds))
    owner, score = _weighted_tessellation(rng, shape, seeds, radii, wobble=0.12)
    cells = np.where(score < 1.0, owner, 0)
    nuclei = _place_nuclei(rng, cells, np.full(len(seeds) + 1, rng.uniform(0.42, 0.55)),
                           offset=0.15, p_missing=0.1)
    cells, nuclei, kept = _finalize(cells, nuclei)
    n = len(kept)
    brightness = rng.lognormal(0, 0.3, n + 1) * np.where(rng.random(n + 1) < 0.15, 0.08, 1.0)
    fib = _fibres(rng, shape)
    edge = _border_stain(rng, cells, np.full(n + 1, 1.2), np.ones(n + 1), interior=0.0)
    marker = brightness[cells] * (0.45 + 0.55 * fib) * (1 + 0.35 * edge) * (cells > 0)
    marker *= np.where(nuclei > 0, 0.1, 1.0)
    nuclear = _nuclear_stain(rng, nuclei, rng.lognormal(0, 0.3, n + 1), nucleoli=1.0)
    return np.stack([nuclear, marker.astype(np.float32)]), cells, nuclei


def _clustered(rng, shape):
    """Dense clusters of small lymphocytes over sparse large irregular cells."""
    big_d, small_d = rng.uniform(26, 40), rng.uniform(8, 12)
    area_scale = shape[0] * shape[1] / 512.0**2
    big = _poisson_disc(rng, shape, spacing=big_d * rng.uniform(1.6, 2.4))
    big = big[rng.random(len(big)) < 0.6]
    big_r = 0.5 * big_d * rng.lognormal(0, 0.12, len(big))
    candidates = []
    for _ in range(max(1, rng.poisson(rng.uniform(2, 5) * area_scale))):
        centre = rng.uniform(0, 1, 2) * shape
        sigma = rng.uniform(15, 45)
        count = int(rng.uniform(3.0, 5.0) * (2 * sigma / small_d) ** 2)
        candidates.append(centre + sigma * rng.standard_normal((count, 2)))
    candidates.append(rng.uniform(0, 1, (int(40 * area_scale), 2)) * shape)  # scattered
    candidates = np.concatenate(candidates)
    small_r = 0.5 * small_d * rng.lognormal(0, 0.07, len(candidates))
    centres, radii, _ = _pack_discs(shape, big, big_r, candidates, small_r, separation=0.72)
    n_big = len(big)
    wobble = np.where(np.arange(len(centres)) < n_big, 0.2, 0.04)
    owner, score = _weighted_tessellation(rng, shape, centres, radii, wobble=wobble)
    cells = np.where(score < 1.0, owner, 0)
    is_big = np.concatenate([[False], np.arange(len(centres)) < n_big])
    frac = np.where(is_big, rng.uniform(0.4, 0.55), 0.82)
    nuclei = _place_nuclei(rng, cells, frac, offset=np.where(is_big, 0.35, 0.08), p_missing=0.05)
    cells, nuclei, kept = _finalize(cells, nuclei)
    n = len(kept)
    big_new = np.concatenate([[False], is_big[kept]])
    brightness = rng.lognormal(0, 0.25, n + 1) * np.where(big_new, 0.35, 1.0)
    thickness = np.where(big_new, rng.uniform(1.2, 2.4), rng.uniform(0.7, 1.2))
    membrane = _border_stain(rng, cells, thickness, brightness, interior=0.12)
    nuc_b = rng.lognormal(0, 0.2, n + 1) * np.where(big_new, 0.6, 1.3)
    nuclear = _nuclear_stain(rng, nuclei, nuc_b, nucleoli=np.where(big_new, 2.0, 0.0))
    return np.stack([nuclear, membrane]), cells, nuclei


def _nuclear_only(rng, shape):
    """Cultured cells under DAPI: large varied nuclei, sparse to touching; territories as cells."""
    d = rng.uniform(18, 42)
    separation = rng.uniform(0.85, 1.7)
    area = shape[0] * shape[1]
    count = int(1.3 * area / (math.pi * (0.5 * d * separation) ** 2)) + 1
    candidates = rng.uniform(0, 1, (count, 2)) * shape
    radii = 0.5 * d * rng.lognormal(0, 0.2, count)
    mitotic = rng.random(count) < 0.04
    radii[mitotic] *= 0.6
    centres, radii, taken = _pack_discs(shape, np.zeros((0, 2)), [], candidates, radii, separation)
    mitotic = mitotic[taken]
    wobble = np.where(mitotic, 0.25, rng.uniform(0.04, 0.12))
    owner, score = _weighted_tessellation(rng, shape, centres, radii, wobble=wobble, stretch=0.3)
    cells = np.where(score < rng.uniform(1.6, 2.1), owner, 0)
    nuclei = np.where(score < 1.0, owner, 0)
    cells, nuclei, kept = _finalize(cells, nuclei)
    n = len(kept)
    mitotic_new = np.concatenate([[False], mitotic[kept - 1]])
    brightness = rng.lognormal(0, 0.12, n + 1) * np.where(rng.random(n + 1) < 0.3, 1.8, 1.0)
    brightness[mitotic_new] *= 2.5
    nuclear = _nuclear_stain(rng, nuclei, brightness, nucleoli=np.where(mitotic_new, 0.0, 2.5))
    return nuclear[None], cells, nuclei


# ----------------------------------------------------------------------------- geometry

def _poisson_disc(rng, shape, spacing: float, tries: int = 20) -> np.ndarray:
    """Bridson Poisson-disc sample of a (H, W) rectangle; float64 (n, 2) (y, x), pairwise >= spacing."""
    h, w = shape
    size = spacing / math.sqrt(2)
    gh, gw = int(h / size) + 1, int(w / size) + 1
    grid = -np.ones((gh, gw), np.int64)
    points = [(rng.uniform(0, h), rng.uniform(0, w))]
    grid[int(points[0][0] / size), int(points[0][1] / size)] = 0
    active = [0]
    while active:
        i = active[int(rng.integers(len(active)))]
        py, px = points[i]
        radius = rng.uniform(spacing, 2 * spacing, tries)
        angle = rng.uniform(0, 2 * np.pi, tries)
        placed = False
        for qy, qx in zip(py + radius * np.sin(angle), px + radius * np.cos(angle)):
            if not (0 <= qy < h and 0 <= qx < w):
                continue
            gy, gx = int(qy / size), int(qx / size)
            near = grid[max(gy - 2, 0): gy + 3, max(gx - 2, 0): gx + 3]
            if any((points[j][0] - qy) ** 2 + (points[j][1] - qx) ** 2 < spacing**2 for j in near[near >= 0]):
                continue
            grid[gy, gx] = len(points)
            active.append(len(points))
            points.append((qy, qx))
            placed = True
            break
        if not placed:
            active.remove(i)
    return np.asarray(points, np.float64)


def _pack_discs(shape, fixed, fixed_r, candidates, cand_r, separation: float):
    """Greedy packing: keep the ``fixed`` discs, then each in-bounds candidate (in order) whose
    centre is at least ``separation * (r_i + r_j)`` from every kept one.

    Returns centres float64 (n, 2) (y, x), radii float64 (n,), and ``taken`` int64: the index
    into ``candidates`` of each kept candidate (they follow the ``len(fixed)`` fixed discs).
    """
    centres, radii = [tuple(c) for c in fixed], list(fixed_r)
    reach = separation * 2 * max([*fixed_r, *cand_r, 1.0])
    buckets: dict[tuple[int, int], list[int]] = {}
    for k, (cy, cx) in enumerate(centres):
        buckets.setdefault((int(cy // reach), int(cx // reach)), []).append(k)
    taken = []
    for index, ((cy, cx), r) in enumerate(zip(candidates, cand_r)):
        if not (0 <= cy < shape[0] and 0 <= cx < shape[1]):
            continue
        gy, gx = int(cy // reach), int(cx // reach)
        near = [k for by in (gy - 1, gy, gy + 1) for bx in (gx - 1, gx, gx + 1)
                for k in buckets.get((by, bx), ())]
        if any((centres[k][0] - cy) ** 2 + (centres[k][1] - cx) ** 2 < (separation * (r + radii[k])) ** 2
               for k in near):
            continue
        buckets.setdefault((gy, gx), []).append(len(centres))
        centres.append((cy, cx))
        radii.append(r)
        taken.append(index)
    return (np.asarray(centres, np.float64).reshape(-1, 2), np.asarray(radii, np.float64),
            np.asarray(taken, np.int64))


def _weighted_tessellation(rng, shape, centres, radii, wobble, stretch: float = 0.0):
    """Each pixel to the centre minimising ``dist / (r_i * s_i(angle))`` among its 12 nearest.

    ``s_i`` is 1 plus random harmonics 2..4 of amplitude ``wobble`` (scalar or per centre), plus an
    elongation up to ``stretch``. Returns owner int32 (H, W) (1-based centre index) and the minimum
    score float32 (H, W): ``score < 1`` is inside the centre's own outline.
    """
    n = len(centres)
    if n == 0:
        return np.zeros(shape, np.int32), np.full(shape, np.inf, np.float32)
    wobble = np.broadcast_to(np.asarray(wobble, np.float64), (n,))
    amp = wobble[:, None] * rng.uniform(0.3, 1.0, (n, 3)) / np.array([1.0, 1.5, 2.0])
    amp[:, 0] += stretch * rng.uniform(0, 1, n)
    phase = rng.uniform(0, 2 * np.pi, (n, 3))
    tree = cKDTree(centres)
    k = min(12, n)
    owner = np.zeros(shape, np.int32)
    score = np.zeros(shape, np.float32)
    xs = np.arange(shape[1], dtype=np.float64)
    for top in range(0, shape[0], 64):
        ys = np.arange(top, min(top + 64, shape[0]), dtype=np.float64)
        pts = np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
        idx = tree.query(pts, k=k)[1].reshape(len(pts), k)
        dy, dx = pts[:, None, 0] - centres[idx, 0], pts[:, None, 1] - centres[idx, 1]
        theta = np.arctan2(dy, dx)
        s = 1.0 + sum(amp[idx, m] * np.cos((m + 2) * theta - phase[idx, m]) for m in range(3))
        value = np.hypot(dy, dx) / (radii[idx] * np.maximum(s, 0.4))
        best = value.argmin(1)
        rows = slice(top, top + len(ys))
        owner[rows] = (idx[np.arange(len(pts)), best] + 1).reshape(len(ys), -1)
        score[rows] = value[np.arange(len(pts)), best].reshape(len(ys), -1)
    return owner, score


def _ellipse(shape, cy, cx, a, b, angle, window=None):
    """Filled ellipse, bool (H, W) (or over ``window`` = (y0, x0, h, w) when given)."""
    y0, x0, h, w = window if window is not None else (0, 0, *shape)
    yy, xx = np.mgrid[y0: y0 + h, x0: x0 + w]
    u = (yy - cy) * math.sin(angle) + (xx - cx) * math.cos(angle)
    v = (yy - cy) * math.cos(angle) - (xx - cx) * math.sin(angle)
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def _place_nuclei(rng, cells, frac, offset, p_missing: float) -> np.ndarray:
    """Off-centre elliptical nuclei inside cells, oriented like the cell when it is elongated.

    ``frac`` (per cell id, float (n+1,)) scales the cell's inertia ellipse to the nucleus;
    ``offset`` (scalar or per id) shifts it by that fraction of the cell's minor semi-axis.
    Returns nuclei int32 (H, W) carrying cell ids (``_finalize`` trims them inside the cells).
    """
    nuclei = np.zeros(cells.shape, np.int32)
    offset = np.broadcast_to(np.asarray(offset, np.float64), frac.shape)
    for cid, box in enumerate(ndimage.find_objects(cells), 1):
        if box is None or rng.random() < p_missing:
            continue
        mask = cells[box] == cid
        ys, xs = np.nonzero(mask)
        if len(ys) < MIN_CELL_AREA:
            continue
        evals, evecs = np.linalg.eigh(np.cov(np.stack([ys, xs])) + 1e-6 * np.eye(2))
        minor, major = 2 * np.sqrt(np.maximum(evals, 0.25))
        if major / minor > 1.4:
            angle = math.atan2(evecs[0, 1], evecs[1, 1])  # major axis (y, x) -> angle from x
            a, b = frac[cid] * major, frac[cid] * minor * rng.uniform(0.85, 1.05)
        else:
            angle = rng.uniform(0, np.pi)
            a = frac[cid] * math.sqrt(major * minor) * rng.uniform(0.95, 1.12)
            b = a * rng.uniform(0.65, 0.95)
        shift = offset[cid] * minor * rng.uniform(0, 1)
        turn = rng.uniform(0, 2 * np.pi)
        cy, cx = ys.mean() + shift * math.sin(turn), xs.mean() + shift * math.cos(turn)
        window = (box[0].start, box[1].start, mask.shape[0], mask.shape[1])
        spot = _ellipse(cells.shape, cy + box[0].start, cx + box[1].start, max(a, 1.2), max(b, 1.0),
                        angle, window) & mask
        nuclei[box][spot] = cid
    return nuclei


def _finalize(cells, nuclei):
    """Exact ground truth: largest 4-connected part of each cell (>= MIN_CELL_AREA px), ids 1..n in
    order; nucleus cut to the cell's 4-erosion, largest 4-connected part, >= MIN_NUCLEUS_AREA px.

    Returns cells int32 (H, W), nuclei int32 (H, W), kept int64 (n,): old id of each new id.
    """
    out_cells = np.zeros(cells.shape, np.int32)
    out_nuclei = np.zeros(cells.shape, np.int32)
    kept = []
    h, w = cells.shape
    for old, box in enumerate(ndimage.find_objects(cells), 1):
        if box is None:
            continue
        box = (slice(max(box[0].start - 1, 0), min(box[0].stop + 1, h)),
               slice(max(box[1].start - 1, 0), min(box[1].stop + 1, w)))
        cell = _largest_part(cells[box] == old)
        if cell.sum() < MIN_CELL_AREA:
            continue
        kept.append(old)
        new = len(kept)
        out_cells[box][cell] = new
        nucleus = _largest_part((nuclei[box] == old) & ndimage.binary_erosion(cell, _CROSS))
        if nucleus.sum() >= MIN_NUCLEUS_AREA:
            out_nuclei[box][nucleus] = new
    return out_cells, out_nuclei, np.asarray(kept, np.int64)


def _largest_part(mask):
    """Largest 4-connected component of a bool mask, bool (same shape); all False when empty."""
    parts, count = ndimage.label(mask, _CROSS)
    if count <= 1:
        return parts > 0
    return parts == 1 + int(np.argmax(np.bincount(parts.ravel())[1:]))


# ----------------------------------------------------------------------------- stains

def _smooth_field(rng, shape, scale: float) -> np.ndarray:
    """Random field with features about ``scale`` px, zero mean, unit std; float32 (H, W)."""
    scale = max(float(scale), 2.0)
    coarse = rng.standard_normal((int(shape[0] / scale) + 4, int(shape[1] / scale) + 4))
    field = ndimage.zoom(coarse, scale, order=3)[: shape[0], : shape[1]].astype(np.float32)
    return (field - field.mean()) / max(float(field.std()), 1e-6)


def _fibres(rng, shape) -> np.ndarray:
    """Filament-like texture in [0, 1], float32 (H, W): two orthogonal anisotropic noises."""
    along = np.abs(ndimage.gaussian_filter(rng.standard_normal(shape), (0.7, 3.0)))
    across = np.abs(ndimage.gaussian_filter(rng.standard_normal(shape), (3.0, 0.7)))
    mesh = (along + across).astype(np.float32)
    return np.clip(mesh / (np.quantile(mesh, 0.98) + 1e-6), 0, 1)


def _border_stain(rng, cells, thickness, brightness, interior: float) -> np.ndarray:
    """Membrane stain: a ring under each cell's border of per-cell ``thickness`` (px, (n+1,)),
    uneven along the border, plus ``interior`` times brightness inside; float32 (H, W)."""
    depth = ndimage.distance_transform_edt(~cell_border(cells)).astype(np.float32)
    width = thickness[cells] * np.clip(1 + 0.35 * _smooth_field(rng, cells.shape, 6), 0.4, 2.0)
    uneven = np.clip(0.65 + 0.35 * _smooth_field(rng, cells.shape, 4), 0.15, 1.4)
    ring = np.exp(-((depth / width) ** 2)) * uneven
    return (brightness[cells] * (ring + interior) * (cells > 0)).astype(np.float32)


def _nuclear_stain(rng, nuclei, brightness, nucleoli) -> np.ndarray:
    """DNA stain: per-nucleus Gaussian-blob profile (bright core, dimmer rim), chromatin grain and
    dark nucleoli (``nucleoli`` expected per nucleus, scalar or per id); float32 (H, W)."""
    inside = nuclei > 0
    if not inside.any():
        return np.zeros(nuclei.shape, np.float32)
    depth = ndimage.distance_transform_edt(inside).astype(np.float32)
    ids = np.arange(len(brightness))
    deepest = np.asarray(ndimage.maximum(depth, nuclei, ids), np.float32)
    relative = depth / np.maximum(deepest[nuclei], 1.0)
    profile = 0.4 + 0.6 * np.exp(-((1 - relative) ** 2) / 0.3)
    grain = ndimage.gaussian_filter(rng.standard_normal(nuclei.shape), 0.8)
    grain = 1 + 0.22 * grain / grain.std()
    areas = np.bincount(nuclei.ravel(), minlength=len(brightness)).astype(np.float64)
    rate = np.broadcast_to(np.asarray(nucleoli, np.float64), areas.shape) / np.maximum(areas * 0.6, 1)
    seeds = (rng.random(nuclei.shape) < rate[nuclei]) & (relative > 0.45) & inside
    dark = np.clip(ndimage.gaussian_filter(seeds.astype(np.float32), 1.3) * 2 * np.pi * 1.3**2, 0, 1)
    stain = brightness[nuclei] * profile * np.clip(grain, 0.3, 1.8) * (1 - 0.55 * dark)
    return (stain * inside).astype(np.float32)


# ----------------------------------------------------------------------------- optics and camera

def _acquire(rng, density, *, nuclear_only: bool) -> np.ndarray:
    """Fluorophore density (C, H, W) float -> camera counts uint16 (C, H, W).

    PSF: Gaussian (sigma 0.7-2 px) with a 12 % halo at 4 sigma, out-of-focus haze; background:
    smooth autofluorescence; vignetting: radial fall-off up to 45 %; camera: Poisson photons x
    gain + Gaussian read noise + offset.
    """
    channels, h, w = density.shape
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    cy, cx = h * rng.uniform(0.3, 0.7), w * rng.uniform(0.3, 0.7)
    r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / (0.5 * h**2 + 0.5 * w**2)
    vignette = 1 - rng.uniform(0.05, 0.45) * r2
    sigma = rng.uniform(0.7, 2.0)
    gain, read, offset = rng.uniform(1, 3), rng.uniform(1.5, 8), rng.uniform(20, 200)
    image = np.empty(density.shape, np.uint16)
    for c in range(channels):
        psf_sigma = sigma * rng.uniform(0.9, 1.15)
        focused = 0.88 * ndimage.gaussian_filter(density[c], psf_sigma)
        focused += 0.12 * ndimage.gaussian_filter(density[c], 4 * psf_sigma)
        haze = rng.uniform(0.0, 0.06 if nuclear_only else 0.25) * ndimage.gaussian_filter(density[c], 12)
        autofluo = rng.uniform(0.01, 0.12) * np.clip(1 + 0.5 * _smooth_field(rng, (h, w), 60), 0.1, None)
        photons = rng.lognormal(math.log(300), 0.9) * (focused + haze + autofluo) * vignette
        counts = rng.poisson(np.maximum(photons, 0)) * gain + rng.normal(offset, read, (h, w))
        image[c] = np.clip(np.rint(counts), 0, 65535).astype(np.uint16)
    return image


# ----------------------------------------------------------------------------- CLI

def equivalent_diameters(labels) -> np.ndarray:
    """Diameter of the disc with each object's area, float64 (n,) px, for ids present in ``labels``."""
    areas = np.bincount(labels.ravel())[1:]
    return np.sqrt(4 * areas[areas > 0] / np.pi)


def _consecutive(labels):
    """The same objects with ids 1..n in order of their old ids, int32 (H, W)."""
    ids = np.unique(labels[labels > 0])
    lookup = np.zeros(int(labels.max()) + 1, np.int32)
    lookup[ids] = np.arange(1, len(ids) + 1, dtype=np.int32)
    return lookup[labels]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="NPZ to write (TissueNet layout)")
    parser.add_argument("--n", type=int, default=8, help="images")
    parser.add_argument("--size", type=int, default=512, help="image side, px")
    parser.add_argument("--kind", default="mixed", choices=["mixed", *KINDS])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    kinds = [MULTICHANNEL_KINDS[i % 3] if args.kind == "mixed" else args.kind for i in range(args.n)]
    images, labels = [], []
    for i, kind in enumerate(kinds):
        image_seed = int(np.random.SeedSequence([args.seed, i]).generate_state(1)[0])
        image, label = heldout_tissue(args.size, args.size, seed=image_seed, kind=kind)
        images.append(np.moveaxis(image, 0, -1).astype(np.float32))
        labels.append(np.moveaxis(label, 0, -1))
    nuclear_only = all(kind == "nuclear_only" for kind in kinds)
    if nuclear_only:  # nuclei alone, renumbered 1..n (cells whose nucleus was too small leave gaps)
        y = np.stack([_consecutive(label[..., 1]) for label in labels])
    else:
        y = np.stack(labels)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, X=np.stack(images), y=y.astype(np.int32), kinds=np.array(kinds))
    nuclei = np.concatenate([equivalent_diameters(label[..., 1]) for label in labels])
    cells = np.concatenate([equivalent_diameters(label[..., 0]) for label in labels])
    counts = [len(np.unique(label[..., 1])) - 1 if nuclear_only else int(label[..., 0].max())
              for label in labels]
    summary = {
        "out": str(args.out), "kind": args.kind, "images": args.n, "size": args.size,
        "channels": 1 if nuclear_only else 2,
        "cells_per_image": counts,  # nuclei per image for nuclear_only
        "median_nucleus_diameter_px": round(float(np.median(nuclei)), 1) if len(nuclei) else None,
        "median_cell_diameter_px": (None if nuclear_only or not len(cells)
                                    else round(float(np.median(cells)), 1)),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
