"""Fuse the k annotations of one crop into consensus labels, and score each annotator.

Per feature (whole_cell, nuclear, ...), independently:

1. Matching. Annotators are visited in the given order. The objects of the first one each start
   a cluster. Each later annotator's objects are matched one-to-one to the existing clusters by
   ``scipy.optimize.linear_sum_assignment``, maximising the mean IoU between the object and the
   cluster's members; a pair is accepted when that mean IoU is at least ``iou_threshold``. An
   unmatched object starts a new cluster. A cluster holds at most one object per annotator.
2. Voting. Every annotator votes, at each pixel, for the cluster of the object it drew there
   (or for nothing). A pixel goes to the cluster with the most votes (ties: the cluster created
   first) if that cluster has at least ``quorum`` votes there, else to background. So an object is
   kept only where at least a quorum of annotators drew it, and clusters with fewer than
   ``quorum`` members vanish.
3. Ids are compacted to 1..n in cluster order.
4. Agreement. Each annotator's objects are matched one-to-one to the fused objects by IoU
   (linear_sum_assignment, accepted at IoU >= ``iou_threshold``): ``matched`` pairs, fused objects
   the annotator ``missed``, and its ``extra`` objects, summed over features, plus the mean IoU of
   the matched pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["AnnotatorAgreement", "FusionResult", "fuse_annotations"]

_INT32_MAX = int(np.iinfo(np.int32).max)


@dataclass
class AnnotatorAgreement:
    """How well one annotator's labels agree with the fused labels of a crop.

    Attributes
    ----------
    mean_iou : float
        Mean IoU of this annotator's objects matched to fused objects; 0.0 if none matched.
    matched : int
        Annotator objects matched one-to-one to a fused object (IoU >= the threshold).
    missed : int
        Fused objects this annotator has no matched object for.
    extra : int
        Annotator objects matched to no fused object (spurious, or pieces of a split).
    """

    mean_iou: float
    matched: int
    missed: int
    extra: int

    @property
    def score(self) -> float:
        """Agreement in [0, 1], the panoptic quality of the annotator against the consensus.

        ``mean_iou * matched / (matched + missed / 2 + extra / 2)``: segmentation quality times
        recognition quality (an F1 of the object matches). 1.0 when neither side has any object
        (nothing to disagree about), 0.0 when nothing matched.
        """
        denominator = self.matched + 0.5 * (self.missed + self.extra)
        if denominator == 0:
            return 1.0
        return float(self.mean_iou * self.matched / denominator)


@dataclass
class FusionResult:
    """Consensus of the k annotations of one crop.

    Attributes
    ----------
    labels : np.ndarray
        (F, h, w) int32 fused labels; 0 is background, objects are 1..n per feature.
    agreement : list of AnnotatorAgreement
        One per annotator, in the order of the annotations.
    """

    labels: np.ndarray
    agreement: list[AnnotatorAgreement]


def fuse_annotations(
    annotations: list[np.ndarray], quorum: int | None = None, iou_threshold: float = 0.5
) -> FusionResult:
    """Fuse k annotators' labels of one crop by IoU-matched instance voting.

    See the module docstring for the matching, voting and agreement rules.

    Parameters
    ----------
    annotations : list of np.ndarray
        k >= 1 arrays (F, h, w) of integer ids (int32 normally), one per annotator, all the same
        shape; 0 is background; ids are local to each array and need not be contiguous.
    quorum : int or None
        Annotators that must draw an object (at a pixel) for it to be kept there, 1..k.
        None means a majority, ``k // 2 + 1``.
    iou_threshold : float
        Minimum IoU (0 < t <= 1) for two objects to count as the same object, both when
        clustering annotators' objects and when scoring an annotator.

    Returns
    -------
    FusionResult
        ``labels`` (F, h, w) int32 and one ``AnnotatorAgreement`` per annotator.

    Raises
    ------
    ValueError
        If there are no annotations, shapes differ or are not (F, h, w), ids are not integers in
        0..2**31-1, or quorum / iou_threshold are out of range.
    """
    stack = _check_annotations(annotations)
    k = stack.shape[0]
    if quorum is None:
        quorum = k // 2 + 1
    if isinstance(quorum, bool) or not isinstance(quorum, (int, np.integer)):
        raise ValueError(f"quorum must be an integer number of annotators, got {quorum!r}")
    if not 1 <= quorum <= k:
        raise ValueError(f"quorum must be between 1 and the {k} annotators, got {quorum}")
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")

    fused = np.zeros(stack.shape[1:], np.int32)
    totals = np.zeros((k, 4))  # per annotator: summed IoU, matched, missed, extra
    for f in range(stack.shape[1]):
        objects = [_compact(stack[j, f]) for j in range(k)]
        clusters = _cluster(objects, iou_threshold)
        fused[f] = _vote(objects, clusters, quorum).reshape(fused.shape[1:])
        fused_objects = _compact(fused[f])
        for j, annotator in enumerate(objects):
            totals[j] += _agreement(annotator, fused_objects, iou_threshold)
    agreement = [
        AnnotatorAgreement(
            mean_iou=float(iou_sum / matched) if matched else 0.0,
            matched=int(matched),
            missed=int(missed),
            extra=int(extra),
        )
        for iou_sum, matched, missed, extra in totals
    ]
    return FusionResult(labels=fused, agreement=agreement)


def _check_annotations(annotations: list[np.ndarray]) -> np.ndarray:
    """Stack k annotations (F, h, w) into (k, F, h, w) int64 after checking them."""
    if len(annotations) == 0:
        raise ValueError("no annotations to fuse: pass at least one (F, h, w) label array")
    arrays = [np.asarray(a) for a in annotations]
    shape = arrays[0].shape
    for j, array in enumerate(arrays):
        if array.ndim != 3:
            raise ValueError(
                f"annotation {j} has shape {array.shape}; expected (F, h, w), e.g. "
                "(2, h, w) for whole_cell and nuclear"
            )
        if array.shape != shape:
            raise ValueError(
                f"annotation {j} has shape {array.shape} but annotation 0 has {shape}; "
                "all annotators must label the same crop"
            )
        if array.dtype.kind not in "iu":
            raise ValueError(f"annotation {j} holds {array.dtype}; label ids must be integers")
        if array.size and (array.min() < 0 or array.max() > _INT32_MAX):
            raise ValueError(f"annotation {j} has ids outside 0..{_INT32_MAX} (int32)")
    return np.stack([a.astype(np.int64, copy=False) for a in arrays])


@dataclass
class _Objects:
    """One label image as compact object indices: ``index`` (h*w,) in 0..n, 0 = background."""

    index: np.ndarray
    area: np.ndarray  # (n + 1,) pixels per object, background first

    @property
    def n(self) -> int:
        return self.area.size - 1


def _compact(labels: np.ndarray) -> _Objects:
    """Objects of an (h, w) label image, numbered 1..n in id order."""
    ids, index = np.unique(labels.ravel(), return_inverse=True)
    index = index.ravel()
    if ids.size == 0 or ids[0] != 0:
        index = index + 1
        ids = np.concatenate([[0], ids])
    return _Objects(index=index, area=np.bincount(index, minlength=ids.size))


def _iou(a: _Objects, b: _Objects) -> np.ndarray:
    """(a.n, b.n) IoU between the objects of two label images of the same shape."""
    joint = np.bincount(a.index * (b.n + 1) + b.index, minlength=(a.n + 1) * (b.n + 1))
    inter = joint.reshape(a.n + 1, b.n + 1)[1:, 1:].astype(float)
    union = a.area[1:, None] + b.area[None, 1:] - inter
    return inter / np.maximum(union, 1)


def _cluster(objects: list[_Objects], iou_threshold: float) -> np.ndarray:
    """(n_clusters, k) object index of each annotator in each cluster, 0 where none."""
    members = np.zeros((0, len(objects)), np.int64)
    for j, current in enumerate(objects):
        if current.n == 0:
            continue
        score = np.zeros((current.n, members.shape[0]))
        count = np.zeros(members.shape[0])
        for i in range(j):
            has = members[:, i] > 0
            if has.any():
                score[:, has] += _iou(current, objects[i])[:, members[has, i] - 1]
                count += has
        score /= np.maximum(count, 1)
        rows, cols = linear_sum_assignment(score, maximize=True)
        keep = score[rows, cols] >= iou_threshold
        joined = np.zeros(current.n, bool)
        members[cols[keep], j] = rows[keep] + 1
        joined[rows[keep]] = True
        new = np.zeros((current.n - int(joined.sum()), len(objects)), np.int64)
        new[:, j] = np.flatnonzero(~joined) + 1
        members = np.concatenate([members, new])
    return members


def _vote(objects: list[_Objects], members: np.ndarray, quorum: int) -> np.ndarray:
    """(h * w,) int32 fused labels: per pixel the cluster with most votes, if >= quorum."""
    shape_size = objects[0].index.size
    if members.shape[0] == 0:
        return np.zeros(shape_size, np.int32)
    # per annotator: the cluster (0-based, -1 = none) voted for at each pixel
    votes = np.empty((len(objects), shape_size), np.int64)
    for j, annotator in enumerate(objects):
        cluster_of = np.full(annotator.n + 1, -1, np.int64)
        in_cluster = members[:, j] > 0
        cluster_of[members[in_cluster, j]] = np.flatnonzero(in_cluster)
        votes[j] = cluster_of[annotator.index]
    support = (votes[:, None, :] == votes[None, :, :]).sum(axis=1)  # (k, h*w)
    support[votes < 0] = 0
    n_clusters = members.shape[0]
    best = np.argmax(support * (n_clusters + 1) - votes, axis=0)  # most votes, then oldest
    winner = votes[best, np.arange(shape_size)]
    winner[support[best, np.arange(shape_size)] < quorum] = -1
    kept = np.zeros(n_clusters + 1, np.int32)
    present = np.zeros(n_clusters, bool)
    present[winner[winner >= 0]] = True
    kept[:-1][present] = np.arange(1, int(present.sum()) + 1)
    return kept[winner]  # winner -1 reads kept[-1] == 0


def _agreement(annotator: _Objects, fused: _Objects, iou_threshold: float) -> np.ndarray:
    """[summed IoU of matches, matched, missed, extra] of one annotator against the fusion."""
    if annotator.n == 0 or fused.n == 0:
        return np.array([0.0, 0, fused.n, annotator.n])
    iou = _iou(annotator, fused)
    rows, cols = linear_sum_assignment(iou, maximize=True)
    good = iou[rows, cols] >= iou_threshold
    matched = int(good.sum())
    iou_sum = iou[rows, cols][good].sum()
    return np.array([iou_sum, matched, fused.n - matched, annotator.n - matched])
