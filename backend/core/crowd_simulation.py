"""Simulated crowd annotators and expert reviewer, as pure functions on label arrays.

``looplabel simulate`` rehearses the human-in-the-loop cycle with annotators whose behaviour is
modelled here; the orchestrator (``worker/simulate.py``) only moves these arrays over the crowd
and review HTTP APIs. Everything works on label images: ``(h, w)`` int32 for one feature or
``(2, h, w)`` int32 stacks (whole_cell, nuclear); 0 is background.

What an annotator sees as *wrong* (the error units of :func:`error_units`): a true cell is right
when some labelled cell overlaps it with IoU >= :data:`MATCH_IOU`; every other true cell is an
error unit together with the unmatched labelled cells lying on it (a missed, badly outlined,
merged or split cell), and every unmatched labelled cell lying on no such true cell is an error
unit of its own (debris, a false cell). A fix is brush-like: the true cell is painted over with a
new id (its outline jittered by the profile's boundary noise, never painting over cells that are
right), the leftovers of the wrong cells on true background are erased, and a false cell is
deleted.

Profiles (:data:`PROFILES`): *careful* fixes most error units with a small boundary noise and uses
the watershed split on merged cells; *hasty* fixes fewer, with a coarser brush; *spammer* submits
the labels unchanged or empty. Each has an effort model (:func:`active_seconds`): the time on a
crop grows linearly with the cells changed and the server tools used, with a log-normal spread.
The constants are assumptions calibrated on one published figure: TissueNet took more than
4,000 person-hours for about 2.5 million whole-cell and nuclear annotations (Greenwald et al.),
about 6 s per annotation; here a careful annotator spends 8 s per corrected cell and half a
minute inspecting a 270-px crop, a hasty one 4 s and a quarter of a minute.

The simulated admin flags annotators who do not improve the gold crops they annotate
(:func:`gold_gain`, :func:`flag_annotators`): figures the platform itself can compute from its
gold labels, the crops' starting labels and the submissions.

The expert reviewer (:func:`score_labels`, :func:`crops_to_redo`, :func:`fix_worst_cells`) scores
a stitched image against ground truth with object F1 (IoU >= 0.5), sends back crops that look
unedited or empty, and otherwise fixes the worst cells exactly until the image reaches the
approval F1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

from backend.core.metrics import contingency, object_metrics

__all__ = [
    "MATCH_IOU",
    "PROFILES",
    "AddCellRequest",
    "AnnotatorProfile",
    "Correction",
    "ErrorUnit",
    "ReviewScore",
    "SplitRequest",
    "accepts_added_cell",
    "active_seconds",
    "apply_fixes",
    "correct_crop",
    "crops_to_redo",
    "error_units",
    "fix_worst_cells",
    "flag_annotators",
    "gold_gain",
    "jitter_mask",
    "merged_cells",
    "missed_cells",
    "parse_profiles",
    "score_labels",
]

MATCH_IOU = 0.7
"""A cell counts as right for an annotator when a cell of the other image has IoU >= this."""
MIN_REMNANT_PX = 15
"""Leftovers of an erased cell smaller than this (px) are erased too (the QC cell minimum)."""
_INT32_MAX = int(np.iinfo(np.int32).max)


# ------------------------------------------------------------------ profiles

@dataclass(frozen=True)
class AnnotatorProfile:
    """How a simulated annotator corrects a crop and how long it takes.

    Attributes
    ----------
    name : str
        ``careful``, ``hasty`` or ``spammer`` (or a custom name).
    fix_fraction : float
        Share (0..1) of the error units the annotator fixes, drawn at random per unit.
    boundary_noise_px : float
        Amplitude (px) of the outline jitter of painted cells; 0 paints the exact outline.
    tool_probability : float
        Chance (0..1) to call a server tool where one fits: the watershed split on each merged
        cell found, "add a cell here" on each missed cell (the brush when it refuses or outlines
        the cell poorly).
    spam : {"", "unchanged", "empty", "mixed"}
        "" for an honest annotator; a spammer submits the labels unchanged, empty, or either
        (``mixed``, empty with probability ``empty_probability``).
    empty_probability : float
        For ``spam="mixed"``: chance that a submission is empty.
    seconds_base : float
        Seconds to load and inspect a crop.
    seconds_per_cell : float
        Seconds per corrected cell (error unit fixed).
    seconds_per_tool : float
        Seconds per server-tool use (placing the seeds, waiting for the answer).
    time_sigma : float
        Log-normal spread (sigma of the log) of the total time.
    """

    name: str
    fix_fraction: float
    boundary_noise_px: float
    tool_probability: float = 0.0
    spam: str = ""
    empty_probability: float = 0.0
    seconds_base: float = 30.0
    seconds_per_cell: float = 10.0
    seconds_per_tool: float = 4.0
    time_sigma: float = 0.25

    def __post_init__(self):
        for name in ("fix_fraction", "tool_probability", "empty_probability"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"profile {self.name!r}: {name} must be between 0 and 1, got {value}")
        if self.spam not in ("", "unchanged", "empty", "mixed"):
            raise ValueError(f"profile {self.name!r}: spam must be '', 'unchanged', 'empty' or 'mixed'")
        for name in ("boundary_noise_px", "seconds_base", "seconds_per_cell", "seconds_per_tool", "time_sigma"):
            if getattr(self, name) < 0:
                raise ValueError(f"profile {self.name!r}: {name} must be >= 0")

    @property
    def is_spammer(self) -> bool:
        """Whether the profile submits without correcting (``spam`` is set)."""
        return bool(self.spam)


PROFILES: dict[str, AnnotatorProfile] = {
    "careful": AnnotatorProfile("careful", fix_fraction=0.92, boundary_noise_px=0.8, tool_probability=0.6,
                                seconds_base=30.0, seconds_per_cell=8.0, seconds_per_tool=5.0),
    "hasty": AnnotatorProfile("hasty", fix_fraction=0.45, boundary_noise_px=1.6, tool_probability=0.0,
                              seconds_base=15.0, seconds_per_cell=4.0, time_sigma=0.35),
    "spammer": AnnotatorProfile("spammer", fix_fraction=0.0, boundary_noise_px=0.0, spam="mixed",
                                empty_probability=0.35, seconds_base=4.0, seconds_per_cell=0.0,
                                time_sigma=0.4),
}
"""The built-in profiles by name."""


def parse_profiles(spec: str | Sequence[str]) -> list[AnnotatorProfile]:
    """Annotator profiles from ``"careful*2,hasty,spammer"`` (or a list of such items).

    Parameters
    ----------
    spec : str or sequence of str
        Comma-separated names of :data:`PROFILES`, each optionally followed by ``*n`` (or
        ``xn``) for n annotators of that profile.

    Returns
    -------
    list of AnnotatorProfile
        One entry per simulated annotator, in the order given.

    Raises
    ------
    ValueError
        Unknown profile name, bad count, or no annotator at all.
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[AnnotatorProfile] = []
    for raw in items:
        item = str(raw).strip().lower()
        if not item:
            continue
        name, count = item, 1
        for sep in ("*", "x"):
            if sep in item and item.rsplit(sep, 1)[1].isdigit():
                name, n = item.rsplit(sep, 1)
                name, count = name.strip(), int(n)
                break
        if name not in PROFILES:
            raise ValueError(f"unknown annotator profile {name!r}; use {', '.join(PROFILES)} "
                             "(e.g. careful*2,hasty,spammer)")
        if not 1 <= count <= 100:
            raise ValueError(f"profile count for {name!r} must be between 1 and 100, got {count}")
        out += [PROFILES[name]] * count
    if not out:
        raise ValueError("name at least one annotator profile, e.g. careful,hasty,spammer")
    return out


