"""Figures of a project for the admin console: per round, per image, per job.

Per round (the dashboard): model F1 on the held-out images, corrections per crop (changed pixels and
changed cells between the crop's starting labels and the annotator's submission), median active
time per crop, and crowd–expert agreement (F1 of the stitched crowd labels against the labels an
expert approved). Everything is computed on request from the project's own rows — a few grouped
queries, then one pass over the stored arrays they name — and drawn as SVG on the server
(:mod:`backend.services.line_chart`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

import numpy as np
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from backend.core.metrics import aggregate, object_metrics
from backend.models import Assignment, Crop, Image, Job, LabelRevision, ModelVersion, Round, Stitch
from backend.services import crowd_policy, labels_io
from backend.services.line_chart import Series, line_chart_svg
from backend.services.stitching import changed_cells
from backend.storage import BlobStore


@dataclass(frozen=True)
class RoundFigures:
    """The dashboard's figures for one round (None: nothing to compute it from yet).

    Attributes
    ----------
    number, round_id, status : int, int, str
        The round (``open`` | ``closed``).
    model_f1 : float or None
        Whole-cell F1 (0–1) of the model that predicted the round, on the held-out images (judged by
        their uploaded ground truth where there is one, else by their approved labels).
    f1_source : str
        ``"model v<N>"``, ``"baseline"`` (round predicted by the classical segmenter: its F1 is
        the reference the first trained version was compared with) or ``""``.
    n_crops, n_submissions, n_approved : int
        Crops of the round, submitted assignments on them, images approved from the round.
    changed_pixels_per_crop, changed_cells_per_crop : float or None
        Mean over submissions of the pixels (whole-cell + nuclear) and cells (both features)
        that differ between the crop's starting labels and the submitted labels.
    median_seconds_per_crop : float or None
        Median active time of a submission, in seconds.
    crowd_expert_f1 : float or None
        Whole-cell F1 (0–1) of the stitched crowd labels against the approved labels, pooled
        over the round's approved images.
    crowd_crops, model_crops, crowd_crops_cumulative : int
        Image crops of the round sent to the crowd, crops that kept the model's labels (the
        round's crowd policy skipped them), and crowd crops of this and earlier rounds.
    """

    number: int
    round_id: int
    status: str
    model_f1: float | None
    f1_source: str
    n_crops: int
    n_submissions: int
    n_approved: int
    changed_pixels_per_crop: float | None
    changed_cells_per_crop: float | None
    median_seconds_per_crop: float | None
    crowd_expert_f1: float | None
    crowd_crops: int = 0
    model_crops: int = 0
    crowd_crops_cumulative: int = 0

    def as_dict(self) -> dict:
        """The figures as a JSON-serialisable dict."""
        return asdict(self)


@dataclass(frozen=True)
class ChartSpec:
    """How one figure is drawn: which attribute, titles with units, and its empty state."""

    name: str
    attribute: str
    title: str
    y_label: str
    no_data: str
    y_range: tuple[float, float] | None = None
    x_attribute: str = "number"
    x_label: str = "round"


CHARTS = (
    ChartSpec("model_f1", "model_f1", "Model F1 on held-out images (whole-cell)", "F1",
              "no model figures yet: train a model version", (0.0, 1.0)),
    ChartSpec("changed_pixels", "changed_pixels_per_crop", "Corrections: changed pixels per crop",
              "pixels / crop", "no submissions yet"),
    ChartSpec("changed_cells", "changed_cells_per_crop", "Corrections: changed cells per crop",
              "cells / crop", "no submissions yet"),
    ChartSpec("median_time", "median_seconds_per_crop", "Median active time per crop",
              "seconds / crop", "no submissions yet"),
    ChartSpec("agreement", "crowd_expert_f1", "Crowd–expert agreement (whole-cell F1)",
              "F1", "no approved images yet", (0.0, 1.0)),
    ChartSpec("crowd_crops", "crowd_crops", "Crowd crops spent per round (gold checks not counted)",
              "crops", "no crops yet"),
    ChartSpec("cost_curve", "model_f1", "Cost curve: model F1 against crowd crops spent so far", "F1",
              "no model figures yet: train a model version", (0.0, 1.0),
              x_attribute="crowd_crops_cumulative", x_label="crowd crops so far"),
)
CHART_NAMES = tuple(c.name for c in CHARTS)


def correction_counts(start: np.ndarray, final: np.ndarray) -> tuple[int, int]:
    """Changed pixels and changed cells between two label stacks of one crop.

    Parameters
    ----------
    start, final : np.ndarray, int32, shape (F, h, w)
        The crop's starting labels (the prediction, or the consensus sent back by a review) and
        the submitted labels, features in the order (whole_cell, nuclear).

    Returns
    -------
    (int, int)
        Pixels whose id differs, summed over features; cells changed (drawn, redrawn, split,
        merged or deleted: :func:`backend.services.stitching.changed_cells`), summed over features.
    """
    if start.shape != final.shape:
        raise ValueError(f"label stacks differ in shape: {start.shape} vs {final.shape}")
    pixels = int(np.count_nonzero(start != final))
    if pixels == 0:
        return 0, 0
    cells = sum(changed_cells(start[f], final[f]) for f in range(start.shape[0]) if (start[f] != final[f]).any())
    return pixels, int(cells)


def _model_f1_by_round(session: Session, project_id: int, rounds: list[Round]) -> dict[int, tuple[float | None, str]]:
    versions = list(session.scalars(select(ModelVersion).where(ModelVersion.project_id == project_id)))
    by_id = {v.id: v for v in versions}
    trained = sorted((v for v in versions if (v.metrics or {}).get("reference")), key=lambda v: v.version)
    # the first trained version measured the round-0 predictors on its held-out images
    first_reference = {}
    if trained:
        reference = trained[0].metrics["reference"]
        first_reference = {name: m.get("f1") for name, m in (reference.get("candidates") or {}).items()}
        first_reference.setdefault(reference.get("source"), reference.get("f1"))
    out = {}
    for rnd in rounds:
        mv = by_id.get(rnd.model_version_id) if rnd.model_version_id else None
        if mv is not None:
            f1 = (mv.metrics or {}).get("f1")
            out[rnd.id] = (float(f1) if f1 is not None else None, f"model v{mv.version}")
        elif rnd.model_version_id is None:
            name = rnd.predictor or "baseline"
            f1 = first_reference.get(name)
            out[rnd.id] = (float(f1) if f1 is not None else None, name)
        else:
            out[rnd.id] = (None, "")
    return out


def _submissions(session: Session, project_id: int) -> list:
    """(round_id, crop_key, active_seconds, latest revision key or None) per submitted assignment."""
    project_assignments = (
        select(Assignment.id).join(Crop, Crop.id == Assignment.crop_id).join(Image, Image.id == Crop.image_id)
        .where(Image.project_id == project_id)
    )
    latest = (
        select(LabelRevision.assignment_id, func.max(LabelRevision.number).label("number"))
        .where(LabelRevision.assignment_id.in_(project_assignments))
        .group_by(LabelRevision.assignment_id)
        .subquery()
    )
    rows = session.execute(
        select(Crop.round_id, Crop.id, Assignment.generation, Assignment.active_seconds, LabelRevision.key)
        .join(Assignment, Assignment.crop_id == Crop.id)
        .join(Image, Image.id == Crop.image_id)
        .outerjoin(latest, latest.c.assignment_id == Assignment.id)
        .outerjoin(LabelRevision, and_(LabelRevision.assignment_id == Assignment.id,
                                       LabelRevision.number == latest.c.number))
        .where(Image.project_id == project_id, Assignment.status == "submitted")
        .order_by(Crop.id, Assignment.generation)
    )
    # each submission is compared with the start of its own generation (a reject starts a new one)
    return [(round_id, labels_io.crop_key(crop_id, generation), seconds, revision_key)
            for round_id, crop_id, generation, seconds, revision_key in rows]


def _corrections_by_round(store: BlobStore, rows: list) -> dict[int, tuple[list[int], list[int], list[float]]]:
    """round id → (changed pixels, changed cells, active seconds), one entry per submission."""
    out: dict[int, tuple[list[int], list[int], list[float]]] = defaultdict(lambda: ([], [], []))
    start, start_key = None, None
    for round_id, crop_key, seconds, revision_key in rows:  # ordered by crop: each crop is read once
        pixels, cells = 0, 0
        if revision_key is not None:
            if crop_key != start_key:
                start, start_key = labels_io.get_labels(store, crop_key), crop_key
            pixels, cells = correction_counts(start, labels_io.get_labels(store, revision_key))
        entry = out[round_id]
        entry[0].append(pixels)
        entry[1].append(cells)
        entry[2].append(float(seconds or 0.0))
    return out


def _agreement_by_round(session: Session, store: BlobStore, project_id: int) -> dict[int, tuple[float, int]]:
    """round id → (pooled whole-cell F1 of stitched vs approved labels, images)."""
    rows = session.execute(
        select(Stitch.round_id, Stitch.key, Image.labels_key)
        .join(Image, Image.id == Stitch.image_id)
        .where(Image.project_id == project_id, Stitch.status == "approved", Image.status == "approved",
               Image.labels_key.isnot(None))
        .order_by(Stitch.round_id, Stitch.id)
    )
    results: dict[int, list] = defaultdict(list)
    for round_id, stitch_key, approved_key in rows:
        approved = labels_io.get_labels(store, approved_key)[0]
        stitched = labels_io.get_labels(store, stitch_key)[0]
        results[round_id].append(object_metrics(approved, stitched))
    return {rid: (float(aggregate(ms).f1), len(ms)) for rid, ms in results.items()}


def project_figures(session: Session, store: BlobStore, project_id: int) -> list[RoundFigures]:
    """The dashboard's figures for every round of a project, oldest round first.

    Parameters
    ----------
    session : Session
    store : BlobStore
        Holds the crops' starting labels, the submissions' revisions, stitches and approvals.
    project_id : int

    Returns
    -------
    list of RoundFigures
        Empty when the project has no round yet.
    """
    rounds = list(session.scalars(select(Round).where(Round.project_id == project_id).order_by(Round.number)))
    if not rounds:
        return []
    f1s = _model_f1_by_round(session, project_id, rounds)
    n_crops = dict(session.execute(
        select(Crop.round_id, func.count(Crop.id)).join(Image, Image.id == Crop.image_id)
        .where(Image.project_id == project_id).group_by(Crop.round_id)
    ).all())
    corrections = _corrections_by_round(store, _submissions(session, project_id))
    agreement = _agreement_by_round(session, store, project_id)
    spent = crowd_spending(session, project_id)
    figures = []
    for rnd in rounds:
        pixels, cells, seconds = corrections.get(rnd.id, ([], [], []))
        f1, source = f1s[rnd.id]
        agree, n_approved = agreement.get(rnd.id, (None, 0))
        figures.append(RoundFigures(
            number=rnd.number, round_id=rnd.id, status=rnd.status, model_f1=f1, f1_source=source,
            n_crops=int(n_crops.get(rnd.id, 0)), n_submissions=len(pixels), n_approved=n_approved,
            changed_pixels_per_crop=float(np.mean(pixels)) if pixels else None,
            changed_cells_per_crop=float(np.mean(cells)) if cells else None,
            median_seconds_per_crop=float(np.median(seconds)) if seconds else None,
            crowd_expert_f1=agree,
            **{k: int(spent.get(rnd.id, {}).get(k, 0)) for k in ("crowd_crops", "model_crops",
                                                                   "crowd_crops_cumulative")},
        ))
    return figures


def chart_svg(figures: list[RoundFigures], name: str) -> str:
    """One dashboard chart (``name`` in :data:`CHART_NAMES`) as SVG markup."""
    spec = next((c for c in CHARTS if c.name == name), None)
    if spec is None:
        raise KeyError(f"unknown figure {name!r}; figures are {', '.join(CHART_NAMES)}")
    points = [(float(getattr(f, spec.x_attribute)), getattr(f, spec.attribute)) for f in figures]
    return line_chart_svg(
        Series(spec.y_label, points), title=spec.title, x_label=spec.x_label, y_label=spec.y_label,
        chart_id=f"chart-{spec.name}", y_range=spec.y_range,
        empty_text="no rounds yet" if not figures else spec.no_data,
    )


def all_chart_svgs(figures: list[RoundFigures]) -> dict[str, str]:
    """Every dashboard chart, by name, in display order."""
    return {name: chart_svg(figures, name) for name in CHART_NAMES}


# --- rounds, images and jobs: the console's live status ----------------------------------------------
def round_progress(session: Session, project_id: int) -> list[dict]:
    """Per round, newest first: crowd crops (fused / total; gold crops apart, see
    :func:`crop_counts`), submissions, stitches by status, model."""
    rounds = list(session.scalars(select(Round).where(Round.project_id == project_id).order_by(Round.number.desc())))
    crops = {rid: (total, fused, gold, images) for rid, total, fused, gold, images in session.execute(
        select(Crop.round_id, *crop_counts(), func.count(func.distinct(Crop.image_id)))
        .join(Image, Image.id == Crop.image_id).where(Image.project_id == project_id).group_by(Crop.round_id)
    )}
    submitted = dict(session.execute(
        select(Crop.round_id, func.count(Assignment.id)).join(Assignment, Assignment.crop_id == Crop.id)
        .join(Image, Image.id == Crop.image_id)
        .where(Image.project_id == project_id, Assignment.status == "submitted").group_by(Crop.round_id)
    ).all())
    stitches: dict[int, dict[str, int]] = defaultdict(dict)
    for rid, status, n in session.execute(
        select(Stitch.round_id, Stitch.status, func.count(Stitch.id)).join(Image, Image.id == Stitch.image_id)
        .where(Image.project_id == project_id).group_by(Stitch.round_id, Stitch.status)
    ):
        stitches[rid][status] = n
    versions = dict(session.execute(
        select(ModelVersion.id, ModelVersion.version).where(ModelVersion.project_id == project_id)).all())
    spent = crowd_spending(session, project_id)
    out = []
    for rnd in rounds:
        total, fused, gold, images = crops.get(rnd.id, (0, 0, 0, 0))
        out.append({
            "id": rnd.id, "number": rnd.number, "status": rnd.status,
            "model_version": versions.get(rnd.model_version_id) if rnd.model_version_id else None,
            "predictor": rnd.predictor,
            "created_at": rnd.created_at.isoformat() + "Z",
            "closed_at": rnd.closed_at.isoformat() + "Z" if rnd.closed_at else None,
            "images": int(images or 0), "crops": int(total or 0), "crops_fused": int(fused or 0),
            "gold_crops": int(gold or 0),
            "submissions": int(submitted.get(rnd.id, 0)), "stitches": dict(stitches.get(rnd.id, {})),
            "policy": crowd_policy.round_policy(rnd), "policy_text": crowd_policy.describe(crowd_policy.round_policy(rnd)),
            **spent.get(rnd.id, {"crowd_crops": 0, "model_crops": 0, "held_crops": 0, "crowd_crops_cumulative": 0}),
        })
    return out


def crowd_spending(session: Session, project_id: int) -> dict[int, dict]:
    """Per round id: image crops that went to the crowd, that skipped it (the model's labels,
    unchecked), that wait for the round's budget, and crowd crops so far (cumulative)."""
    rows = session.execute(
        select(Crop.round_id, Round.number, Crop.source, Crop.status, func.count(Crop.id))
        .join(Round, Round.id == Crop.round_id)
        .where(Round.project_id == project_id, Crop.is_gold.is_(False))
        .group_by(Crop.round_id, Round.number, Crop.source, Crop.status))
    out: dict[int, dict] = {}
    numbers = {}
    for rid, number, source, status, n in rows:
        numbers[rid] = number
        row = out.setdefault(rid, {"crowd_crops": 0, "model_crops": 0, "held_crops": 0})
        if source == "model":
            row["model_crops"] += n
        elif status == "held":
            row["held_crops"] += n
        else:
            row["crowd_crops"] += n
    total = 0
    for rid in sorted(out, key=numbers.get):
        total += out[rid]["crowd_crops"]
        out[rid]["crowd_crops_cumulative"] = total
    return out


