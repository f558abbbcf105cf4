"""RQ job functions: thin wrappers over services that chain the loop's steps.

predict_image → crop_image; fuse_crop → (the image's last crop fused) one stitch_image. Each job
is idempotent and records its progress on its Job row. TensorFlow is imported lazily, only when a trained
model version is used.
"""

from __future__ import annotations

import logging

from backend.queue import JobContext, job
from backend.services import labels_io, stitching

log = logging.getLogger(__name__)


@job
def predict_image(ctx: JobContext, image_id: int, round_id: int) -> dict:
    """Predict whole-cell and nuclear labels for one image with the round's model.

    Writes ``labels/<image>/r<round>.npz``, then enqueues ``crop_image``.
    """
    from backend.models import Image, Project, Round
    from backend.services import image_pool
    from backend.services.prediction_maps import maps_key, put_prediction_maps
    from worker.predict import predict_image_result, predictor_for_round
    from worker.uncertainty import crop_scores

    with ctx.db.session() as s:
        image, rnd = s.get(Image, image_id), s.get(Round, round_id)
        raw = ctx.store.get_array(image.raw_key)
        model_version_id, number, project_id = rnd.model_version_id, rnd.number, image.project_id
        mpp = image.pixel_size_um or image.project.pixel_size_um
    ctx.progress(0.1, f"predicting {raw.shape[1]}×{raw.shape[2]} px")
    with ctx.db.session() as s:
        predictor = predictor_for_round(s, ctx.store, s.get(Project, project_id), model_version_id)
    # the labels, the model's maps (the "add a cell here" tool) and how sure it is of each cell
    # (the crops' scores, the round's crowd policy, the review overlay)
    result = predict_image_result(predictor, raw, mpp=mpp, maps=True, uncertainty=True)
    labels, source = result.labels, predictor.name
    key = labels_io.prediction_key(image_id, number)
    put_prediction_maps(ctx.store, maps_key(image_id, number), result.uncertainty, result.maps)
    labels_io.put_labels(ctx.store, key, labels)
    with ctx.db.session() as s:
        image = s.get(Image, image_id)
        image.labels_key, image.status = key, "predicted"
        rnd = s.get(Round, round_id)
        if rnd.predictor != source:
            rnd.predictor = source
        due = [image_id]
        if (rnd.policy or {}).get("take"):  # the round takes the least certain images: wait for all scores
            score = crop_scores(labels, result.uncertainty, [(0, 0, *labels.shape[1:])])[0].uncertainty
            due = image_pool.record_score(s, round_id, image_id, score) or []
        for chosen in due:
            ctx.queue.enqueue(s, "worker.jobs.crop_image", project_id=project_id, image_id=chosen,
                              round_id=round_id)
    ctx.progress(1.0, f"done: {int(labels[0].max())} cells by {source}")
    return {"key": key, "source": source}


def score_crops(store, crops: list, labels, key: str) -> None:
    """Set each crop's ``expected_fixes`` and ``uncertainty`` from the prediction's stored
    uncertainty map (left None when it has none, e.g. predicted before scores existed)."""
    from backend.services.prediction_maps import get_prediction_maps
    from worker.uncertainty import crop_scores

    u = get_prediction_maps(store, key).get("uncertainty") if store.exists(key) else None
    if u is None or u.shape != labels.shape:
        return
    for crop, score in zip(crops, crop_scores(labels, u, [(c.y0, c.x0, c.y1, c.x1) for c in crops])):
        crop.expected_fixes, crop.uncertainty = score.expected_fixes, score.uncertainty


@job
def crop_image(ctx: JobContext, image_id: int, round_id: int) -> dict:
    """Cut the image into crowd crops; gold crops are fused at once, so stitch may follow."""
    from backend.models import Round
    from backend.services import crowd_policy
    from backend.services.prediction_maps import maps_key

    with ctx.db.session() as s:
        crops = stitching.crop_image(s, ctx.store, image_id, round_id)
        n, n_gold = len(crops), sum(c.is_gold for c in crops)
        rnd = s.get(Round, round_id)
        predicted = labels_io.get_labels(ctx.store, labels_io.prediction_key(image_id, rnd.number))
        score_crops(ctx.store, crops, predicted, maps_key(image_id, rnd.number))
        skipped = crowd_policy.apply_to_new_crops(s, ctx.store, rnd, crops)
        due = {image_id}
        if crowd_policy.round_policy(rnd)["policy"] == "budget":
            allocation = crowd_policy.allocate_round(s, ctx.store, round_id)
            skipped += allocation["skipped"]
            due.update(allocation["images"])
        for image in sorted(due):
            stitching.queue_stitch_if_due(s, ctx.queue, image, round_id)
    ctx.progress(1.0, f"done: {n} crops ({n_gold} gold, {skipped} skip the crowd)")
    return {"crops": n, "gold": n_gold, "skipped": skipped}