# ------------------------------------------------------------------ what is wrong

@dataclass(frozen=True)
class ErrorUnit:
    """One thing an annotator would fix.

    Attributes
    ----------
    truth_id : int
        The true cell to (re)draw, or 0 for a false cell to delete.
    label_ids : tuple of int
        The unmatched labelled cells involved (overlapping the true cell, or the false cell).
    severity : float
        ``1 - best IoU`` of the true cell (1 for a missed cell), or ``1 - best IoU`` of the false
        cell; in [0, 1], larger is worse.
    """

    truth_id: int
    label_ids: tuple[int, ...]
    severity: float


def _check_pair(labels: np.ndarray, truth: np.ndarray, ndim: int = 2) -> tuple[np.ndarray, np.ndarray]:
    labels, truth = np.asarray(labels), np.asarray(truth)
    if labels.ndim != ndim or labels.shape != truth.shape:
        want = "(h, w)" if ndim == 2 else "(2, h, w)"
        raise ValueError(f"labels {labels.shape} and truth {truth.shape} must both be {want} and of the same shape")
    for name, a in (("labels", labels), ("truth", truth)):
        if a.dtype.kind not in "iu":
            raise ValueError(f"{name} must hold integer ids (int32), got dtype {a.dtype}")
    if ndim == 3 and labels.shape[0] != 2:
        raise ValueError(f"label stacks must hold 2 features (whole_cell, nuclear), got {labels.shape[0]}")
    return labels.astype(np.int32, copy=False), truth.astype(np.int32, copy=False)


