"""Synthetic multiplexed tissue with exact ground truth, for the demo, tests and simulation.

The tissue is drawn in four steps:

1. **Layout** - smooth random fields decide where tissue is (``density``) and how large cells are
   locally; cell seeds are scattered with a density inversely proportional to the local cell
   area and thinned so that no two seeds nearly coincide. A few isolated cells sit in the gaps.
2. **Cells** - every pixel goes to the seed with the smallest *shape-normalised* distance
   (an anisotropically, multiplicatively weighted Voronoi diagram), but only within that cell's
   own outline (radius x elongation x lobes), so dense regions give touching cells and sparse
   regions leave background gaps. Outlines are round, elongated or concave (two or three lobes).
3. **Nuclei** - an ellipse around the seed, clipped to the cell minus a one-pixel rim, so nuclear
   pixels are a strict subset of the cell's; about 10 % of cells have no nucleus in plane.
4. **Image** - DAPI lights nuclei, the membrane channel lights cell borders, lineage channels
   light the cytoplasm of random subsets of cells; then blur, uneven background and illumination,
   shot + read noise, quantised to uint16.

Everything is drawn on a canvas padded by a margin, so cells and blur continue across the frame's
edges, then cropped. Same arguments -> identical arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage import measure

from backend.core.tissue_styles import TissueStyle

__all__ = ["SyntheticTissue", "synthetic_tissue"]

_MIN_CELL_PIXELS = 6          # smaller Voronoi slivers are dropped before rendering
_MIN_NUCLEUS_PIXELS = 3


@dataclass
class SyntheticTissue:
    """A synthetic tissue image with its ground-truth labels.

    Attributes
    ----------
    image : np.ndarray
        ``(C, H, W)`` uint16 raw intensities (counts), like a microscope's output.
    whole_cell : np.ndarray
        ``(H, W)`` int32; 0 is background, cells are ``1..n`` with no gaps and no reuse.
    nuclear : np.ndarray
        ``(H, W)`` int32; a nucleus carries its cell's id and lies inside that cell.
    channel_names : list of str
        ``["DAPI", "membrane", "lineage_1", ...]`` (length C).
    """

    image: np.ndarray
    whole_cell: np.ndarray
    nuclear: np.ndarray
    channel_names: list[str]

    @property
    def labels(self) -> np.ndarray:
        """``(2, H, W)`` int32 stack of (whole_cell, nuclear)."""
        return np.stack([self.whole_cell, self.nuclear]).astype(np.int32, copy=False)


@dataclass
class _Cells:
    """Per-cell parameters, arrays of length n (cell i gets canvas label i + 1)."""

    cy: np.ndarray          # seed row, canvas pixels
    cx: np.ndarray          # seed column, canvas pixels
    radius: np.ndarray      # outline radius before elongation, pixels
    aspect: np.ndarray      # elongation >= 1 (area preserving)
    angle: np.ndarray       # orientation of the long axis, radians
    lobes: np.ndarray       # 0 (convex) or 2, 3 (concave outline)
    lobe_depth: np.ndarray  # relative radius modulation of the lobes
    lobe_phase: np.ndarray  # radians


def synthetic_tissue(height: int, width: int, *, n_channels: int = 3, seed: int = 0,
                     mean_diameter: float = 18.0, density: float = 0.85,
                     style: TissueStyle | None = None) -> SyntheticTissue:
    """Draw a synthetic multichannel tissue image and its exact segmentation.

    Parameters
    ----------
    height, width : int
        Image size in pixels (>= 1; 16x16 up to 4096x4096 are typical).
    n_channels : int
        Number of channels C (1..64): DAPI, membrane, then lineage markers.
    seed : int
        Random seed; the same arguments always give identical arrays.
    mean_diameter : float
        Typical cell diameter in pixels (4..256). Local sizes vary around it, more than 10x
        in area across an image.
    density : float
        Fraction of the image area that is tissue (0 < density <= 1), honoured at any size;
        cells cover somewhat less (gaps between cells), and the rest holds a few isolated cells.
    style : TissueStyle, optional
        Morphology and appearance (:mod:`backend.core.tissue_styles`); the default is the
        original generator's mixed tissue with a thin membrane.

    Returns
    -------
    SyntheticTissue
        ``image`` (C,H,W) uint16, ``whole_cell`` and ``nuclear`` (H,W) int32.
    """
    if int(height) != height or int(width) != width or height < 1 or width < 1:
        raise ValueError(f"height and width must be positive integers, got {height}x{width}")
    if int(n_channels) != n_channels or not 1 <= n_channels <= 64:
        raise ValueError(f"n_channels must be an integer in 1..64, got {n_channels}")
    if not 4.0 <= mean_diameter <= 256.0:
        raise ValueError(f"mean_diameter must be in 4..256 pixels, got {mean_diameter}")
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    height, width, n_channels = int(height), int(width), int(n_channels)
    style = style or TissueStyle()
    rng = np.random.default_rng(seed)
    margin = int(np.ceil(1.6 * mean_diameter)) + 4
    canvas = (height + 2 * margin, width + 2 * margin)

    cells = _place_cells(rng, canvas, float(mean_diameter), float(density), style)
    whole = _largest_fragments(_tessellate(canvas, cells), _MIN_CELL_PIXELS)
    nuclear = _nuclei(rng, whole, cells, style)
    image = _render(rng, whole, nuclear, n_channels, float(mean_diameter), style)

    frame = (slice(margin, margin + height), slice(margin, margin + width))
    # Cropping can cut a cell into separate pieces: each connected piece becomes its own cell.
    whole_cell = measure.label(whole[frame], background=0, connectivity=1).astype(np.int32)
    nuclear = np.where(nuclear[frame] > 0, whole_cell, 0).astype(np.int32)
    names = ["DAPI", "membrane"][:n_channels] + [f"lineage_{k}" for k in range(1, n_channels - 1)]
    return SyntheticTissue(np.ascontiguousarray(image[:, frame[0], frame[1]]), whole_cell,
                           nuclear, names)


# ------------------------------------------------------------------------------- layout

def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], length: float,
                  points: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """A smooth standard-normal random field with correlation length ``length`` pixels.

    Evaluated on the whole ``shape`` grid (float32), or at ``points`` = (rows, cols) if given.
    """
    lattice_shape = (int(np.ceil(shape[0] / length)) + 4, int(np.ceil(shape[1] / length)) + 4)
    lattice = ndimage.gaussian_filter(rng.standard_normal(lattice_shape), 1.0, mode="wrap")
    lattice /= 0.5 / np.sqrt(np.pi)        # a unit-sigma 2-D Gaussian filter scales std by this
    if points is not None:
        coords = np.stack([points[0] / length + 1.5, points[1] / length + 1.5])
        return ndimage.map_coordinates(lattice, coords, order=3, mode="nearest")
    # Bilinear interpolation is separable: rows @ lattice @ cols.T, with small weight matrices.
    rows = _linear_weights(np.arange(shape[0]) / length + 1.5, lattice_shape[0])
    cols = _linear_weights(np.arange(shape[1]) / length + 1.5, lattice_shape[1])
    return (rows @ lattice.astype(np.float32) @ cols.T).astype(np.float32)


def _linear_weights(positions: np.ndarray, size: int) -> np.ndarray:
    """(len(positions), size) float32 matrix of linear-interpolation weights on a 1-D lattice."""
    low = np.clip(np.floor(positions).astype(int), 0, size - 2)
    frac = np.clip(positions - low, 0.0, 1.0).astype(np.float32)
    weights = np.zeros((positions.size, size), dtype=np.float32)
    weights[np.arange(positions.size), low] = 1.0 - frac
    weights[np.arange(positions.size), low + 1] = frac
    return weights


def _place_cells(rng: np.random.Generator, canvas: tuple[int, int], mean_diameter: float,
                 density: float, style: TissueStyle) -> _Cells:
    """Seeds and outline parameters for every cell on the canvas."""
    step = max(2.0, mean_diameter / 3.0)          # coarse bins used to scatter the seeds
    rows = (np.arange(int(np.ceil(canvas[0] / step))) + 0.5) * step
    cols = (np.arange(int(np.ceil(canvas[1] / step))) + 0.5) * step
    grid_r, grid_c = (a.ravel() for a in np.meshgrid(rows, cols, indexing="ij"))
    tissue_level = _smooth_field(rng, canvas, 5.0 * mean_diameter, (grid_r, grid_c))
    size_level = _smooth_field(rng, canvas, 4.0 * mean_diameter, (grid_r, grid_c))
    threshold = -np.inf if density >= 1.0 else np.quantile(tissue_level, 1.0 - density)
    in_tissue = np.where(tissue_level > threshold, 1.0, 0.06)   # a few isolated cells in gaps
    local_diameter = mean_diameter * np.exp(style.size_variation * np.clip(size_level, -2.5, 2.5))
    expected = 1.4 * in_tissue * step * step / (np.pi / 4.0 * local_diameter**2)
    counts = rng.poisson(expected)
    bin_index = np.repeat(np.arange(counts.size), counts)
    cy = grid_r[bin_index] + (rng.random(bin_index.size) - 0.5) * step
    cx = grid_c[bin_index] + (rng.random(bin_index.size) - 0.5) * step
    diameter = local_diameter[bin_index] * np.exp(rng.normal(0.0, style.size_jitter, bin_index.size))
    keep = _thin_seeds(cy, cx, 0.55 * diameter)
    cy, cx, diameter = cy[keep], cx[keep], diameter[keep]
    n = cy.size

    kind = rng.random(n)                          # default: 40 % round, 35 % elongated, 25 % concave
    aspect = np.where(kind < style.round_fraction, rng.uniform(1.0, 1.15, n),
                      rng.uniform(*style.elongation, n))
    concave = kind >= 1.0 - style.concave_fraction
    aspect[concave] = rng.uniform(1.0, 1.6, concave.sum())
    lobes = np.where(concave, rng.choice([2, 3], n), 0)
    lobe_depth = np.where(concave, rng.uniform(0.28, 0.45, n), 0.0)
    return _Cells(cy=cy, cx=cx, radius=0.5 * diameter * rng.uniform(*style.fill, n),
                  aspect=aspect, angle=rng.uniform(0.0, np.pi, n), lobes=lobes,
                  lobe_depth=lobe_depth, lobe_phase=rng.uniform(0.0, 2 * np.pi, n))


def _thin_seeds(cy: np.ndarray, cx: np.ndarray, min_distance: np.ndarray) -> np.ndarray:
    """Boolean mask that drops the later seed of every pair closer than their mean min_distance."""
    keep = np.ones(cy.size, dtype=bool)
    if cy.size < 2:
        return keep
    pairs = cKDTree(np.column_stack([cy, cx])).query_pairs(float(min_distance.max()),
                                                          output_type="ndarray")
    if len(pairs):
        i, j = pairs.min(axis=1), pairs.max(axis=1)
        close = np.hypot(cy[i] - cy[j], cx[i] - cx[j]) < 0.5 * (min_distance[i] + min_distance[j])
        keep[j[close]] = False
    return keep


# -------------------------------------------------------------------------------- cells

def _outline_distance(cells: _Cells, i: int, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Shape-normalised distance of offsets (dy, dx) from cell i's seed: <= 1 inside its outline."""
    cos, sin = np.cos(cells.angle[i]), np.sin(cells.angle[i])
    u = cos * dx + sin * dy                        # along the long axis
    v = cos * dy - sin * dx
    e = cells.aspect[i]
    rho = np.sqrt(u * u / e + v * v * e) / cells.radius[i]
    if cells.lobes[i]:
        theta = np.arctan2(v, u)
        rho /= 1.0 + cells.lobe_depth[i] * np.cos(cells.lobes[i] * theta + cells.lobe_phase[i])
    return rho