def image_progress(session: Session, project_id: int) -> dict[int, dict]:
    """image id → its crops in its newest round: ``{"round_id", "crops", "fused", "gold"}``, the
    crowd's crops and gold crops apart (:func:`crop_counts`)."""
    out: dict[int, dict] = {}
    for image_id, round_id, total, fused, gold in session.execute(
        select(Crop.image_id, Crop.round_id, *crop_counts())
        .join(Image, Image.id == Crop.image_id).where(Image.project_id == project_id)
        .group_by(Crop.image_id, Crop.round_id).order_by(Crop.image_id, Crop.round_id)
    ):
        out[image_id] = {"round_id": round_id, "crops": int(total or 0), "fused": int(fused or 0),
                         "gold": int(gold or 0)}
    return out


def crop_counts() -> tuple:
    """Aggregates over Crop rows: crops that are not gold, those of them fused, gold crops.

    A gold crop holds its expert labels from the start (they are what it fuses to), so counting it
    as fused would show crowd progress nobody made; it is counted apart.
    """
    crowd = Crop.is_gold.is_(False)
    return (func.sum(case((crowd, 1), else_=0)),
            func.sum(case((and_(crowd, Crop.status == "fused"), 1), else_=0)),
            func.sum(case((Crop.is_gold.is_(True), 1), else_=0)))