def error_units(labels: np.ndarray, truth: np.ndarray, match_iou: float = MATCH_IOU) -> list[ErrorUnit]:
    """Everything in ``labels`` that disagrees with ``truth``, worst first.

    Parameters
    ----------
    labels, truth : np.ndarray, int32, shape (h, w)
        Current labels and ground truth of one feature.
    match_iou : float
        IoU at or above which a cell pair counts as right (default :data:`MATCH_IOU`).

    Returns
    -------
    list of ErrorUnit
        True-cell units (missed / badly outlined / merged / split) and false-cell units, sorted by
        decreasing severity, then by id. Empty when every cell matches one-to-one.
    """
    labels, truth = _check_pair(labels, truth)
    cont = contingency(truth, labels)
    best_truth, best_label = cont.best_iou()
    bad_truth = best_truth < match_iou
    bad_label = best_label < match_iou
    units: list[ErrorUnit] = []
    attached = np.zeros(cont.n_pred, dtype=bool)
    involved = bad_truth[cont.pair_true] & bad_label[cont.pair_pred]
    for t in np.flatnonzero(bad_truth):
        on_t = cont.pair_pred[involved & (cont.pair_true == t)]
        attached[on_t] = True
        units.append(ErrorUnit(int(cont.true_ids[t]), tuple(int(i) for i in cont.pred_ids[on_t]),
                               float(1.0 - best_truth[t])))
    for p in np.flatnonzero(bad_label & ~attached):
        units.append(ErrorUnit(0, (int(cont.pred_ids[p]),), float(1.0 - best_label[p])))
    units.sort(key=lambda u: (-u.severity, u.truth_id, u.label_ids))
    return units


# ------------------------------------------------------------------ brush-like edits

def cells_to_fix(labels: np.ndarray, truth: np.ndarray) -> int:
    """Error units of a (2, H, W) label stack against its (2, H, W) truth, both features: what an
    annotator who fixed everything would fix."""
    return sum(len(error_units(labels[f], np.asarray(truth[f], np.int32))) for f in range(2))


