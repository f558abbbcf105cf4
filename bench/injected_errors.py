"""The errors of ``bench/editor.py``'s correction task, injected into true labels, and when they count as fixed.

Five of each kind, on cells of a workable size away from the crop's edge, each kept a few pixels
away from the others:

* **merge** — two touching cells under one id;
* **split** — one cell cut in two through its centre, across its long axis;
* **missed** — a cell erased to background;
* **spurious** — a blob of 50-80 px in the background;
* **boundary** — three cells with a cap of about 40 % of their area missing (a bite) and two
  that bulge 4 px into the background on one side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from tests.e2e.careful_annotator import FOUR

N_EACH = 5
BITES = 3               # of the five boundary errors; the others bulge
KEEP_APART_PX = 4       # errors stay this far from each other
MIN_AREA, MAX_AREA = 120, 700


@dataclass
class InjectedError:
    """One injected error: its kind, the true cells it concerns and what it changed.

    ``cells`` are true whole-cell ids (none for a spurious object); ``region`` is the (H, W)
    bool mask of the pixels the error changed; ``detail`` tells a bite from a bulge.
    """

    kind: str
    cells: tuple[int, ...]
    region: np.ndarray
    detail: str = ""


def _candidates(truth: np.ndarray) -> list[int]:
    """Ids of cells of a workable size that do not touch the crop's edge."""
    h, w = truth.shape
    areas = np.bincount(truth.ravel())
    found = []
    for i, sl in enumerate(ndi.find_objects(truth), start=1):
        if sl is None or not MIN_AREA <= areas[i] <= MAX_AREA:
            continue
        if sl[0].start < 2 or sl[1].start < 2 or sl[0].stop > h - 2 or sl[1].stop > w - 2:
            continue
        found.append(i)
    return found


def _halves(mask: np.ndarray, direction: np.ndarray, share: float) -> np.ndarray:
    """Pixels of ``mask`` in the last ``share`` of its extent along ``direction``, bool."""
    ys, xs = np.nonzero(mask)
    proj = (ys - ys.mean()) * direction[0] + (xs - xs.mean()) * direction[1]
    out = np.zeros_like(mask)
    out[ys, xs] = proj > np.quantile(proj, 1 - share)
    return out


def _one_piece(mask: np.ndarray) -> bool:
    return ndi.label(mask, FOUR)[1] == 1


