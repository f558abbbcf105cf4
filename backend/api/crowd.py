"""Crowd pages and the token-bearing crop API used by the annotation editor.

No cookies here: the page keeps its bearer token in memory. Every response carries the
project's ``frame-ancestors`` allowlist and ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import time

import numpy as np
from flask import Blueprint, g, jsonify, render_template, request

from backend.api import runtime
from backend.api.auth import client_address
from backend.api.body_limits import limit_body, labels_body_bytes
from backend.api.wire import (
    EncodedArray,
    EncodedArrayCache,
    box_array,
    box_payload,
    encode_array,
    encoded_response,
    header_int,
    json_int,
    request_encoded_array,
)
from backend.errors import NotFoundError, UserError
from backend.models import Crop, Image, Project, Round
from backend.services import labels_io, lease_limits, task_access, tasks
from backend.services.instructions import instructions_html
from backend.services.projects import get_project
from backend.services.task_access import TaskAccess
from backend.services.tokens import verify_token

bp = Blueprint("crowd", __name__)
SERVER_TOOLS = ("threshold", "watershed_split", "autofit", "add_cell")
MTURK_ORIGINS = "https://www.mturk.com https://workersandbox.mturk.com"
# Encoded channels and labels of crops and committed revisions, per process. Keys name what the
# content depends on: the store and blob key, plus the window for a crop's blob (re-cropping may
# rewrite it); a revision's blob is written once, before its row commits (tasks.save_revision).
WIRE_CACHE = EncodedArrayCache(max_bytes=64 * 1024 * 1024, ttl_s=600)  # per gunicorn worker


def frame_ancestors(allowed: list[str] | None) -> str:
    """The CSP frame-ancestors sources for a project's allowlist (None: this site only)."""
    return " ".join(["'self'"] + [a for a in (allowed or []) if a != "'self'"])