def jitter_mask(mask: np.ndarray, noise_px: float, rng: np.random.Generator) -> np.ndarray:
    """A hand-drawn copy of ``mask``: its outline moved in and out by up to ``noise_px``.

    The signed distance to the outline is thresholded at a smooth random offset (correlation
    length about 3 px), so the outline wobbles like a brush stroke; only the largest connected
    piece is kept, and the exact mask is returned if the jitter would erase it.

    Parameters
    ----------
    mask : np.ndarray, bool, shape (h, w)
        The exact cell; should have at least ``ceil(noise_px) + 1`` px of margin to grow into.
    noise_px : float
        Maximum outline displacement in pixels (0: the mask itself).
    rng : np.random.Generator

    Returns
    -------
    np.ndarray, bool, shape (h, w)
    """
    mask = np.asarray(mask, dtype=bool)
    if noise_px <= 0 or not mask.any():
        return mask.copy()
    inside = ndi.distance_transform_edt(mask)
    outside = ndi.distance_transform_edt(~mask)
    signed = np.where(mask, inside - 0.5, 0.5 - outside)
    field = ndi.gaussian_filter(rng.standard_normal(mask.shape), 3.0, mode="nearest")
    spread = field.std()
    if spread > 0:
        field /= spread
    offset = np.clip(0.6 * noise_px * field, -noise_px, noise_px)
    drawn = signed > offset
    pieces, n = ndi.label(drawn)
    if n == 0:
        return mask.copy()
    if n > 1:
        sizes = np.bincount(pieces.ravel())
        sizes[0] = 0
        drawn = pieces == int(np.argmax(sizes))
    return drawn


def _boxes(labels: np.ndarray) -> dict[int, tuple[slice, slice]]:
    """Bounding slices of every cell of ``labels`` (any ids), by id."""
    ids, inverse = np.unique(labels, return_inverse=True)
    dense = inverse.reshape(labels.shape)
    if ids[0] != 0:
        dense = dense + 1
        ids = np.concatenate([[0], ids])
    slices = ndi.find_objects(dense.astype(np.int32))
    return {int(i): s for i, s in zip(ids[1:], slices) if s is not None}


def _union(box_a: tuple[slice, slice] | None, box_b: tuple[slice, slice]) -> tuple[slice, slice]:
    if box_a is None:
        return box_b
    return (slice(min(box_a[0].start, box_b[0].start), max(box_a[0].stop, box_b[0].stop)),
            slice(min(box_a[1].start, box_b[1].start), max(box_a[1].stop, box_b[1].stop)))


def _pad(box: tuple[slice, slice], margin: int, shape: tuple[int, int]) -> tuple[slice, slice]:
    return (slice(max(0, box[0].start - margin), min(shape[0], box[0].stop + margin)),
            slice(max(0, box[1].start - margin), min(shape[1], box[1].stop + margin)))


def apply_fixes(labels: np.ndarray, truth: np.ndarray, units: Sequence[ErrorUnit], *,
                noise_px: float = 0.0, rng: np.random.Generator | None = None,
                next_id: int | None = None) -> tuple[np.ndarray, int]:
    """Fix ``units`` with brush-like edits: paint true cells, trim leftovers, delete false cells.

    For a true-cell unit the true cell is painted with a fresh id (jittered by ``noise_px``; the
    jitter never paints over cells other than the unit's own), then the unit's wrong cells lose
    their pixels that lie on true background, and leftovers under :data:`MIN_REMNANT_PX` px are
    erased. Pixels of a wrong cell on *another* true cell stay (they belong to that cell's unit).
    A false-cell unit is deleted.

    Parameters
    ----------
    labels, truth : np.ndarray, int32, shape (h, w)
        One feature's current labels and ground truth.
    units : sequence of ErrorUnit
        From :func:`error_units` of the same arrays (usually a subset).
    noise_px : float
        Boundary noise of the painted outlines (0 for an exact expert fix).
    rng : np.random.Generator or None
        Needed when ``noise_px > 0``.
    next_id : int or None
        First id for painted cells (default: ``max(labels) + 1``).

    Returns
    -------
    labels : np.ndarray, int32, shape (h, w)
        A new array; the input is not modified.
    next_id : int
        The next unused id.
    """
    labels, truth = _check_pair(labels, truth)
    out = labels.copy()
    if not units:
        return out, int(next_id if next_id is not None else (out.max(initial=0) + 1))
    if noise_px > 0 and rng is None:
        raise ValueError("apply_fixes needs an rng when noise_px > 0")
    next_id = int(out.max(initial=0)) + 1 if next_id is None else int(next_id)
    truth_boxes = _boxes(truth)
    label_boxes = _boxes(labels)
    margin = int(math.ceil(noise_px)) + 2
    for unit in units:
        box = truth_boxes.get(unit.truth_id) if unit.truth_id else None
        for lid in unit.label_ids:
            if lid in label_boxes:
                box = _union(box, label_boxes[lid])
        if box is None:
            continue
        win = _pad(box, margin, out.shape)
        local, true_local = out[win], truth[win]
        wrong = np.isin(local, unit.label_ids) if unit.label_ids else np.zeros(local.shape, bool)
        if unit.truth_id == 0:
            local[wrong] = 0
            continue
        if next_id > _INT32_MAX:
            raise ValueError("no free int32 label id left for a new cell")
        cell = true_local == unit.truth_id
        drawn = jitter_mask(cell, noise_px, rng) if noise_px > 0 else cell
        free = cell | wrong | (local == 0)
        local[drawn & free] = next_id
        next_id += 1
        trim = wrong & ~drawn & (true_local == 0)
        local[trim] = 0
        for lid in unit.label_ids:  # tiny leftovers of the wrong cells go too
            left = local == lid
            if 0 < int(left.sum()) < MIN_REMNANT_PX:  # the window holds the whole cell
                local[left] = 0
    return out, next_id


