"""Object-level segmentation metrics: matching, error types, precision/recall/F1, AP, Jaccard.

:func:`contingency` scans the pixels once for runs of equal (true id, predicted id) pairs and
counts object areas and the sparse table of intersections; IoU, matches and error types are
computed on that table only, never on a dense ``n_true x n_pred`` matrix. Label images are
integer arrays of equal shape; 0 is background, every other value (any integer: non-sequential,
negative, up to the int32 range and beyond) is one object.

Matches and rates (StarDist / Cellpose convention). At an IoU threshold ``t`` a *match* (TP) is
a 1-to-1 pairing of a true and a predicted object with ``IoU >= t``, chosen to maximise the
number of pairs (then their total IoU). For ``t > 0.5`` an object has at most one partner with
``IoU >= t``, so the pairing is unique; otherwise linear assignment runs on each connected
component of candidate pairs larger than 1 x 1. With FP = n_pred - TP and FN = n_true - TP::

    precision = TP / n_pred,  recall = TP / n_true,  F1 = 2 TP / (n_true + n_pred)
    AP(t) = TP(t) / (TP(t) + FP(t) + FN(t)),  mAP = mean AP(t) for t = 0.50, 0.55, ..., 0.95

When both images are empty every rate (and the mean matched IoU) is 1 by convention; when only
one is empty they are 0. The mean matched IoU is 0 whenever nothing matches.

Error types (the matching rule). A true object T and a predicted object P are *linked* when at
least half of the smaller lies inside the other (``|T & P| >= 0.5 * min(|T|, |P|)``) or when
``IoU(T, P) >= iou_threshold``. Each connected component of the link graph, by its number of
(true, predicted) objects, is one event: (1, 0) missed; (0, 1) gained; (1, 1) correct if the IoU
is >= iou_threshold, else one missed and one gained; (1, >=2) split; (>=2, 1) merge; (>=2, >=2)
catastrophe. Counts are events: a merge of two cells is ONE merge, a split ONE split.

This departs on purpose from the reference (deepcell-toolbox ``ObjectMetrics``, Greenwald et al.
2021, "Classifying error types"), which first assigns pairs by linear assignment on IoU (cost
cutoff 0.4) and groups only the left-overs by IoU >= 0.1: a prediction covering two true cells
has IoU near or above 0.5 with the larger one, so that pair is taken as a correct detection and
the other cell as a miss. Here both cells lie inside the prediction, both are linked to it, and
the component is one merge (likewise for splits). A small prediction lying mostly inside a true
cell that another prediction matches makes that cell a split.

:func:`aggregate` pools images: it sums objects, TP(t), intersections and unions and recomputes
every rate from the sums (a micro average), which equals the metric of one image holding all the
images side by side.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components

AP_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
"""IoU thresholds 0.50:0.05:0.95 over which ``map`` averages AP."""

LINK_FRACTION = 0.5
"""Fraction of the smaller object that must lie inside the other for the two to be linked."""

ERROR_KINDS: tuple[str, ...] = ("correct", "missed", "gained", "split", "merge", "catastrophe")
"""Names of the codes in :class:`ErrorTypes` ``true_kind`` / ``pred_kind``."""

_CORRECT, _MISSED, _GAINED, _SPLIT, _MERGE, _CATASTROPHE, _POOR = range(7)


@dataclass(frozen=True)
class Contingency:
    """Sparse overlap table of two label images.

    Objects are indexed 0..n-1 in ascending order of their label id.

    Attributes
    ----------
    true_ids, pred_ids : np.ndarray, shape (n_true,), (n_pred,)
        Label ids present in each image, ascending (background 0 excluded).
    true_area, pred_area : np.ndarray of int64, shape (n_true,), (n_pred,)
        Object areas in pixels.
    pair_true, pair_pred : np.ndarray of int64, shape (n_pairs,)
        Object indices of every (true, predicted) pair sharing at least one pixel, sorted by
        (true, pred).
    pair_area : np.ndarray of int64, shape (n_pairs,)
        Intersection of each pair in pixels.
    """

    true_ids: np.ndarray
    pred_ids: np.ndarray
    true_area: np.ndarray
    pred_area: np.ndarray
    pair_true: np.ndarray
    pair_pred: np.ndarray
    pair_area: np.ndarray

    @property
    def n_true(self) -> int:
        """Number of true objects."""
        return int(self.true_ids.size)

    @property
    def n_pred(self) -> int:
        """Number of predicted objects."""
        return int(self.pred_ids.size)

    def iou(self) -> np.ndarray:
        """IoU of every overlapping pair, float64 of shape (n_pairs,), values in (0, 1]."""
        union = self.true_area[self.pair_true] + self.pred_area[self.pair_pred] - self.pair_area
        return self.pair_area / union

    def best_iou(self) -> tuple[np.ndarray, np.ndarray]:
        """Each object's best IoU with any object of the other image (0 when it overlaps none).

        Returns
        -------
        (ndarray, ndarray)
            float64 of shape (n_true,) and (n_pred,), aligned with ``true_ids`` / ``pred_ids``.
        """
        best_true, best_pred = np.zeros(self.n_true), np.zeros(self.n_pred)
        if self.pair_area.size:
            iou = self.iou()
            np.maximum.at(best_true, self.pair_true, iou)
            np.maximum.at(best_pred, self.pair_pred, iou)
        return best_true, best_pred

    @property
    def fg_intersection(self) -> int:
        """Pixels that are foreground in both images."""
        return int(self.pair_area.sum())

    @property
    def fg_union(self) -> int:
        """Pixels that are foreground in either image."""
        return int(self.true_area.sum() + self.pred_area.sum()) - self.fg_intersection


@dataclass(frozen=True)
class ErrorTypes:
    """Error-type counts and per-object classification (see the module docstring for the rule).

    Attributes
    ----------
    correct, missed, gained, split, merge, catastrophe : int
        Number of events: correct pairs, missed true objects, gained predicted objects, split /
        merge / catastrophe components.
    true_kind, pred_kind : np.ndarray of int8, shape (n_true,), (n_pred,)
        Per-object index into :data:`ERROR_KINDS` (a true object is never "gained", a predicted
        one never "missed").
    """

    correct: int
    missed: int
    gained: int
    split: int
    merge: int
    catastrophe: int
    true_kind: np.ndarray
    pred_kind: np.ndarray


@dataclass(frozen=True)
class ObjectMetrics:
    """Object metrics of one image, or pooled over images by :func:`aggregate`.

    Counts are events (module docstring); rates are floats in [0, 1]. ``precision``, ``recall``,
    ``f1`` and ``mean_matched_iou`` come from the 1-to-1 matches at ``iou_threshold`` (``tp`` of
    them, with IoUs summing to ``matched_iou_sum``); ``jaccard`` is foreground IoU over pixels
    (``fg_intersection / fg_union``); ``ap_tp[i]`` is TP at ``ap_thresholds[i]``, from which
    ``ap50`` (AP at 0.5) and ``map`` (mean AP) are computed.
    """

    n_true: int
    n_pred: int
    correct: int
    missed: int
    gained: int
    split: int
    merge: int
    catastrophe: int
    precision: float
    recall: float
    f1: float
    jaccard: float
    ap50: float
    map: float
    mean_matched_iou: float
    iou_threshold: float
    tp: int
    matched_iou_sum: float
    fg_intersection: int
    fg_union: int
    ap_thresholds: tuple[float, ...]
    ap_tp: tuple[int, ...]

    @property
    def pq(self) -> float:
        """Panoptic quality (Kirillov et al. 2019): ``f1 × mean_matched_iou``, detection and
        outline quality in one figure (what an annotator has to fix is both)."""
        return float(self.f1 * self.mean_matched_iou)

    def ap(self) -> dict[float, float]:
        """AP at each threshold of ``ap_thresholds``: ``{threshold: AP}``."""
        return {t: _ap(self.n_true, self.n_pred, tp)
                for t, tp in zip(self.ap_thresholds, self.ap_tp)}

    def as_dict(self) -> dict:
        """Plain JSON-serialisable dict of every field, plus ``"ap"``: ``{"0.50": AP, ...}``."""
        out = dataclasses.asdict(self)
        out["ap_thresholds"] = list(self.ap_thresholds)
        out["ap_tp"] = list(self.ap_tp)
        out["ap"] = {f"{t:.2f}": v for t, v in self.ap().items()}
        out["pq"] = self.pq
        return out


def _check_labels(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.dtype.kind not in "iub":
            raise ValueError(
                f"{name} has dtype {y.dtype}; label images must hold integer ids "
                "(convert with .astype(np.int32) if the values are whole numbers)")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}; "
                         "compare label images of the same region")
    if y_true.dtype.kind == "b":
        y_true = y_true.view(np.uint8)
    if y_pred.dtype.kind == "b":
        y_pred = y_pred.view(np.uint8)
    return y_true, y_pred


def _objects(values: np.ndarray, run_len: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids (n,), dense codes of the runs (0 background, 1..n by ascending id), areas (n,) int64."""
    ids, inverse = np.unique(values, return_inverse=True)
    is_object = ids != 0
    code = np.cumsum(is_object) * is_object
    dense = code[inverse.ravel()]
    area = np.bincount(dense, weights=run_len, minlength=int(is_object.sum()) + 1)[1:]
    return ids[is_object], dense, np.rint(area).astype(np.int64)


