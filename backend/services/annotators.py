"""The crowd workforce of a project: the links handed to a platform, each worker's record, blocking.

A worker is an :class:`~backend.models.Annotator` (platform + the platform's worker id; never
trusted for more). Their record comes from their assignments: tasks done, gold accuracy (mean
F1 on gold crops, scored at submit), agreement with the consensus (scored at fusion), median
active time and edits per crop. Blocking a worker refuses them new tasks and drops their pending
work — submissions on crops not fused yet and live leases — so fusion never uses it and the
crops go back to the pool for someone else.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict

import numpy as np
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from backend.errors import NotFoundError
from backend.models import Annotator, Assignment, Crop, Image, Project, Round, utcnow

PROLIFIC_QUERY = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
GENERIC_QUERY = "worker={WORKER_ID}"
CSV_COLUMNS = ("crop_id", "image_id", "image", "round", "gold", "url")


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def annotator_table(session: Session, project_id: int) -> list[dict]:
    """One row per worker of the project, most productive first.

    Returns
    -------
    list of dict
        ``id``, ``platform``, ``worker_id``, ``blocked``; ``tasks_done`` (assignments they
        submitted, including ones later dropped by a block); ``gold_tasks`` and
        ``gold_accuracy`` (mean F1 0–1 against the expert labels of gold crops, None without
        gold tasks); ``gold_gain`` (mean share of what the gold crops' starting labels got wrong
        that they fixed, over ``gain_tasks`` gold tasks whose start needed fixing; a worker below
        :data:`backend.services.tasks.MIN_GOLD_GAIN` is blocked automatically); ``agreement``
        (mean agreement score 0–1 with the fused consensus, over their fused submissions;
        ``agreement_tasks`` of them); ``median_seconds`` (active seconds per crop) and
        ``median_edits`` (edits per crop); ``leased`` (live leases now);
        ``last_submitted_at`` (ISO 8601 UTC or None).
    """
    annotators = list(session.scalars(select(Annotator).where(Annotator.project_id == project_id)))
    done: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for annotator_id, seconds, edits, gold, gain, agreement, submitted_at in session.execute(
        select(Assignment.annotator_id, Assignment.active_seconds, Assignment.edit_count, Assignment.gold_score,
               Assignment.gold_gain, Assignment.agreement, Assignment.submitted_at)
        .join(Annotator, Annotator.id == Assignment.annotator_id)
        .where(Annotator.project_id == project_id, Assignment.submitted_at.isnot(None))
    ):
        d = done[annotator_id]
        d["seconds"].append(float(seconds or 0.0))
        d["edits"].append(int(edits or 0))
        d["submitted_at"].append(submitted_at)
        if gold is not None:
            d["gold"].append(float(gold))
        if gain is not None:
            d["gain"].append(float(gain))
        if isinstance(agreement, dict) and agreement.get("score") is not None:
            d["agreement"].append(float(agreement["score"]))
    now = utcnow()
    leased = dict(session.execute(
        select(Assignment.annotator_id, func.count(Assignment.id))
        .join(Annotator, Annotator.id == Assignment.annotator_id)
        .where(Annotator.project_id == project_id, Assignment.status == "leased", Assignment.lease_expires_at >= now)
        .group_by(Assignment.annotator_id)
    ).all())
    rows = []
    for a in annotators:
        d = done.get(a.id, {})
        last = max(d["submitted_at"]) if d.get("submitted_at") else None
        rows.append({
            "id": a.id, "platform": a.platform, "worker_id": a.worker_id, "blocked": bool(a.blocked),
            "tasks_done": len(d.get("seconds", [])),
            "gold_tasks": len(d.get("gold", [])), "gold_accuracy": _mean(d.get("gold", [])),
            "gain_tasks": len(d.get("gain", [])), "gold_gain": _mean(d.get("gain", [])),
            "agreement_tasks": len(d.get("agreement", [])), "agreement": _mean(d.get("agreement", [])),
            "median_seconds": _median(d.get("seconds", [])), "median_edits": _median(d.get("edits", [])),
            "leased": int(leased.get(a.id, 0)),
            "last_submitted_at": last.isoformat() + "Z" if last else None,
        })
    rows.sort(key=lambda r: (-r["tasks_done"], r["platform"], r["worker_id"]))
    return rows


def get_annotator(session: Session, project_id: int, annotator_id: int) -> Annotator:
    """An annotator of the project; NotFoundError (404) otherwise."""
    annotator = session.get(Annotator, annotator_id)
    if annotator is None or annotator.project_id != project_id:
        raise NotFoundError(f"no annotator with id {annotator_id} in project {project_id}")
    return annotator


def set_blocked(session: Session, project_id: int, annotator_id: int, blocked: bool) -> dict:
    """Block (or unblock) a worker of a project.

    Blocking drops their pending work: submissions on crops that are not fused yet (in the
    crop's current generation) and live leases become ``dropped``. Fusion never sees them, the
    crops count one submission fewer and are offered to other workers again, and a held task
    link can no longer save or submit. Unblocking lets the worker take new tasks; dropped work
    stays dropped. Work already fused into a consensus is kept.

    Returns
    -------
    dict
        ``{"id", "worker_id", "blocked", "dropped_submissions", "dropped_leases"}``.
    """
    annotator = get_annotator(session, project_id, annotator_id)
    annotator.blocked = bool(blocked)
    dropped = {"submitted": 0, "leased": 0}
    if blocked:
        pending_submissions = list(session.scalars(
            select(Assignment.id).join(Crop, Crop.id == Assignment.crop_id)
            .where(Assignment.annotator_id == annotator.id, Assignment.status == "submitted",
                   Crop.status == "open", Assignment.generation == Crop.generation)
        ))
        leases = list(session.scalars(  # on any crop, gold or fused too: the link stops working
            select(Assignment.id).where(Assignment.annotator_id == annotator.id, Assignment.status == "leased")
        ))
        for status, ids in (("submitted", pending_submissions), ("leased", leases)):
            if ids:
                session.execute(update(Assignment).where(Assignment.id.in_(ids)).values(status="dropped"))
                dropped[status] = len(ids)
    session.flush()
    return {"id": annotator.id, "worker_id": annotator.worker_id, "blocked": annotator.blocked,
            "dropped_submissions": dropped["submitted"], "dropped_leases": dropped["leased"]}


# --- crowd links ------------------------------------------------------------------------------------
def entry_url(base_url: str, project_id: int) -> str:
    """The crowd entry page of a project, absolute (``base_url`` like ``https://host/``)."""
    return f"{base_url.rstrip('/')}/annotate/{project_id}"


def crowd_links(project: Project, base_url: str) -> dict:
    """The links an admin hands to the crowd platform, for every platform.

    Returns
    -------
    dict
        ``platform`` (the project's), ``study_url`` (the link for that platform; for Appen the
        per-crop CSV replaces it, so it is the row URL pattern), and ``links``: per platform
        ``{"url", "how"}`` — the generic iframe link (``{WORKER_ID}`` is replaced by the host),
        Prolific's study URL with its placeholders, Appen's per-row pattern and MTurk's
        ExternalQuestion URL.
    """
    entry = entry_url(base_url, project.id)
    links = {
        "generic": {"url": f"{entry}?{GENERIC_QUERY}",
                    "how": "Embed in an iframe; the host replaces {WORKER_ID} with its worker id. "
                           "Completion is a postMessage to the parent page."},
        "prolific": {"url": f"{entry}?{PROLIFIC_QUERY}",
                     "how": "Paste as the study URL; Prolific fills in the placeholders. Set "
                            "completion_code in the platform settings."},
        "appen": {"url": f"{entry}?crop=<crop id>&worker_id=<contributor id>",
                  "how": "Upload the per-crop CSV as the job's rows; the job design appends "
                         "&worker_id= with the contributor's id to each row's url."},
        "mturk": {"url": entry,
                  "how": "ExternalQuestion URL (legacy); MTurk appends assignmentId, hitId, workerId "
                         "and turkSubmitTo."},
    }
    return {"platform": project.platform, "entry_url": entry, "study_url": links[project.platform]["url"],
            "links": links}


def open_crop_rows(session: Session, project_id: int) -> list[dict]:
    """Crops of the project's open rounds still taking annotations: open crops and gold crops."""
    rows = session.execute(
        select(Crop.id, Crop.image_id, Image.name, Round.number, Crop.is_gold)
        .join(Image, Image.id == Crop.image_id)
        .join(Round, Round.id == Crop.round_id)
        .where(Image.project_id == project_id, Round.status == "open",
               or_(Crop.status == "open", Crop.is_gold.is_(True)))
        .order_by(Crop.id)
    )
    return [{"crop_id": cid, "image_id": iid, "image": name, "round": number, "gold": bool(gold)}
            for cid, iid, name, number, gold in rows]


def crop_links_csv(rows: list[dict], entry: str) -> str:
    """CSV (header + one row per crop) with each crop's absolute task URL, for Appen's job rows.

    Parameters
    ----------
    rows : list of dict
        From :func:`open_crop_rows`.
    entry : str
        The project's absolute entry URL (:func:`entry_url`).
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow([r["crop_id"], r["image_id"], r["image"], r["round"], int(r["gold"]),
                         f"{entry}?crop={r['crop_id']}"])
    return buf.getvalue()