# ------------------------------------------------------------------ server tool requests

@dataclass(frozen=True)
class SplitRequest:
    """A merged cell to split with the server's watershed tool.

    Attributes
    ----------
    label : int
        The labelled cell that covers two or more true cells.
    seeds : tuple of (int, int)
        One (y, x) crop pixel per true cell, on the labelled cell, at the most interior point of
        the overlap.
    bbox : tuple of int
        (y0, x0, y1, x1), half-open crop pixels: the cell's bounding box padded by 2 px.
    """

    label: int
    seeds: tuple[tuple[int, int], ...]
    bbox: tuple[int, int, int, int]


def merged_cells(labels: np.ndarray, truth: np.ndarray, min_share: float = 0.5,
                 min_px: int = MIN_REMNANT_PX) -> list[SplitRequest]:
    """Labelled cells that merge two or more true cells, with one seed per true cell.

    A true cell counts as merged into a labelled cell when at least ``min_share`` of its area
    and at least ``min_px`` pixels lie inside it.

    Parameters
    ----------
    labels, truth : np.ndarray, int32, shape (h, w)
        One feature's labels and ground truth.
    min_share : float
    min_px : int

    Returns
    -------
    list of SplitRequest
        Sorted by label id.
    """
    labels, truth = _check_pair(labels, truth)
    cont = contingency(truth, labels)
    share = cont.pair_area / np.maximum(cont.true_area[cont.pair_true], 1)
    inside = (share >= min_share) & (cont.pair_area >= min_px)
    counts = np.bincount(cont.pair_pred[inside], minlength=cont.n_pred)
    label_boxes = _boxes(labels)
    requests = []
    for p in np.flatnonzero(counts >= 2):
        lid = int(cont.pred_ids[p])
        win = _pad(label_boxes[lid], 2, labels.shape)
        cell = labels[win] == lid
        seeds = []
        for t in cont.pair_true[inside & (cont.pair_pred == p)]:
            overlap = cell & (truth[win] == cont.true_ids[t])
            depth = ndi.distance_transform_edt(overlap)
            y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
            seeds.append((int(y + win[0].start), int(x + win[1].start)))
        requests.append(SplitRequest(lid, tuple(seeds), (win[0].start, win[1].start, win[0].stop, win[1].stop)))
    return requests


@dataclass(frozen=True)
class AddCellRequest:
    """A missed cell to add with the server's "add a cell here" tool.

    Attributes
    ----------
    truth_id : int
        The true cell no labelled cell covers.
    point : (int, int)
        The click, (y, x) crop pixels: the unlabelled pixel of the cell farthest from its edge
        (where a person clicks: the middle of what is not outlined yet).
    bbox : tuple of int
        (y0, x0, y1, x1), half-open crop pixels: the click ± ``half`` px, clipped, as the editor
        sends it.
    """

    truth_id: int
    point: tuple[int, int]
    bbox: tuple[int, int, int, int]