@bp.after_request
def crowd_headers(response):
    ancestors = g.get("crowd_frame_ancestors") or frame_ancestors(None)
    response.headers["Content-Security-Policy"] = (
        f"frame-ancestors {ancestors}; default-src 'self'; img-src 'self' blob: data:; "
        f"style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; "
        f"form-action 'self' {MTURK_ORIGINS}; base-uri 'none'; object-src 'none'"
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.pop("Set-Cookie", None)
    return response


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""


def _claims():
    """The verified claims of the request's bearer token, or None when it is not valid."""
    settings = runtime().settings
    try:
        return verify_token(settings.secret_key, _bearer(), settings.assignment_ttl_s)
    except UserError:
        return None


def _access(session, crop_id: int, write: bool = False) -> TaskAccess:
    """The checked task of a request that may change it (ORM rows in ``session``)."""
    settings = runtime().settings
    token, claims = _bearer(), _claims()
    rows = None
    if claims is not None:  # one query loads what authorise reads (crop, assignment) and the project
        rows = task_access.preload_task(session, claims.crop_id, claims.assignment_id)
        if rows is not None:  # the allowlist of the token's own project, even when this request fails
            g.crowd_frame_ancestors = frame_ancestors(rows[2].frame_ancestors)
    g.crowd_task_rows = rows  # the session's identity map holds them only while referenced
    return task_access.authorise(session, token, crop_id, secret=settings.secret_key, ttl_s=settings.assignment_ttl_s,
                                 write=write, claims=claims, newest=rows[4] if rows and len(rows) > 4 else None)


def _read_access(crop_id: int) -> task_access.CropRead:
    """The checked crop of a read request: one query, no ORM session, no transaction."""
    rt = runtime()
    token, claims = _bearer(), _claims()
    if claims is None:  # the same 401 as for a write
        verify_token(rt.settings.secret_key, token, rt.settings.assignment_ttl_s)
    row = task_access.load_crop_read(rt.db, claims)
    if row is not None:
        g.crowd_frame_ancestors = frame_ancestors(row.frame_ancestors)
    return task_access.check_read(row, claims, token, crop_id)


def _labels_cache_key(store, key: str, crop_key: str, window: tuple[int, int, int, int]) -> tuple:
    return (store.url, "labels", key) + ((window,) if key == crop_key else ())


def _crop_channels(store, key: str, window: tuple[int, int, int, int]) -> EncodedArray:
    """A crop's (C,h,w) uint8 channels in the wire format, from the cache or the store."""
    cache_key = (store.url, "channels", key, window)
    encoded = WIRE_CACHE.get(cache_key)
    if encoded is None:
        encoded = encode_array(store.get_arrays(key)["channels"])
        WIRE_CACHE.put(cache_key, encoded)
    return encoded


def _window(crop: Crop) -> tuple[int, int, int, int]:
    return crop.y0, crop.x0, crop.y1, crop.x1


def _cached_label_reader(store, crop: Crop):
    """``read(key)`` for tasks.current_labels: the cache when it holds the key, else the store."""

    def read(key: str):
        encoded = WIRE_CACHE.get(_labels_cache_key(store, key, crop.key, _window(crop)))
        return encoded.decode() if encoded is not None else labels_io.get_labels(store, key)

    return read


def task_dict(session, crop: Crop, access_or_lease) -> dict:
    image = session.get(Image, crop.image_id)
    project = session.get(Project, image.project_id)
    assignment = access_or_lease.assignment
    _, revision = tasks.newest_labels_ref(session, crop, assignment, getattr(access_or_lease, "newest", None))
    return {
        "crop_id": crop.id,
        "shape": [crop.y1 - crop.y0, crop.x1 - crop.x0],
        "channels": project.channels,
        "features": list(project.features),  # the layers to offer; the labels always hold both
        "instructions_html": instructions_html(project.instructions),
        "platform": project.platform,
        "revision": revision,
        "read_only": assignment is None or assignment.status != "leased",
        "reopen_reason": crop.reopen_reason,
        "lease_expires_at": assignment.lease_expires_at.isoformat() + "Z" if assignment else None,
        "assignment_id": assignment.id if assignment else None,
    }


# --- pages ----------------------------------------------------------------------------------------
@bp.get("/annotate/<int:project_id>")
def annotate_page(project_id: int):
    """The editor shell; its script leases a task with the URL's platform parameters."""
    with runtime().db.session() as s:
        try:
            project = get_project(s, project_id)
        except NotFoundError:
            # No project, so no allowlist: the page holds no data and no action, so any platform
            # may frame it and the annotator reads why instead of a blocked frame.
            g.crowd_frame_ancestors = "*"
            page = render_template("crowd_error.html", title="This task link leads nowhere",
                                   text=f"There is no annotation project {project_id} here: it may have been "
                                        "removed, or the link was copied incompletely. Go back to the study or "
                                        "HIT on your platform and open the task from there, or contact the "
                                        "requester.")
            return page, 404
        g.crowd_frame_ancestors = frame_ancestors(project.frame_ancestors)
        return render_template("annotate.html", project_id=project.id, project_name=project.name)


@bp.get("/annotate/example-host")
def example_host():
    """A host page that embeds the crowd editor in an iframe, as a crowdsourcing platform would."""
    with runtime().db.session() as s:
        project = s.query(Project).order_by(Project.id).first()
        project_id = project.id if project else 0
    response = render_template("example_host.html", project_id=project_id)
    return response


# --- API ------------------------------------------------------------------------------------------
@bp.post("/api/crowd/<int:project_id>/lease")
def lease(project_id: int):
    """Lease a task: ``{"params": {the task link's query parameters}, "resume": secret or null}``.

    The answer's ``resume`` is what the page sends back to continue the same task after a reload.
    """
    rt = runtime()
    lease_limits.check_address(rt.rate_limiter, rt.settings, client_address())
    body = request.get_json(silent=True) or {}
    params = body.get("params", {}) if isinstance(body, dict) else None
    if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
        raise UserError("params must be an object of the task link's query parameters")
    resume = body.get("resume")
    if resume is not None and not isinstance(resume, str):
        raise UserError("resume must be the text the last lease answered", field="resume")
    with rt.db.session() as s:
        project = get_project(s, project_id)
        g.crowd_frame_ancestors = frame_ancestors(project.frame_ancestors)
        lease_limits.check_platform(rt.rate_limiter, rt.settings, project.id, project.platform)
        result = tasks.lease_task(s, project, params, secret=rt.settings.secret_key, ttl_s=rt.settings.assignment_ttl_s,
                                  resume=resume, max_open=rt.settings.max_open_leases_per_worker)
        return jsonify({"token": result.token, "preview": result.preview, "resume": result.resume,
                        "task": task_dict(s, result.crop, result)})


@bp.get("/api/crowd/crops/<int:crop_id>")
def task_info(crop_id: int):
    with runtime().db.session() as s:
        access = _access(s, crop_id)
        return jsonify(task_dict(s, access.crop, access))


@bp.get("/api/crowd/crops/<int:crop_id>/channels")
def crop_channels(crop_id: int):
    read = _read_access(crop_id)
    return encoded_response(_crop_channels(runtime().store, read.key, read.window))


@bp.get("/api/crowd/crops/<int:crop_id>/labels")
def crop_labels(crop_id: int):
    store = runtime().store
    read = _read_access(crop_id)
    cache_key = _labels_cache_key(store, read.labels_key, read.key, read.window)
    encoded = WIRE_CACHE.get(cache_key)
    if encoded is None:
        encoded = encode_array(labels_io.get_labels(store, read.labels_key))
        WIRE_CACHE.put(cache_key, encoded)
    return encoded_response(encoded, {"X-Revision": str(read.revision)})


@bp.put("/api/crowd/crops/<int:crop_id>/labels")
def put_labels(crop_id: int):
    rt = runtime()
    base = header_int("X-Base-Revision", required="name the revision these labels were based on")
    edit_count = header_int("X-Edit-Count")
    with rt.db.session() as s:
        access = _access(s, crop_id, write=True)
        shape = (2, access.crop.y1 - access.crop.y0, access.crop.x1 - access.crop.x0)
        limit_body(labels_body_bytes(shape[1], shape[2]), f"the most a deflate stream of {shape} int32 labels takes")
        labels, encoded = request_encoded_array(shape)
        rev = tasks.save_revision(s, rt.store, access, labels, base, edit_count,
                                  read=_cached_label_reader(rt.store, access.crop), zlib_stream=encoded.data)
        cache_key = _labels_cache_key(rt.store, rev.key, access.crop.key, _window(access.crop))
        saved = {"revision": rev.number, "changed_pixels": rev.changed_pixels}
    WIRE_CACHE.put(cache_key, encoded)  # committed: the next save and reload read it from here
    return jsonify(saved), 201


@bp.post("/api/crowd/crops/<int:crop_id>/tools/<tool>")
def server_tool(crop_id: int, tool: str):
    """Threshold, watershed split, autofit or add a cell on a bounding box; returns only the changed box."""
    from backend.services.label_tools import run_tool

    if tool not in SERVER_TOOLS:
        raise UserError(f"unknown tool {tool!r}; server tools are {', '.join(SERVER_TOOLS)}")
    rt = runtime()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise UserError("the request body must be a JSON object")
    started = time.perf_counter()
    with rt.db.session() as s:
        access = _access(s, crop_id, write=True)
        crop = access.crop
        shape = (crop.y1 - crop.y0, crop.x1 - crop.x0)
        round_number = s.get(Round, crop.round_id).number if tool == "add_cell" else None
    if tool == "add_cell":
        return jsonify(_add_cell(rt.store, crop, round_number, shape, body, started))
    channels = _crop_channels(rt.store, crop.key, _window(crop)).decode()
    result = run_tool(tool, channels, shape, body, decode_box=box_array)
    payload = {"tool": tool, **result.payload(box_payload)}
    payload["ms"] = round((time.perf_counter() - started) * 1000, 2)
    return jsonify(payload)


def _crop_maps(store, crop: Crop, round_number: int) -> np.ndarray | None:
    """The crop's window of its round's model maps, (4, h, w) uint8: distance (whole-cell, nuclear,
    each scaled to 0..255 over the window: the tool reads only its shape) then foreground (× 255);
    None when the round's predictor left no maps. Cached like the crop's channels."""
    from backend.services.prediction_maps import get_prediction_maps, maps_key

    key = maps_key(crop.image_id, round_number)
    cache_key = (store.url, "maps", key, _window(crop))
    encoded = WIRE_CACHE.get(cache_key)
    if encoded is None:
        maps = get_prediction_maps(store, key) if store.exists(key) else {}
        window = np.zeros((0,), np.uint8)
        if "distance" in maps and "foreground" in maps:
            d = maps["distance"][:, crop.y0:crop.y1, crop.x0:crop.x1]
            d = d / np.maximum(d.max(axis=(1, 2), keepdims=True), 1e-6)
            f = maps["foreground"][:, crop.y0:crop.y1, crop.x0:crop.x1]
            window = np.rint(np.clip(np.concatenate([d, f]), 0, 1) * 255).astype(np.uint8)
        encoded = encode_array(window)
        WIRE_CACHE.put(cache_key, encoded)
    window = encoded.decode()
    return window if window.size else None


def _add_cell(store, crop: Crop, round_number: int, shape: tuple[int, int], body: dict, started: float) -> dict:
    """"Add a cell here" on a crop: the round's model maps, else maps derived from the crop's stain."""
    from backend.services.add_cell import run_add_cell

    window = _crop_maps(store, crop, round_number)
    channels = _crop_channels(store, crop.key, _window(crop))

    def maps_of(bbox):
        if window is None:
            return None
        y0, x0, y1, x1 = bbox
        box = window[:, y0:y1, x0:x1].astype(np.float32) / 255.0
        return box[:2], box[2:]

    def stain_of(channel, bbox):
        y0, x0, y1, x1 = bbox
        return channels.decode()[channel, y0:y1, x0:x1]

    answer = run_add_cell(body, shape, channels.shape[0], box_array, maps_of, stain_of)
    answer["labels"] = box_payload(answer["labels"])
    return {"tool": "add_cell", **answer, "ms": round((time.perf_counter() - started) * 1000, 2)}


@bp.post("/api/crowd/crops/<int:crop_id>/submit")
def submit(crop_id: int):
    rt = runtime()
    body = request.get_json(silent=True) or {}
    if not isinstance(body, dict):
        raise UserError("the request body must be a JSON object")
    try:
        active = float(body.get("active_seconds", 0))
    except (TypeError, ValueError):
        raise UserError("active_seconds must be a number", field="active_seconds") from None
    edits = json_int(body, "edit_count", default=0)
    if not np.isfinite(active):
        raise UserError("active_seconds must be a finite number", field="active_seconds")
    with rt.db.session() as s:
        access = _access(s, crop_id, write=True)
        result = tasks.submit(s, rt.store, rt.queue, access, active_seconds=active, edit_count=edits)
        return jsonify(result)
