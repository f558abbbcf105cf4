"""Review API: the queue, the stitched image and its overlays, edits, approve and reject.

Cookie-authenticated: state changes need the X-CSRF-Token header (see backend/api/auth.py).
"""

from __future__ import annotations

import numpy as np
from flask import Blueprint, jsonify, request

from backend.api import runtime
from backend.api.auth import current_user, require_role
from backend.api.body_limits import labels_body_bytes, limit_body
from backend.api.wire import (
    array_response,
    box_array,
    box_payload,
    header_int,
    json_int,
    query_int,
    request_encoded_array,
)
from backend.errors import UserError
from backend.models import Crop, Image, Project, Round
from backend.services import review, stitching
from backend.services.label_tools import run_tool
from backend.services.add_cell import maps_window, run_add_cell
from backend.services.prediction_maps import get_prediction_maps, maps_key, unsure_mask

bp = Blueprint("review", __name__, url_prefix="/api/review")


def _json_object() -> dict:
    """The request's JSON body (``{}`` when there is none); a 400 for JSON that is not an object."""
    body = request.get_json(silent=True)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise UserError("the request body must be a JSON object")
    return body


@bp.get("/queue")
@require_role("reviewer")
def queue():
    project_id = query_int("project_id")
    with runtime().db.session() as s:
        return jsonify({"queue": review.review_queue(s, project_id)})


def _stitch_info(s, stitch) -> dict:
    image = s.get(Image, stitch.image_id)
    project = s.get(Project, image.project_id)
    rnd = s.get(Round, stitch.round_id)
    crops = s.query(Crop).filter_by(image_id=image.id, round_id=stitch.round_id).order_by(Crop.index).all()
    return {
        "stitch_id": stitch.id, "image_id": image.id, "image_name": image.name, "project_id": project.id,
        "shape": [image.height, image.width], "channels": project.channels,
        "features": list(project.features),  # the layers to offer; the labels always hold both
        "round": rnd.number, "status": stitch.status, "revision": stitch.revision,
        "n_cells": stitch.n_cells, "n_conflict_pixels": stitch.n_conflict_pixels,
        "n_changed_cells": stitch.n_changed_cells,
        "crops": [{"id": c.id, "index": c.index, "bbox": [c.y0, c.x0, c.y1, c.x1], "is_gold": c.is_gold,
                   "source": "gold" if c.is_gold else c.source, "uncertainty": c.uncertainty,
                   "status": c.status, "generation": c.generation, "reopen_reason": c.reopen_reason}
                  for c in crops],
    }


@bp.get("/stitches/<int:stitch_id>")
@require_role("reviewer")
def stitch_info(stitch_id: int):
    with runtime().db.session() as s:
        return jsonify(_stitch_info(s, review.get_stitch(s, stitch_id)))


@bp.get("/stitches/<int:stitch_id>/channels")
@require_role("reviewer")
def channels(stitch_id: int):
    from backend.core.imaging import channels_to_uint8

    rt = runtime()
    with rt.db.session() as s:
        image = s.get(Image, review.get_stitch(s, stitch_id).image_id)
        raw_key, drange = image.raw_key, np.asarray(image.display_range, dtype=np.float64)
    return array_response(channels_to_uint8(rt.store.get_array(raw_key), drange))


@bp.get("/stitches/<int:stitch_id>/labels")
@require_role("reviewer")
def labels(stitch_id: int):
    rt = runtime()
    with rt.db.session() as s:
        labels_now, revision = review.current_review_labels(s, rt.store, review.get_stitch(s, stitch_id))
    return array_response(labels_now, {"X-Revision": str(revision)})


@bp.put("/stitches/<int:stitch_id>/labels")
@require_role("reviewer")
def save_labels(stitch_id: int):
    rt = runtime()
    base = header_int("X-Base-Revision", required="name the revision these labels were based on")
    with rt.db.session() as s:
        stitch = review.get_stitch(s, stitch_id)
        image = s.get(Image, stitch.image_id)
        limit_body(labels_body_bytes(image.height, image.width),
                   f"the most a deflate stream of (2, {image.height}, {image.width}) int32 labels takes")
        labels_new, encoded = request_encoded_array((2, image.height, image.width))
        rev = review.save_review_revision(s, rt.store, stitch, labels_new, base, current_user().username,
                                          zlib_stream=encoded.data)
        return jsonify({"revision": rev.number, "changed_pixels": rev.changed_pixels}), 201