def missed_cells(labels: np.ndarray, truth: np.ndarray, half: int = 48,
                 min_share: float = 0.5, min_px: int = MIN_REMNANT_PX) -> list[AddCellRequest]:
    """True cells the labels miss, with the click that asks the server to add each.

    A true cell is missed when no labelled cell matches it (IoU < :data:`MATCH_IOU`) and at least
    ``min_share`` of it and at least ``min_px`` pixels are unlabelled.

    Parameters
    ----------
    labels, truth : np.ndarray, int32, shape (h, w)
        One feature's labels and ground truth.
    half : int
        Half side (px) of the box sent with the click (the editor's: 48).
    min_share : float
    min_px : int

    Returns
    -------
    list of AddCellRequest
        Sorted by true id.
    """
    labels, truth = _check_pair(labels, truth)
    cont = contingency(truth, labels)
    best_truth, _ = cont.best_iou()
    free = labels == 0
    boxes = _boxes(truth)
    requests = []
    for t in np.flatnonzero(best_truth < MATCH_IOU):
        tid = int(cont.true_ids[t])
        win = _pad(boxes[tid], 1, truth.shape)
        open_part = (truth[win] == tid) & free[win]
        n_open = int(open_part.sum())
        if n_open < min_px or n_open < min_share * cont.true_area[t]:
            continue
        depth = ndi.distance_transform_edt(open_part)
        y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
        y, x = int(y + win[0].start), int(x + win[1].start)
        bbox = (max(0, y - half), max(0, x - half), min(truth.shape[0], y + half + 1), min(truth.shape[1], x + half + 1))
        requests.append(AddCellRequest(tid, (y, x), bbox))
    return requests


def accepts_added_cell(added: np.ndarray, truth_cell: np.ndarray) -> bool:
    """Whether an annotator keeps the cell the tool drew: IoU with the true cell >= :data:`MATCH_IOU`
    (a person sees the image as the truth describes it); otherwise they paint the cell instead."""
    added, truth_cell = np.asarray(added, bool), np.asarray(truth_cell, bool)
    union = int((added | truth_cell).sum())
    return union > 0 and int((added & truth_cell).sum()) / union >= MATCH_IOU


# ------------------------------------------------------------------ one annotator on one crop

@dataclass
class Correction:
    """What a simulated annotator does to a crop.

    Attributes
    ----------
    checkpoints : list of np.ndarray
        (2, h, w) int32 label stacks in the order they would be autosaved; the last one is
        submitted. Empty when the annotator submits without saving (unchanged spam).
    fixed_cells : int
        Error units fixed (the effort model's cell count).
    strokes : int
        Edits as the editor counts them (paint + trim for a redraw, one for a delete).
    """

    checkpoints: list[np.ndarray] = field(default_factory=list)
    fixed_cells: int = 0
    strokes: int = 0

    @property
    def final(self) -> np.ndarray | None:
        """The (2, h, w) int32 labels submitted, or None when nothing was saved (unchanged)."""
        return self.checkpoints[-1] if self.checkpoints else None


