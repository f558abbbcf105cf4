"""What predicts before any model version is promoted: the generalist or the classical baseline.

Whichever scores the better F1 through the predict path on the project's own labelled images —
uploaded ground truth first, else approved images — predicts round 0 (and every round until a
fine-tuned version is promoted). With no labelled image yet, the generalist predicts when it is
installed. The choice and its figures are kept on the project (``predictor_choice``) and shown
on the models page.
"""

from __future__ import annotations

import logging

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.core.metrics import aggregate, object_metrics
from backend.models import Image, Project
from backend.services import labels_io
from backend.storage import BlobStore
from worker.predict import BASELINE, Predictor, generalist_predictor, predict_image

log = logging.getLogger(__name__)

#: Labelled images (their central window) compared per project, and the window's side.
MAX_IMAGES = 6
WINDOW = 512


def labelled_images(session: Session, store: BlobStore, project: Project) -> tuple[list, str]:
    """Up to :data:`MAX_IMAGES` (raw window, truth window, mpp) of a project, and their source."""
    for source, column in (("ground truth", Image.ground_truth_key), ("approved", Image.labels_key)):
        query = select(Image).where(Image.project_id == project.id, column.isnot(None))
        if source == "approved":
            query = query.where(Image.status == "approved")
        images = list(session.scalars(query.order_by(Image.id).limit(MAX_IMAGES)))
        if not images:
            continue
        out = []
        for image in images:
            raw = store.get_array(image.raw_key)
            truth = (store.get_arrays(image.ground_truth_key)["labels"] if source == "ground truth"
                     else labels_io.get_labels(store, image.labels_key))
            rows, cols = raw.shape[1:]
            y0, x0 = max(0, (rows - WINDOW) // 2), max(0, (cols - WINDOW) // 2)
            window = (slice(y0, y0 + WINDOW), slice(x0, x0 + WINDOW))
            truth = np.asarray(truth)
            if truth.ndim == 2:
                truth = np.stack([np.zeros_like(truth), truth])
            out.append((raw[(slice(None),) + window], truth[(slice(None),) + window],
                        image.pixel_size_um or project.pixel_size_um))
        return out, source
    return [], "none"


def score(predictor: Predictor, samples: list, features: list[str]) -> dict:
    """Pooled whole-cell and nuclear F1 and panoptic quality of a predictor on (raw, truth, mpp)
    samples; ``headline`` (what decides) is the mean F1 over the project's features, the figure model
    versions are compared by (:func:`worker.training.headline`)."""
    per = {0: [], 1: []}
    for raw, truth, mpp in samples:
        labels = predict_image(predictor, raw, mpp=mpp)
        for f in (0, 1):
            if truth[f].any():
                per[f].append(object_metrics(truth[f], labels[f]))
    pooled = {name: aggregate(per[f]) if per[f] else None for f, name in enumerate(("whole_cell", "nuclear"))}
    out = {name: (round(float(m.f1), 4) if m else None) for name, m in pooled.items()}
    out["pq"] = {name: (round(m.pq, 4) if m else None) for name, m in pooled.items()}
    headline = [out[name] for name in features if out.get(name) is not None]
    out["headline"] = round(float(np.mean(headline)), 4) if headline else None
    return out


def choose_round_zero(session: Session, store: BlobStore, project: Project) -> dict:
    """Compare the generalist with the baseline on the project's labelled images; store the choice."""
    try:
        generalist = generalist_predictor()
    except FileNotFoundError as exc:
        choice = {"predictor": "baseline", "measured_on": "none", "why": str(exc)}
        project.predictor_choice = choice
        return choice
    samples, source = labelled_images(session, store, project)
    features = list(project.features or ["whole_cell", "nuclear"])
    if not samples:
        choice = {"predictor": "generalist", "measured_on": "none", "images": 0,
                  "why": "no labelled image yet: the generalist is the default"}
    else:
        f1 = {"generalist": score(generalist, samples, features),
              "baseline": score(BASELINE, samples, features)}
        better = (f1["generalist"]["headline"] or 0.0) >= (f1["baseline"]["headline"] or 0.0)
        choice = {"predictor": "generalist" if better else "baseline", "measured_on": source,
                  "images": len(samples), "f1": f1}
    project.predictor_choice = choice
    log.info("project %s round-0 predictor: %s", project.id, choice)
    return choice


def round_zero_predictor(session: Session, store: BlobStore, project: Project) -> Predictor:
    """The predictor of rounds before any promoted version (chosen once, then kept)."""
    choice = project.predictor_choice or choose_round_zero(session, store, project)
    if choice.get("predictor") == "generalist":
        try:
            return generalist_predictor()
        except FileNotFoundError:
            log.warning("the generalist's weights are missing; the baseline predicts")
    return BASELINE