def status_text(status: str, progress: dict | None) -> str:
    """What the console shows for an image's status, e.g. ``"in crowd 3/9 crops"``."""
    words = status.replace("_", " ")
    if status == "in_crowd" and progress:
        gold = f" (+{progress['gold']} gold)" if progress.get("gold") else ""
        return f"{words} {progress['fused']}/{progress['crops']} crops{gold}"
    return words


def job_dict(job: Job) -> dict:
    """A Job row for the console: progress 0–1, the last line of its error."""
    error = (job.error or "").strip()
    return {
        "id": job.id, "kind": job.kind, "status": job.status, "progress": float(job.progress or 0.0),
        "message": job.message or "", "error": error.splitlines()[-1] if error else None,
        "args": job.args or {}, "created_at": job.created_at.isoformat() + "Z",
        "started_at": job.started_at.isoformat() + "Z" if job.started_at else None,
        "ended_at": job.ended_at.isoformat() + "Z" if job.ended_at else None,
    }


def project_jobs(session: Session, project_id: int, recent: int = 30, active_limit: int = 500) -> dict:
    """Jobs of a project for the live progress view.

    Returns
    -------
    dict
        ``active``: queued and running jobs (oldest first, at most ``active_limit``);
        ``recent``: the newest ``recent`` finished or failed jobs; ``summary``: per kind, counts by
        status and the mean progress of the jobs since the newest round started (all jobs when
        the project has no round).
    """
    active = session.scalars(
        select(Job).where(Job.project_id == project_id, Job.status.in_(("queued", "running")))
        .order_by(Job.id).limit(active_limit))
    done = session.scalars(
        select(Job).where(Job.project_id == project_id, Job.status.in_(("finished", "failed")))
        .order_by(Job.id.desc()).limit(recent))
    since = session.scalar(select(func.max(Round.created_at)).where(Round.project_id == project_id))
    query = (select(Job.kind, Job.status, func.count(Job.id), func.sum(Job.progress))
             .where(Job.project_id == project_id).group_by(Job.kind, Job.status))
    if since is not None:
        query = query.where(Job.created_at >= since)
    summary: dict[str, dict] = {}
    for kind, status, n, progress_sum in session.execute(query):
        row = summary.setdefault(kind, {"kind": kind, "total": 0, "progress_sum": 0.0,
                                        "queued": 0, "running": 0, "finished": 0, "failed": 0})
        row[status] = row.get(status, 0) + int(n)
        row["total"] += int(n)
        row["progress_sum"] += float(progress_sum or 0.0)
    for row in summary.values():
        row["progress"] = row.pop("progress_sum") / row["total"] if row["total"] else 0.0
    return {"active": [job_dict(j) for j in active], "recent": [job_dict(j) for j in done],
            "summary": sorted(summary.values(), key=lambda r: r["kind"])}