def correct_crop(start: np.ndarray, truth: np.ndarray, profile: AnnotatorProfile,
                 rng: np.random.Generator) -> Correction:
    """Simulate ``profile`` correcting the labels ``start`` of one crop towards ``truth``.

    Honest profiles fix each error unit of each feature with probability ``fix_fraction``
    (whole-cell first, autosaved, then nuclear); spammers submit the labels unchanged (no
    revision at all) or an empty stack.

    Parameters
    ----------
    start : np.ndarray, int32, shape (2, h, w)
        The labels the task opened with (after any server-tool edits already applied).
    truth : np.ndarray, int32, shape (2, h, w)
        Ground truth of the same crop.
    profile : AnnotatorProfile
    rng : np.random.Generator

    Returns
    -------
    Correction
    """
    start, truth = _check_pair(start, truth, ndim=3)
    if profile.is_spammer:
        empty = profile.spam == "empty" or (profile.spam == "mixed" and rng.random() < profile.empty_probability)
        if empty:
            return Correction([np.zeros_like(start)], fixed_cells=0, strokes=1)
        return Correction([], fixed_cells=0, strokes=0)
    current = start.copy()
    checkpoints, fixed, strokes = [], 0, 0
    next_id = int(start.max(initial=0)) + 1
    for f in range(2):
        units = error_units(current[f], truth[f])
        chosen = [u for u in units if rng.random() < profile.fix_fraction]
        if chosen:
            current[f], next_id = apply_fixes(current[f], truth[f], chosen, noise_px=profile.boundary_noise_px,
                                              rng=rng, next_id=next_id)
            fixed += len(chosen)
            strokes += sum(2 if u.truth_id and u.label_ids else 1 for u in chosen)
            checkpoints.append(current.copy())
    return Correction(checkpoints, fixed_cells=fixed, strokes=strokes)


def active_seconds(profile: AnnotatorProfile, fixed_cells: int, tool_calls: int,
                   rng: np.random.Generator) -> float:
    """Simulated active time on one crop, in seconds.

    ``(seconds_base + seconds_per_cell * fixed_cells + seconds_per_tool * tool_calls)`` times a
    log-normal factor with median 1 and log-sigma ``time_sigma``; at least 1 s, at most a day.

    Parameters
    ----------
    profile : AnnotatorProfile
    fixed_cells : int
        Cells corrected (>= 0).
    tool_calls : int
        Server tools used (>= 0).
    rng : np.random.Generator

    Returns
    -------
    float
        Seconds.
    """
    if fixed_cells < 0 or tool_calls < 0:
        raise ValueError("fixed_cells and tool_calls must be >= 0")
    mean = profile.seconds_base + profile.seconds_per_cell * fixed_cells + profile.seconds_per_tool * tool_calls
    factor = float(np.exp(rng.normal(0.0, profile.time_sigma))) if profile.time_sigma > 0 else 1.0
    return float(min(max(mean * factor, 1.0), 86400.0))


# ------------------------------------------------------------------ the expert reviewer

@dataclass(frozen=True)
class ReviewScore:
    """Object F1 (IoU >= 0.5) of an image's labels against ground truth, per feature."""

    whole_cell_f1: float
    nuclear_f1: float

    @property
    def value(self) -> float:
        """The approval figure: the worse of the two features."""
        return min(self.whole_cell_f1, self.nuclear_f1)


def score_labels(labels: np.ndarray, truth: np.ndarray) -> ReviewScore:
    """Score a (2, H, W) int32 label stack against its (2, H, W) ground truth.

    Returns
    -------
    ReviewScore
    """
    labels, truth = _check_pair(labels, truth, ndim=3)
    return ReviewScore(float(object_metrics(truth[0], labels[0]).f1), float(object_metrics(truth[1], labels[1]).f1))


def crops_to_redo(labels: np.ndarray, truth: np.ndarray, windows: Sequence[tuple[int, int, int, int]],
                  min_f1: float) -> list[tuple[int, float]]:
    """Crops whose part of the image is so wrong that the crowd should redo it.

    Parameters
    ----------
    labels, truth : np.ndarray, int32, shape (2, H, W)
        The stitched labels and the ground truth of the image.
    windows : sequence of (y0, x0, y1, x1)
        The crops, half-open image pixels.
    min_f1 : float
        A crop is returned when its :class:`ReviewScore` value (inside the window) is below this.

    Returns
    -------
    list of (int, float)
        (index into ``windows``, the crop's score), in window order.
    """
    labels, truth = _check_pair(labels, truth, ndim=3)
    out = []
    for i, (y0, x0, y1, x1) in enumerate(windows):
        part = (slice(None), slice(y0, y1), slice(x0, x1))
        if not truth[part].any() and not labels[part].any():
            continue
        value = score_labels(labels[part], truth[part]).value
        if value < min_f1:
            out.append((i, value))
    return out