def _long_axis(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    _, _, vt = np.linalg.svd(np.stack([ys - ys.mean(), xs - xs.mean()], 1).astype(float), full_matrices=False)
    return vt[0]


def _split_half(truth: np.ndarray, c: int) -> np.ndarray | None:
    """The half of cell ``c`` beyond a cut across its long axis, if both halves are one piece."""
    cell = truth == c
    half = _halves(cell, _long_axis(cell), 0.5)
    return half if cell.sum() >= 150 and _one_piece(half) and _one_piece(cell & ~half) else None


def _bite(truth: np.ndarray, c: int, angle: float) -> np.ndarray | None:
    """The cap of cell ``c`` (40 % of it) on the side ``angle`` points to, if the rest is one piece."""
    cell = truth == c
    bite = _halves(cell, np.array([np.sin(angle), np.cos(angle)]), 0.4)
    return bite if cell.sum() >= 150 and _one_piece(cell & ~bite) else None


def _bulge(truth: np.ndarray, c: int, claimed: np.ndarray) -> np.ndarray | None:
    """Background within 4 px of cell ``c`` on its open side, kept 2 px from other cells, if it
    adds a quarter of the cell or more."""
    cell = truth == c
    edge = ndi.binary_dilation(cell, FOUR) & (truth == 0)
    if not edge.any():
        return None
    ys, xs = np.nonzero(cell)
    ey, ex = np.nonzero(edge)
    direction = np.array([ey.mean() - ys.mean(), ex.mean() - xs.mean()])
    near = ndi.binary_dilation(cell, np.ones((9, 9), bool)) & (truth == 0) & ~claimed
    near &= ~ndi.binary_dilation((truth != 0) & ~cell, np.ones((5, 5), bool))
    oy, ox = np.nonzero(near)
    side = (oy - ys.mean()) * direction[0] + (ox - xs.mean()) * direction[1] > 0
    bulge = np.zeros_like(cell)
    bulge[oy[side], ox[side]] = True
    return bulge if bulge.sum() >= 0.25 * cell.sum() and _one_piece(bulge | cell) else None


def _merge_partner(truth: np.ndarray, a: int, pool: list[int]) -> int | None:
    """A cell of ``pool`` that touches cell ``a`` along 6 px or more."""
    cell = truth == a
    ring = ndi.binary_dilation(cell, FOUR) & ~cell
    for b in np.unique(truth[ring]):
        if b != a and int(b) in pool and np.count_nonzero(ring & (truth == b)) >= 6:
            return int(b)
    return None


def inject_errors(truth: np.ndarray, seed: int = 0) -> tuple[np.ndarray, list[InjectedError]]:
    """Start labels with ``N_EACH`` errors of each kind injected into the true whole-cell labels.

    Parameters
    ----------
    truth : (H, W) int32
        True whole-cell labels, 0 background.
    seed : int
        Chooses the cells, the bites' sides and the blobs' places.

    Returns
    -------
    start : (H, W) int32
        The labels the task starts from.
    errors : list of InjectedError
        In the order merges, splits, missed, spurious, boundary.
    """
    rng = np.random.default_rng(seed)
    start = truth.copy()
    claimed = np.zeros(truth.shape, bool)
    apart = np.ones((2 * KEEP_APART_PX + 1,) * 2, bool)
    fresh = int(truth.max()) + 1
    errors: list[InjectedError] = []
    pool = [int(c) for c in rng.permutation(_candidates(truth))]

    def take(change) -> tuple[int, np.ndarray]:
        """The first free cell of the pool for which ``change(c)`` gives a mask; claims both."""
        for c in pool:
            if claimed[truth == c].any():
                continue
            mask = change(c)
            if mask is not None:
                pool.remove(c)
                claimed[ndi.binary_dilation((truth == c) | mask, apart)] = True
                return c, mask
        raise RuntimeError("the crop has too few cells for the correction task; change the seed")

    for _ in range(N_EACH):
        partner: dict[int, int] = {}

        def merge(a: int) -> np.ndarray | None:
            b = _merge_partner(truth, a, [c for c in pool if not claimed[truth == c].any()])
            partner[a] = b
            return None if b is None else truth == b
        a, other = take(merge)
        pool.remove(partner[a])
        start[other] = a
        errors.append(InjectedError("merge", (a, partner[a]), (truth == a) | other))
    for _ in range(N_EACH):
        c, half = take(lambda c: _split_half(truth, c))
        start[half] = fresh
        fresh += 1
        errors.append(InjectedError("split", (c,), truth == c))
    for _ in range(N_EACH):
        c, cell = take(lambda c: truth == c)
        start[cell] = 0
        errors.append(InjectedError("missed", (c,), cell))
    room = ndi.distance_transform_edt(truth == 0)
    yy, xx = np.ogrid[:truth.shape[0], :truth.shape[1]]
    for _ in range(N_EACH):
        radius = int(rng.integers(4, 6))
        ys, xs = np.nonzero((room >= radius + 3) & ~claimed)
        for k in rng.permutation(len(ys)):
            blob = (yy - ys[k]) ** 2 + (xx - xs[k]) ** 2 <= radius * radius
            if not claimed[blob].any():
                break
        else:
            raise RuntimeError("no background room left for a spurious object; change the seed")
        start[blob] = fresh
        fresh += 1
        claimed[ndi.binary_dilation(blob, apart)] = True
        errors.append(InjectedError("spurious", (), blob))
    for i in range(N_EACH):
        if i < BITES:
            angle = rng.uniform(0, 2 * np.pi)
            c, bite = take(lambda c: _bite(truth, c, angle))
            start[bite] = 0
            errors.append(InjectedError("boundary", (c,), bite, "bite"))
        else:
            c, bulge = take(lambda c: _bulge(truth, c, claimed))
            start[bulge] = c
            errors.append(InjectedError("boundary", (c,), bulge, "bulge"))
    return start, errors


def best_iou(cell: np.ndarray, labels: np.ndarray) -> float:
    """IoU of a true cell with the labelled object that overlaps it most (0 when none does)."""
    ids, counts = np.unique(labels[cell], return_counts=True)
    keep = ids != 0
    if not keep.any():
        return 0.0
    ids, counts = ids[keep], counts[keep]
    best = int(np.argmax(counts))
    inter = int(counts[best])
    return inter / (int(cell.sum()) + int(np.count_nonzero(labels == ids[best])) - inter)


def fixed(error: InjectedError, truth: np.ndarray, labels: np.ndarray, min_iou: float = 0.8) -> bool:
    """Whether ``labels`` fix ``error``: every true cell it concerns is back at IoU >= ``min_iou``
    (the two cells of a merge under different ids), or a spurious object is gone."""
    if error.kind == "spurious":
        return np.count_nonzero(labels[error.region]) < 0.1 * error.region.sum()
    if not all(best_iou(truth == c, labels) >= min_iou for c in error.cells):
        return False
    if error.kind == "merge":
        owners = [np.bincount(labels[truth == c]).argmax() for c in error.cells]
        return owners[0] != owners[1]
    return True
