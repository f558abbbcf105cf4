"""Where a careful annotator puts the pointer: pixel paths planned from what they see.

Pure functions from masks to image-pixel paths ``[(y, x), ...]``, shared by the browser tests and
``bench/editor.py``'s scripted correction task; the pointer moves themselves go through the page
(:class:`tests.e2e.task_page.TaskPage`).
"""

from __future__ import annotations

from collections import deque

import numpy as np
from scipy import ndimage as ndi

FOUR = ndi.generate_binary_structure(2, 1)


def _along(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Order of a thin curve's pixels from one end to the other.

    Starts at the pixel farthest along the curve's principal axis and orders by the number of
    8-connected steps from it; pixels it cannot reach follow in axis order.
    """
    pts = np.stack([ys, xs], 1).astype(np.float64)
    centred = pts - pts.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axis = centred @ vt[0]
    index = {(int(y), int(x)): i for i, (y, x) in enumerate(zip(ys, xs))}
    steps = np.full(len(ys), np.inf)
    first = int(np.argmin(axis))
    steps[first] = 0
    queue = deque([first])
    while queue:
        i = queue.popleft()
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                j = index.get((int(ys[i]) + dy, int(xs[i]) + dx))
                if j is not None and steps[j] == np.inf:
                    steps[j] = steps[i] + 1
                    queue.append(j)
    return np.lexsort((axis, steps))


def _exit(end: tuple[int, int], inside: np.ndarray, beyond: int) -> tuple[int, int]:
    """The pixel nearest to ``end`` that lies ``beyond`` px (or as deep as there is room) outside ``inside``."""
    depth = ndi.distance_transform_edt(~inside)
    deep = depth >= min(beyond, depth.max())
    _, (iy, ix) = ndi.distance_transform_edt(~deep, return_indices=True)
    return int(iy[end]), int(ix[end])


def boundary_stroke(keep: np.ndarray, other: np.ndarray, spacing: int = 3, beyond: int = 3) -> list[tuple[int, int]]:
    """A cut along the boundary between two touching cells, from outside them to outside.

    The waypoints are the pixels of ``keep`` that touch ``other`` (the cut's pixels go to the
    larger piece, so ``keep`` should be the larger cell), followed from one end of the boundary
    to the other and taken every ``spacing`` px; at each end the stroke goes on to the nearest
    pixel ``beyond`` px outside both cells.

    Parameters
    ----------
    keep, other : (H, W) bool
        The two cells as the annotator sees them in the image.
    spacing : int
        Pixels between waypoints along the boundary.
    beyond : int
        How far past the cells each end reaches, pixels.

    Returns
    -------
    list of (y, x)
        Waypoints in image pixels, in drawing order.
    """
    contact = keep & ndi.binary_dilation(other, FOUR)
    ys, xs = np.nonzero(contact)
    if len(ys) == 0:
        raise ValueError("the two cells do not touch")
    order = _along(ys, xs)
    way = [(int(ys[i]), int(xs[i])) for i in order[::spacing]]
    last = (int(ys[order[-1]]), int(xs[order[-1]]))
    if way[-1] != last:
        way.append(last)
    both = keep | other
    return [_exit(way[0], both, beyond), *way, _exit(last, both, beyond)]


def brush_disc(radius: int) -> np.ndarray:
    """The editor's brush disc (``discHalfWidths`` in frontend/editor/tools/brush.js), bool (2r+1, 2r+1)."""
    r = int(radius)
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    halves = np.floor(np.sqrt(np.maximum(0, radius * radius - dy * dy)) + 1e-9)
    return np.abs(dx) <= halves


def _js_round(v: np.ndarray) -> np.ndarray:
    """JavaScript's Math.round (halves up), as the brush rounds its interpolated points."""
    return np.floor(v + 0.5).astype(int)


def _segment_inside(a: tuple[int, int], b: tuple[int, int], centres: np.ndarray) -> bool:
    """Whether every pixel of the straight line a -> b (as the brush interpolates it) is a centre."""
    n = max(abs(b[0] - a[0]), abs(b[1] - a[1]), 1)
    t = np.arange(n + 1) / n
    return bool(centres[_js_round(a[0] + (b[0] - a[0]) * t), _js_round(a[1] + (b[1] - a[1]) * t)].all())


def _route(a: tuple[int, int], b: tuple[int, int], centres: np.ndarray) -> list[tuple[int, int]] | None:
    """Waypoints from a to b (a excluded) whose straight legs stay on ``centres``, or None."""
    h, w = centres.shape
    previous = {a: a}
    queue = deque([a])
    while queue and b not in previous:
        y, x = queue.popleft()
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                n = (y + dy, x + dx)
                if 0 <= n[0] < h and 0 <= n[1] < w and centres[n] and n not in previous:
                    previous[n] = (y, x)
                    queue.append(n)
    if b not in previous:
        return None
    path = [b]
    while path[-1] != a:
        path.append(previous[path[-1]])
    path.reverse()
    way, i = [], 0
    while i < len(path) - 1:
        j = len(path) - 1
        while j > i + 1 and not _segment_inside(path[i], path[j], centres):
            j -= 1
        way.append(path[j])
        i = j
    return way


def _worth_a_stroke(centres: np.ndarray, cover: np.ndarray, disc: np.ndarray) -> np.ndarray:
    """The connected parts of ``centres`` worth a stroke of their own: the largest, and any other
    whose discs reach at least 4 px (and 3 %) of ``cover`` that the parts kept before do not."""
    parts, n = ndi.label(centres, np.ones((3, 3), bool))
    if n <= 1:
        return centres
    sizes = np.bincount(parts.ravel())[1:]
    kept = np.zeros_like(centres)
    covered = np.zeros_like(cover)
    for k in np.argsort(-sizes) + 1:
        reach = ndi.binary_dilation(parts == k, disc) & cover & ~covered
        if not kept.any() or reach.sum() >= max(4, 0.03 * cover.sum()):
            kept |= parts == k
            covered |= reach
    return kept


def cover_strokes(cover: np.ndarray, allowed: np.ndarray, radius: int,
                  start_on: np.ndarray | None = None) -> list[list[tuple[int, int]]]:
    """Brush (or eraser) strokes that colour ``cover`` without ever touching a pixel outside ``allowed``.

    The disc's centre stays where the whole disc lies inside ``allowed`` and near ``cover``; the
    strokes scan those centres row by row, every ``radius`` rows, back and forth like a person
    colouring in, going round (never out of them) to reach the next row; a new stroke starts only
    where no way on stays on them.

    Parameters
    ----------
    cover : (H, W) bool
        Pixels to paint (or erase).
    allowed : (H, W) bool
        Pixels the disc may touch (``cover`` should lie inside it).
    radius : int
        The brush radius, pixels (>= 0).
    start_on : (H, W) bool, optional
        Where the first stroke must start (the safe eraser erases the cell it starts on).

    Returns
    -------
    list of strokes
        Each a list of (y, x) waypoints; empty when no disc fits.
    """
    disc = brush_disc(radius)
    centres = _worth_a_stroke(ndi.binary_erosion(allowed, disc, border_value=0) & ndi.binary_dilation(cover, disc),
                              cover, disc)
    rows = np.nonzero(centres.any(1))[0]
    if len(rows) == 0:
        return []
    picked = list(range(int(rows[0]), int(rows[-1]) + 1, max(1, int(radius))))
    if picked[-1] != int(rows[-1]):
        picked.append(int(rows[-1]))
    strokes: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    forward = True
    for y in picked:
        xs = np.nonzero(centres[y])[0]
        if len(xs) == 0:
            continue
        runs = np.split(xs, np.nonzero(np.diff(xs) > 1)[0] + 1)
        for run in (runs if forward else runs[::-1]):
            ends = [(y, int(run[0])), (y, int(run[-1]))]
            if not forward:
                ends.reverse()
            if current and not _segment_inside(current[-1], ends[0], centres):
                way = _route(current[-1], ends[0], centres)
                if way is None:
                    strokes.append(current)
                    current = []
                else:
                    current.extend(way[:-1])
            current.extend(ends if ends[0] != ends[1] else ends[:1])
        forward = not forward
    if current:
        strokes.append(current)
    if start_on is not None and strokes and not start_on[strokes[0][0]]:
        ys, xs = np.nonzero(centres & start_on)
        if len(ys) == 0:
            raise ValueError("no stroke can start on the required pixels without leaving the allowed ones")
        first = strokes[0][0]
        k = int(np.argmin((ys - first[0]) ** 2 + (xs - first[1]) ** 2))
        begin = (int(ys[k]), int(xs[k]))
        way = _route(begin, first, centres)
        if way is None:
            strokes.insert(0, [begin])
        else:
            strokes[0] = [begin, *way[:-1], *strokes[0]]
    return strokes


def stamp(mask_shape: tuple[int, int], strokes: list[list[tuple[int, int]]], radius: int) -> np.ndarray:
    """Pixels the editor's brush covers along ``strokes`` (a plan's preview), bool (H, W)."""
    line = np.zeros(mask_shape, bool)
    for stroke in strokes:
        line[stroke[0]] = True
        for a, b in zip(stroke, stroke[1:]):
            n = max(abs(b[0] - a[0]), abs(b[1] - a[1]), 1)
            t = np.arange(n + 1) / n
            line[_js_round(a[0] + (b[0] - a[0]) * t), _js_round(a[1] + (b[1] - a[1]) * t)] = True
    return ndi.binary_dilation(line, brush_disc(radius))