def fix_worst_cells(labels: np.ndarray, truth: np.ndarray, target_f1: float,
                    chunks: int = 10) -> tuple[np.ndarray, int]:
    """The expert's repair: fix the worst error units exactly until the image reaches ``target_f1``.

    Units are taken worst first, feature by feature (the worse-scoring feature first), about a
    ``1/chunks`` share of the remaining units at a time, and the score is re-checked after each
    chunk, so the expert stops as soon as the image is good enough.

    Parameters
    ----------
    labels, truth : np.ndarray, int32, shape (2, H, W)
    target_f1 : float
        The approval figure to reach (:attr:`ReviewScore.value`).
    chunks : int
        How many steps the error list is cut into.

    Returns
    -------
    labels : np.ndarray, int32, shape (2, H, W)
        A new array.
    n_fixed : int
        Error units fixed.
    """
    labels, truth = _check_pair(labels, truth, ndim=3)
    out = labels.copy()
    n_fixed = 0
    next_id = int(out.max(initial=0)) + 1
    for _ in range(4 * chunks):
        score = score_labels(out, truth)
        if score.value >= target_f1:
            break
        f = 0 if score.whole_cell_f1 <= score.nuclear_f1 else 1
        units = error_units(out[f], truth[f])
        if not units:
            other = 1 - f
            units, f = error_units(out[other], truth[other]), other
            if not units:
                break
        step = units[: max(1, math.ceil(len(units) / chunks))]
        out[f], next_id = apply_fixes(out[f], truth[f], step, next_id=next_id)
        n_fixed += len(step)
    return out, n_fixed


# ------------------------------------------------------------------ the admin's quality check

def gold_gain(start: np.ndarray, submitted: np.ndarray, gold: np.ndarray, perfect: float = 0.99) -> float | None:
    """How much of the possible improvement a submission made on a gold crop, against gold:
    (score(submitted) - score(start)) / (1 - score(start)).

    The score is the mean of the whole-cell and nuclear object F1. The platform can compute this
    from its own rows (the crop's starting labels, the submission, the gold labels); unlike the
    plain gold accuracy it does not reward a spammer for a good model's prediction, and unlike
    the plain difference it does not punish an honest annotator for a good model leaving little
    to fix (a gain of 0.02 is most of the work on a crop that started at 0.97).

    Parameters
    ----------
    start, submitted, gold : np.ndarray, int32, shape (2, h, w)
        The labels the task opened with, the labels submitted, the expert's labels.
    perfect : float
        A crop whose starting score is at least this tells nothing about the annotator.

    Returns
    -------
    float or None
        At most 1 (every error fixed); 0: nothing gained; negative: made worse. None when the
        starting labels were already (nearly) perfect.
    """
    before = score_labels(start, gold)
    if 0.5 * (before.whole_cell_f1 + before.nuclear_f1) >= perfect:
        return None
    after = score_labels(submitted, gold)
    start_score = 0.5 * (before.whole_cell_f1 + before.nuclear_f1)
    return float((0.5 * (after.whole_cell_f1 + after.nuclear_f1) - start_score) / (1.0 - start_score))


def flag_annotators(gains: dict[str, list[float]], min_gain: float = 0.05) -> list[str]:
    """Workers who do not improve the gold crops they annotate: the ones an admin would block.

    Parameters
    ----------
    gains : dict of str to list of float
        Worker id → :func:`gold_gain` of each of their gold tasks (None entries are ignored;
        a worker without any figure is never flagged).
    min_gain : float
        A worker whose mean gain is below this is flagged (an honest annotator fixes at least
        a twentieth of what was wrong on a crop that needed fixing).

    Returns
    -------
    list of str
        Flagged worker ids, worst (lowest mean gain) first.
    """
    means = {}
    for worker, values in gains.items():
        known = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        if known:
            means[worker] = float(np.mean(known))
    return sorted((w for w, m in means.items() if m < min_gain), key=lambda w: (means[w], w))