def _tessellate(canvas: tuple[int, int], cells: _Cells) -> np.ndarray:
    """(H,W) int32 labels: each pixel goes to the cell with the smallest outline distance <= 1."""
    labels = np.zeros(canvas, dtype=np.int32)
    best = np.full(canvas, 1.0, dtype=np.float32)
    reach = cells.radius * np.sqrt(cells.aspect) * (1.0 + cells.lobe_depth) + 1.0
    for i in range(cells.cy.size):
        y0, y1 = max(0, int(cells.cy[i] - reach[i])), min(canvas[0], int(cells.cy[i] + reach[i]) + 2)
        x0, x1 = max(0, int(cells.cx[i] - reach[i])), min(canvas[1], int(cells.cx[i] + reach[i]) + 2)
        if y0 >= y1 or x0 >= x1:
            continue
        dy = (np.arange(y0, y1, dtype=np.float32) - np.float32(cells.cy[i]))[:, None]
        dx = (np.arange(x0, x1, dtype=np.float32) - np.float32(cells.cx[i]))[None, :]
        rho = _outline_distance(cells, i, dy, dx)
        box_best, box_labels = best[y0:y1, x0:x1], labels[y0:y1, x0:x1]
        closer = rho < box_best
        box_best[closer] = rho[closer]
        box_labels[closer] = i + 1
    return labels