@job
def fuse_crop(ctx: JobContext, crop_id: int) -> dict:
    """Fuse a crop's submissions when it has k of them; queue its image's one stitch when this
    was the image's last crop to fuse (see ``stitching.stitch_due``)."""
    from backend.models import Crop

    with ctx.db.session() as s:
        fused = stitching.fuse_crop(s, ctx.store, crop_id)
        crop = s.get(Crop, crop_id)
        image_id, round_id = crop.image_id, crop.round_id
    # the fuse is committed before the check: of two jobs fusing an image's last crops at once,
    # the later check sees both
    queued = False
    if fused:
        with ctx.db.session() as s:
            queued = stitching.queue_stitch_if_due(s, ctx.queue, image_id, round_id)
    ctx.progress(1.0, "done: fused" if fused else "done: waiting for more submissions")
    return {"fused": fused, "stitch_enqueued": queued}


@job
def stitch_image(ctx: JobContext, image_id: int, round_id: int) -> dict:
    """Stitch an image's fused crops and put it in the review queue."""
    with ctx.db.session() as s:
        stitch = stitching.stitch_image(s, ctx.store, image_id, round_id)
        if stitch is None:
            return {"stitched": False}
        out = {"stitched": True, "stitch_id": stitch.id, "cells": stitch.n_cells,
               "conflict_pixels": stitch.n_conflict_pixels, "changed_cells": stitch.n_changed_cells}
    ctx.progress(1.0, f"done: {out['cells']} cells, {out['conflict_pixels']} conflict px")
    return out


@job
def build_dataset(ctx: JobContext, project_id: int, then_train: dict | None = None) -> dict:
    """Approved images → DatasetVersion (QC, 80/10/10, 256² tiles); optionally chain a training."""
    from backend.services import datasets

    with ctx.db.session() as s:
        ds = datasets.build_dataset(s, ctx.store, project_id, progress=ctx.progress)
        out = {"dataset_id": ds.id, "version": ds.version, "tiles": ds.n_tiles, "qc": ds.qc}
        if then_train:
            ctx.queue.enqueue(s, "worker.jobs.train_model", queue="gpu", project_id=project_id,
                              dataset_id=ds.id, **then_train)
    ctx.progress(1.0, f"done: dataset v{out['version']} with {sum(out['tiles'].values())} tiles")
    return out


@job
def train_model(ctx: JobContext, project_id: int, dataset_id: int, steps: int, backbone: str,
                reason: str = "") -> dict:
    """Fine-tune (or train) a PanopticNet on a dataset version, evaluate it, promote by the rule."""
    from worker.training import train_version

    result = train_version(ctx, project_id, dataset_id, steps, backbone, reason)
    def fmt(value):
        return "—" if value is None else f"{value:.3f}"

    ctx.progress(1.0, f"done: score {fmt(result['headline'])}, F1 {fmt(result['f1'])} (replaces "
                 f"{result['reference']}: score {fmt(result['reference_headline'])}, F1 {fmt(result['reference_f1'])})"
                 + (", promoted" if result["promoted"] else ""))
    return result


@job
def evaluate_model(ctx: JobContext, model_version_id: int, dataset_id: int | None = None) -> dict:
    """Re-evaluate a stored model version on a dataset's test split."""
    from worker.training import evaluate_version

    return evaluate_version(ctx, model_version_id, dataset_id)


@job
def evaluate_image(ctx: JobContext, project_id: int, image_id: int, model: str) -> dict:
    """Score ``model`` (baseline, generalist or a model version id of the project) on one image
    against its uploaded ground truth, through the predict path at the image's pixel size."""
    from backend.errors import UserError
    from backend.models import Image, ModelVersion
    from worker.evaluate import evaluate_labelled_image, resolve_predictor

    with ctx.db.session() as s:
        image = s.get(Image, image_id)
        if image is None or image.project_id != project_id:
            raise UserError(f"no image with id {image_id} in project {project_id}")
        if image.ground_truth_key is None:
            raise UserError(f"image {image.name!r} has no ground truth to score against")
        if model.isascii() and model.isdigit():
            version = s.get(ModelVersion, int(model))
            if version is None or version.project_id != project_id:
                raise UserError(f"no model version with id {model} in project {project_id}")
        raw = ctx.store.get_array(image.raw_key)
        truth = labels_io.get_labels(ctx.store, image.ground_truth_key)
        mpp, name = image.pixel_size_um or image.project.pixel_size_um, image.name
        predictor = resolve_predictor(model, s, ctx.store)
    ctx.progress(0.1, f"predicting {name} with {predictor.name}")
    result = evaluate_labelled_image(predictor, raw, truth, mpp=mpp)
    result.update(model_spec=model, image_id=image_id, image=name, mpp=mpp)
    nuclear = "" if result["nuclear_f1"] is None else f", nuclear {result['nuclear_f1']:.3f}"
    headline = (f"whole-cell F1 {result['f1']:.3f}{nuclear}" if result["f1"] is not None
                else f"nuclear F1 {result['nuclear_f1']:.3f}")
    ctx.progress(1.0, f"done: {predictor.name}: {headline}")  # run_job keeps messages that start "done"
    return result
