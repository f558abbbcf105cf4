"""Where a careful annotator puts the pointer: pixel paths planned from what they see.

Pure functions from masks to image-pixel paths ``[(y, x), ...]``, shared by the browser tests and
``bench/editor.py``'s scripted correction task; the pointer moves themselves go through the page
(:class:`tests.e2e.task_page.TaskPage`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

FOUR = ndi.generate_binary_structure(2, 1)


def _principal_order(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Order of points along their principal axis."""
    pts = np.stack([ys, xs], 1).astype(np.float64)
    centred = pts - pts.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return np.argsort(centred @ vt[0], kind="stable")


def _extend(start: np.ndarray, towards: np.ndarray, inside: np.ndarray, beyond: int) -> tuple[int, int]:
    """Walk from ``towards`` through ``start`` and on until ``beyond`` px past the last ``inside`` pixel."""
    h, w = inside.shape
    step = start - towards
    norm = float(np.hypot(*step))
    step = step / norm if norm > 0 else np.array([0.0, 1.0])
    last_inside = 0.0
    t = 0.0
    while t - last_inside < beyond + 1 and t < h + w:
        t += 0.5
        y, x = np.rint(start + step * t).astype(int)
        if not (0 <= y < h and 0 <= x < w):
            break
        if inside[y, x]:
            last_inside = t
    y, x = np.rint(start + step * (last_inside + beyond)).astype(int)
    return int(np.clip(y, 0, h - 1)), int(np.clip(x, 0, w - 1))


def boundary_stroke(keep: np.ndarray, other: np.ndarray, spacing: int = 3, beyond: int = 3) -> list[tuple[int, int]]:
    """A cut along the boundary between two touching cells, from outside them to outside.

    The waypoints are the pixels of ``keep`` that touch ``other`` (the cut's pixels go to the
    larger piece, so ``keep`` should be the larger cell), ordered along the boundary and taken
    every ``spacing`` px, then extended at both ends, straight on, to ``beyond`` px outside
    both cells.

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
    order = _principal_order(ys, xs)
    pts = np.stack([ys[order], xs[order]], 1)
    way = pts[::spacing]
    if not np.array_equal(way[-1], pts[-1]):
        way = np.vstack([way, pts[-1:]])
    both = keep | other
    tail = min(len(pts) - 1, 4)
    first = _extend(pts[0].astype(float), pts[tail].astype(float), both, beyond)
    last = _extend(pts[-1].astype(float), pts[-1 - tail].astype(float), both, beyond)
    return [first, *[(int(y), int(x)) for y, x in way], last]