def _largest_fragments(labels: np.ndarray, min_pixels: int) -> np.ndarray:
    """Keep only the largest 4-connected piece of every label, and only if >= min_pixels."""
    pieces = measure.label(labels, background=0, connectivity=1)
    sizes = np.bincount(pieces.ravel())
    if sizes.size == 1:                          # nothing labelled
        return np.zeros(labels.shape, dtype=np.int32)
    owner = np.zeros(sizes.size, dtype=labels.dtype)
    owner[pieces.ravel()] = labels.ravel()
    piece_ids = np.arange(1, sizes.size)
    order = np.lexsort((sizes[1:], owner[1:]))   # by owner, then by size
    owners_sorted = owner[1:][order]
    largest = np.r_[owners_sorted[1:] != owners_sorted[:-1], True]
    keep = np.zeros(sizes.size, dtype=bool)
    keep[piece_ids[order][largest]] = True
    keep &= sizes >= min_pixels
    keep[0] = False
    return np.where(keep[pieces], labels, 0).astype(np.int32)


def _borders(labels: np.ndarray) -> np.ndarray:
    """(H,W) bool: pixels with a 4-neighbour of a different label (the canvas edge counts)."""
    padded = np.pad(labels, 1, mode="constant", constant_values=-1)
    centre = padded[1:-1, 1:-1]
    return ((padded[:-2, 1:-1] != centre) | (padded[2:, 1:-1] != centre)
            | (padded[1:-1, :-2] != centre) | (padded[1:-1, 2:] != centre))