def contingency(y_true: np.ndarray, y_pred: np.ndarray) -> Contingency:
    """Count object areas and pairwise intersections of two label images in one pass.

    The pixels are scanned once for runs of equal (true, predicted) pairs (label images are
    piecewise constant); ids are then made dense and pairs counted over the runs only.

    Parameters
    ----------
    y_true, y_pred : np.ndarray, integer, same shape (usually (H, W))
        Label images; 0 is background, any other value is an object id.

    Returns
    -------
    Contingency
        Ids, areas (pixels) and the sparse table of intersections (pixels).

    Raises
    ------
    ValueError
        If the shapes differ or a dtype is not integer.
    """
    y_true, y_pred = _check_labels(y_true, y_pred)
    flat_true, flat_pred = y_true.ravel(), y_pred.ravel()
    n = flat_true.size
    change = np.ones(n, bool)
    if n:
        np.not_equal(flat_true[1:], flat_true[:-1], out=change[1:])
        change[1:] |= flat_pred[1:] != flat_pred[:-1]
    starts = np.flatnonzero(change)
    run_len = np.diff(np.append(starts, n))
    true_ids, run_true, true_area = _objects(flat_true[starts], run_len)
    pred_ids, run_pred, pred_area = _objects(flat_pred[starts], run_len)
    both = (run_true > 0) & (run_pred > 0)
    stride = pred_ids.size + 1
    pair_key, inverse = np.unique(run_true[both].astype(np.int64) * stride + run_pred[both],
                                  return_inverse=True)
    pair_area = np.bincount(inverse.ravel(), weights=run_len[both], minlength=pair_key.size)
    return Contingency(
        true_ids=true_ids, pred_ids=pred_ids, true_area=true_area, pred_area=pred_area,
        pair_true=pair_key // stride - 1, pair_pred=pair_key % stride - 1,
        pair_area=np.rint(pair_area).astype(np.int64))