@bp.get("/stitches/<int:stitch_id>/overlays/<name>")
@require_role("reviewer")
def overlay(stitch_id: int, name: str):
    """``conflicts``: (2,H,W) uint8 pixels where the crowd made crops disagree; ``changed``: (1,H,W)
    uint8 cells of the project's first feature changed against what the crowd started from; ``uncertain``: (2,H,W) uint8 cells the round's
    prediction was unsure of, and places where it may have missed one
    (:data:`backend.services.prediction_maps.UNSURE`)."""
    rt = runtime()
    with rt.db.session() as s:
        stitch = review.get_stitch(s, stitch_id)
        if name == "conflicts":
            mask = rt.store.get_arrays(stitch.conflicts_key)["conflicts"].astype(np.uint8)
        elif name == "changed":
            rnd = s.get(Round, stitch.round_id)
            current, _ = review.current_review_labels(s, rt.store, stitch)
            feature = stitching.feature_planes(s.get(Image, stitch.image_id).project)[0]
            mask = review.changed_mask(rt.store, stitch, rnd.number, stitch.image_id, current,
                                       feature)[None].astype(np.uint8)
        elif name == "uncertain":
            rnd = s.get(Round, stitch.round_id)
            mask = unsure_mask(rt.store, stitch.image_id, rnd.number)
        else:
            raise UserError(f"unknown overlay {name!r}; use conflicts, changed or uncertain")
    return array_response(mask)


@bp.post("/stitches/<int:stitch_id>/tools/<tool>")
@require_role("reviewer")
def tool(stitch_id: int, tool: str):
    from backend.core.imaging import channels_to_uint8

    rt = runtime()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise UserError("the request body must be a JSON object")
    with rt.db.session() as s:
        stitch = review.get_stitch(s, stitch_id)
        image = s.get(Image, stitch.image_id)
        raw_key, drange, shape = image.raw_key, np.asarray(image.display_range), (image.height, image.width)
        image_id, round_number = image.id, s.get(Round, stitch.round_id).number
    if tool == "add_cell":
        return jsonify(_add_cell(rt.store, raw_key, drange, shape, maps_key(image_id, round_number), body))
    if tool not in ("threshold", "watershed_split", "autofit"):
        raise UserError(f"unknown tool {tool!r}; server tools are threshold, watershed_split, autofit, add_cell")
    bbox = body.get("bbox")
    raw = rt.store.get_array(raw_key)
    if isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int) for v in bbox):
        # only the box's pixels need display scaling
        y0, x0, y1, x1 = (max(0, bbox[0]), max(0, bbox[1]), bbox[2], bbox[3])
        chans = np.zeros((raw.shape[0],) + shape, dtype=np.uint8)
        chans[:, y0:y1, x0:x1] = channels_to_uint8(raw[:, y0:y1, x0:x1], drange)
    else:
        chans = channels_to_uint8(raw, drange)
    result = run_tool(tool, chans, shape, body, decode_box=box_array)
    return jsonify({"tool": tool, **result.payload(box_payload)})


def _add_cell(store, raw_key: str, drange: np.ndarray, shape: tuple[int, int], key: str, body: dict) -> dict:
    """"Add a cell here" on a stitched image: the round's model maps of the image, else maps
    derived from the image's stain, read for the request's box only."""
    from backend.core.imaging import channels_to_uint8

    maps = get_prediction_maps(store, key) if store.exists(key) else {}
    raw = store.get_array(raw_key)

    def stain_of(channel, bbox):
        y0, x0, y1, x1 = bbox
        return channels_to_uint8(raw[channel:channel + 1, y0:y1, x0:x1], drange[channel:channel + 1])[0]

    answer = run_add_cell(body, shape, raw.shape[0], box_array, lambda bbox: maps_window(maps, bbox), stain_of,
                          what="image")
    return {"tool": "add_cell", **answer, "labels": box_payload(answer["labels"])}


@bp.post("/stitches/<int:stitch_id>/approve")
@require_role("reviewer")
def approve(stitch_id: int):
    rt = runtime()
    body = _json_object()
    base = json_int(body, "revision")
    with rt.db.session() as s:
        r = review.approve(s, rt.store, review.get_stitch(s, stitch_id), current_user(), base)
        return jsonify({"review_id": r.id, "decision": r.decision})


@bp.post("/stitches/<int:stitch_id>/reject")
@require_role("reviewer")
def reject(stitch_id: int):
    rt = runtime()
    body = _json_object()
    with rt.db.session() as s:
        r = review.reject(s, rt.store, review.get_stitch(s, stitch_id), current_user(),
                          body.get("reason", ""), body.get("crop_ids"))
        return jsonify({"review_id": r.id, "decision": r.decision, "crop_ids": r.crop_ids})