def _nuclei(rng: np.random.Generator, whole: np.ndarray, cells: _Cells,
            style: TissueStyle) -> np.ndarray:
    """(H,W) int32 nuclei: an ellipse at each seed, inside the cell minus its one-pixel rim."""
    n = cells.cy.size
    nuclear = np.zeros_like(whole)
    inner = np.where(_borders(whole), 0, whole)
    has_nucleus = rng.random(n) >= style.no_nucleus_fraction
    minor = cells.radius / np.sqrt(cells.aspect) * (1.0 - cells.lobe_depth)
    semi_minor = rng.uniform(*style.nucleus_size, n) * minor
    semi_major = semi_minor * np.minimum(cells.aspect, rng.uniform(1.0, 1.6, n))
    tilt = cells.angle + rng.normal(0.0, 0.25, n)
    offset = rng.normal(0.0, 0.12, (2, n)) * minor
    present = np.zeros(n + 1, dtype=bool)
    present[np.unique(whole)] = True
    for i in np.flatnonzero(has_nucleus & present[1:]):
        cy, cx = cells.cy[i] + offset[0, i], cells.cx[i] + offset[1, i]
        r = semi_major[i] + 1.0
        y0, y1 = max(0, int(cy - r)), min(whole.shape[0], int(cy + r) + 2)
        x0, x1 = max(0, int(cx - r)), min(whole.shape[1], int(cx + r) + 2)
        if y0 >= y1 or x0 >= x1:
            continue
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
        u = np.cos(tilt[i]) * dx + np.sin(tilt[i]) * dy
        v = np.cos(tilt[i]) * dy - np.sin(tilt[i]) * dx
        inside = ((u / semi_major[i]) ** 2 + (v / semi_minor[i]) ** 2 <= 1.0)
        inside &= inner[y0:y1, x0:x1] == i + 1
        if inside.sum() >= _MIN_NUCLEUS_PIXELS:
            nuclear[y0:y1, x0:x1][inside] = i + 1
    return _largest_fragments(nuclear, _MIN_NUCLEUS_PIXELS)