def _check_threshold(threshold: float) -> float:
    threshold = float(threshold)
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"IoU threshold {threshold} is outside (0, 1]; use e.g. 0.5")
    return threshold


def match_objects(cont: Contingency, threshold: float = 0.5,
                  iou: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1-to-1 matches with IoU >= threshold, maximising their number (then their total IoU).

    Parameters
    ----------
    cont : Contingency
        Overlap table from :func:`contingency`.
    threshold : float, in (0, 1]
        Minimum IoU of a match.
    iou : np.ndarray of float64, shape (n_pairs,), optional
        ``cont.iou()``, when the caller already has it.

    Returns
    -------
    true_index, pred_index : np.ndarray of int64, shape (n_matches,)
        Object indices (into ``cont.true_ids`` / ``cont.pred_ids``) of the matched pairs.
    match_iou : np.ndarray of float64, shape (n_matches,)
        IoU of each match.
    """
    threshold = _check_threshold(threshold)
    iou = cont.iou() if iou is None else iou
    keep = iou >= threshold
    pt, pp, w = cont.pair_true[keep], cont.pair_pred[keep], iou[keep]
    deg_t = np.bincount(pt, minlength=cont.n_true)
    deg_p = np.bincount(pp, minlength=cont.n_pred)
    simple = (deg_t[pt] == 1) & (deg_p[pp] == 1)  # isolated pairs: always in the best matching
    out_t, out_p, out_w = [pt[simple]], [pp[simple]], [w[simple]]
    rest = ~simple
    if rest.any():
        rt, rp, rw = pt[rest], pp[rest], w[rest]
        n = cont.n_true + cont.n_pred
        graph = sparse.coo_matrix((np.ones(rt.size), (rt, cont.n_true + rp)), shape=(n, n))
        _, component = connected_components(graph, directed=False)
        order = np.argsort(component[rt], kind="stable")
        bounds = np.flatnonzero(np.diff(component[rt][order])) + 1
        for edges in np.split(order, bounds):
            rows, r_inv = np.unique(rt[edges], return_inverse=True)
            cols, c_inv = np.unique(rp[edges], return_inverse=True)
            pair_iou = np.zeros((rows.size, cols.size))
            pair_iou[r_inv, c_inv] = rw[edges]
            # count first (each match is worth 1), total IoU second (worth < 1 in all)
            gain = np.where(pair_iou > 0, 1.0 + pair_iou / (2 * min(rows.size, cols.size)), 0.0)
            r, c = linear_sum_assignment(gain, maximize=True)
            ok = gain[r, c] > 0
            out_t.append(rows[r[ok]])
            out_p.append(cols[c[ok]])
            out_w.append(pair_iou[r[ok], c[ok]])
    return np.concatenate(out_t), np.concatenate(out_p), np.concatenate(out_w)


def error_types(cont: Contingency, iou_threshold: float = 0.5,
                iou: np.ndarray | None = None) -> ErrorTypes:
    """Classify every object as correct, missed, gained, split, merge or catastrophe.

    Parameters
    ----------
    cont : Contingency
        Overlap table from :func:`contingency`.
    iou_threshold : float, in (0, 1]
        Minimum IoU of a correct 1-to-1 pair; pairs at or above it are always linked.
    iou : np.ndarray of float64, shape (n_pairs,), optional
        ``cont.iou()``, when the caller already has it.

    Returns
    -------
    ErrorTypes
        Event counts and per-object kinds, by the rule in the module docstring.
    """
    iou_threshold = _check_threshold(iou_threshold)
    iou = cont.iou() if iou is None else iou
    n_t, n_p = cont.n_true, cont.n_pred
    smaller = np.minimum(cont.true_area[cont.pair_true], cont.pred_area[cont.pair_pred])
    link = (cont.pair_area >= LINK_FRACTION * smaller) | (iou >= iou_threshold)
    lt, lp = cont.pair_true[link], cont.pair_pred[link]
    n = n_t + n_p
    if n == 0:
        empty = np.zeros(0, np.int8)
        return ErrorTypes(0, 0, 0, 0, 0, 0, empty, empty)
    graph = sparse.coo_matrix((np.ones(lt.size), (lt, n_t + lp)), shape=(n, n))
    n_comp, component = connected_components(graph, directed=False)
    comp_t, comp_p = component[:n_t], component[n_t:]
    nt_c = np.bincount(comp_t, minlength=n_comp)
    np_c = np.bincount(comp_p, minlength=n_comp)
    comp_iou = np.zeros(n_comp)
    comp_iou[comp_t[lt]] = iou[link]  # a (1, 1) component has exactly one link
    kind = np.full(n_comp, _CATASTROPHE, np.int8)
    kind[(nt_c == 1) & (np_c == 0)] = _MISSED
    kind[(nt_c == 0) & (np_c == 1)] = _GAINED
    one_one = (nt_c == 1) & (np_c == 1)
    kind[one_one] = np.where(comp_iou[one_one] >= iou_threshold, _CORRECT, _POOR)
    kind[(nt_c == 1) & (np_c >= 2)] = _SPLIT
    kind[(nt_c >= 2) & (np_c == 1)] = _MERGE
    true_kind, pred_kind = kind[comp_t], kind[comp_p]
    true_kind[true_kind == _POOR] = _MISSED
    pred_kind[pred_kind == _POOR] = _GAINED
    events = np.bincount(kind, minlength=7)
    return ErrorTypes(
        correct=int(events[_CORRECT]),
        missed=int(np.count_nonzero(true_kind == _MISSED)),
        gained=int(np.count_nonzero(pred_kind == _GAINED)),
        split=int(events[_SPLIT]), merge=int(events[_MERGE]),
        catastrophe=int(events[_CATASTROPHE]),
        true_kind=true_kind, pred_kind=pred_kind)


def _ap(n_true: int, n_pred: int, tp: int) -> float:
    denominator = n_true + n_pred - tp
    return 1.0 if denominator == 0 else tp / denominator


def _assemble(n_true: int, n_pred: int, counts: dict[str, int], tp: int, matched_iou_sum: float,
              fg_intersection: int, fg_union: int, iou_threshold: float,
              ap_thresholds: tuple[float, ...], ap_tp: tuple[int, ...]) -> ObjectMetrics:
    both_empty = n_true == 0 and n_pred == 0
    ap = [_ap(n_true, n_pred, k) for k in ap_tp]
    return ObjectMetrics(
        n_true=n_true, n_pred=n_pred, **counts,
        precision=1.0 if both_empty else (tp / n_pred if n_pred else 0.0),
        recall=1.0 if both_empty else (tp / n_true if n_true else 0.0),
        f1=1.0 if both_empty else 2 * tp / (n_true + n_pred),
        jaccard=1.0 if fg_union == 0 else fg_intersection / fg_union,
        ap50=dict(zip(ap_thresholds, ap)).get(0.5, float("nan")),
        map=float(np.mean(ap)) if ap else float("nan"),
        mean_matched_iou=1.0 if both_empty else (matched_iou_sum / tp if tp else 0.0),
        iou_threshold=iou_threshold, tp=tp, matched_iou_sum=matched_iou_sum,
        fg_intersection=fg_intersection, fg_union=fg_union,
        ap_thresholds=ap_thresholds, ap_tp=ap_tp)


def metrics_from_contingency(cont: Contingency, iou_threshold: float = 0.5) -> ObjectMetrics:
    """:func:`object_metrics` on an overlap table already computed by :func:`contingency`."""
    iou_threshold = _check_threshold(iou_threshold)
    iou = cont.iou()
    errors = error_types(cont, iou_threshold, iou=iou)
    counts = {k: getattr(errors, k) for k in ERROR_KINDS}
    ap_tp = tuple(int(match_objects(cont, t, iou=iou)[0].size) for t in AP_THRESHOLDS)
    _, _, match_iou = match_objects(cont, iou_threshold, iou=iou)
    return _assemble(cont.n_true, cont.n_pred, counts, int(match_iou.size),
                     float(match_iou.sum()), cont.fg_intersection, cont.fg_union,
                     iou_threshold, AP_THRESHOLDS, ap_tp)


def object_metrics(y_true: np.ndarray, y_pred: np.ndarray,
                   iou_threshold: float = 0.5) -> ObjectMetrics:
    """Object metrics of a predicted label image against the true one.

    Parameters
    ----------
    y_true, y_pred : np.ndarray, integer (int32 by convention), shape (H, W)
        One feature of a label stack (e.g. ``y[0]``, whole-cell); 0 is background, any other
        value is an object id (ids need not be sequential).
    iou_threshold : float, in (0, 1], default 0.5
        IoU of a match for precision / recall / F1 and of a correct pair in the error types.

    Returns
    -------
    ObjectMetrics
        Error-type counts, precision / recall / F1, AP@0.5, mAP@0.5:0.95, pixel Jaccard.

    Raises
    ------
    ValueError
        If the images are not 2-D, differ in shape, are not integer, or the threshold is
        outside (0, 1].
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != 2 or y_pred.ndim != 2:
        raise ValueError(f"object_metrics takes (H, W) label images, got shapes {y_true.shape} "
                         f"and {y_pred.shape}; pass one feature at a time, e.g. y[0]")
    return metrics_from_contingency(contingency(y_true, y_pred), iou_threshold)


def average_precision(y_true: np.ndarray, y_pred: np.ndarray,
                      thresholds: tuple[float, ...] = AP_THRESHOLDS) -> dict[float, float]:
    """AP(t) = TP / (TP + FP + FN) of 1-to-1 matches with IoU >= t, for each threshold.

    Parameters
    ----------
    y_true, y_pred : np.ndarray, integer, same shape
        Label images; 0 is background.
    thresholds : sequence of float, each in (0, 1]
        IoU thresholds; default 0.50:0.05:0.95.

    Returns
    -------
    dict
        ``{threshold: AP}``, AP in [0, 1] (1 when both images are empty).
    """
    cont = contingency(y_true, y_pred)
    iou = cont.iou()
    return {float(t): _ap(cont.n_true, cont.n_pred, int(match_objects(cont, t, iou=iou)[0].size))
            for t in thresholds}


def aggregate(results: list[ObjectMetrics]) -> ObjectMetrics:
    """Pool per-image metrics: sum counts, TP, intersections and unions; recompute the rates.

    AP(t) of the pool is sum TP(t) / (sum n_true + sum n_pred - sum TP(t)): the matches of all
    images pooled, as if the images were one. Precision, recall, F1, Jaccard and mean matched IoU
    are pooled the same way (micro average), not averaged per image.

    Parameters
    ----------
    results : list of ObjectMetrics
        Per-image (or already pooled) results with the same ``iou_threshold`` and
        ``ap_thresholds``.

    Returns
    -------
    ObjectMetrics
    """
    if not results:
        raise ValueError("aggregate needs at least one ObjectMetrics result")
    first = results[0]
    for r in results:
        if r.iou_threshold != first.iou_threshold or r.ap_thresholds != first.ap_thresholds:
            raise ValueError("cannot pool results computed at different IoU thresholds "
                             f"({r.iou_threshold} vs {first.iou_threshold}); recompute them alike")

    def total(name: str):
        return sum(getattr(r, name) for r in results)

    ap_tp = tuple(int(sum(r.ap_tp[i] for r in results)) for i in range(len(first.ap_tp)))
    return _assemble(total("n_true"), total("n_pred"), {k: total(k) for k in ERROR_KINDS},
                     total("tp"), float(total("matched_iou_sum")), total("fg_intersection"),
                     total("fg_union"), first.iou_threshold, first.ap_thresholds, ap_tp)