# -------------------------------------------------------------------------------- image

def _render(rng: np.random.Generator, whole: np.ndarray, nuclear: np.ndarray, n_channels: int,
            mean_diameter: float, style: TissueStyle) -> np.ndarray:
    """(C,H,W) uint16 raw counts for the labelled canvas."""
    n = int(whole.max())
    shape = whole.shape
    f32 = np.float32
    dim = np.where(rng.random(n + 1) < style.dim_fraction, rng.uniform(0.15, 0.4, n + 1), 1.0)
    in_cell = whole > 0
    cytoplasm = in_cell & (nuclear == 0)
    illumination = _smooth_field(rng, shape, 12.0 * mean_diameter)
    np.clip(illumination, -2.0, 2.0, out=illumination)
    illumination *= f32(0.2)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    scale = f32(1.0 / max(shape))
    ramp = (f32(np.cos(angle)) * scale * np.arange(shape[0], dtype=f32)[:, None]
            + f32(np.sin(angle)) * scale * np.arange(shape[1], dtype=f32)[None, :])
    shading = 1.0 + 0.6 * ramp + 0.25 * illumination        # uneven background, float32
    illumination += f32(1.0)                                 # uneven excitation
    blurred = None
    if style.out_of_focus_fraction > 0:    # nuclei out of the focal plane: blurred and dim
        blurred = rng.random(n + 1) < style.out_of_focus_fraction
        blurred[0] = False
    rim = _borders(whole) & in_cell
    if style.membrane_width > 1:           # a thick membrane: the rim grows inwards
        size = 2 * style.membrane_width - 1
        rim = in_cell & ((ndimage.grey_erosion(whole, size=size) != whole)
                         | (ndimage.grey_dilation(whole, size=size) != whole))
    channels = np.empty((n_channels,) + shape, dtype=np.uint16)
    for c in range(n_channels):
        brightness = (rng.lognormal(0.0, 0.35, n + 1) * dim).astype(f32)
        brightness[0] = 0.0
        if c == 0:           # DAPI: textured nuclei, a faint cytoplasm
            chromatin = rng.standard_normal(shape, dtype=f32)
            ndimage.gaussian_filter(chromatin, 0.8, output=chromatin)
            np.clip(chromatin, -1.0, 1.0, out=chromatin)
            signal = brightness[nuclear] * (1.0 + f32(style.dapi_texture) * chromatin)
            if blurred is not None and blurred.any():
                far = blurred[nuclear]
                soft = ndimage.gaussian_filter(np.where(far, signal, f32(0.0)), 2.5)
                signal = np.where(far, f32(0.0), signal) + f32(0.45) * soft
            signal += f32(0.04) * brightness[whole] * cytoplasm
            peak, sigma = 9000.0, 1.0
        elif c == 1:         # membrane: bright borders, dim interiors
            level = np.where(rim, f32(1.0), f32(style.membrane_interior))
            if style.nuclear_hole > 0:
                level = np.where(nuclear > 0, level * f32(1.0 - style.nuclear_hole), level)
            signal = brightness[whole] * level
            peak, sigma = 6000.0, 1.1
        else:                # lineage marker: cytoplasm of a random subset of cells
            positive = (rng.random(n + 1) < rng.uniform(0.15, 0.5)).astype(f32)
            signal = (brightness * positive)[whole] * np.where(cytoplasm, f32(1.0), f32(0.3))
            peak, sigma = rng.uniform(2500.0, 8000.0), 1.5
        ndimage.gaussian_filter(signal, sigma * style.blur, output=signal)
        signal *= f32(peak * style.brightness) * illumination
        signal += f32(rng.uniform(*style.background)) * shading
        # Shot noise (Gaussian approximation, gain 4 counts/photon) plus read noise (20 counts).
        noise = np.sqrt(f32(4.0) * np.maximum(signal, 0.0) + f32(400.0))
        if style.noise != 1.0:
            noise *= f32(style.noise)
        noise *= rng.standard_normal(shape, dtype=f32)
        signal += noise
        np.clip(np.rint(signal, out=signal), 0, 65535, out=signal)
        channels[c] = signal
    return channels
