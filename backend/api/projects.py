"""Projects and their images."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from backend.api import runtime
from backend.api.auth import current_user, require_role
from backend.errors import UserError
from backend.services import images as image_service
from backend.services import projects as project_service

bp = Blueprint("projects", __name__, url_prefix="/api/projects")


def json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise UserError("the request body must be a JSON object")
    return body


@bp.get("")
def list_projects():
    """Every project; anonymous callers get the public summary (id, name, channels, image count)."""
    full = current_user() is not None
    with runtime().db.session() as s:
        rows = [project_service.project_dict(s, p) for p in project_service.list_projects(s)]
    if not full:
        rows = [{k: r[k] for k in ("id", "name", "channels", "n_images")} for r in rows]
    return jsonify({"projects": rows})


@bp.post("")
@require_role("admin")
def create_project():
    body = json_body()
    name = body.pop("name", None)
    channels = body.pop("channels", None)
    with runtime().db.session() as s:
        project = project_service.create_project(s, name, channels, **body)
        return jsonify(project_service.project_dict(s, project)), 201


@bp.get("/<int:project_id>")
@require_role("reviewer")
def get_project(project_id: int):
    with runtime().db.session() as s:
        return jsonify(project_service.project_dict(s, project_service.get_project(s, project_id)))


@bp.patch("/<int:project_id>")
@require_role("admin")
def update_project(project_id: int):
    with runtime().db.session() as s:
        project = project_service.update_project(s, project_id, json_body())
        return jsonify(project_service.project_dict(s, project))


@bp.get("/<int:project_id>/images")
@require_role("reviewer")
def list_images(project_id: int):
    with runtime().db.session() as s:
        project = project_service.get_project(s, project_id)
        return jsonify({"images": [image_service.image_dict(i) for i in project.images]})


@bp.post("/<int:project_id>/images")
@require_role("admin")
def upload_images(project_id: int):
    """Multipart upload of one or more files (field ``files``; optional ``channels`` map).

    All or nothing: any bad file → 4xx naming it, and nothing is stored.
    """
    rt = runtime()
    files = request.files.getlist("files") or list(request.files.values())
    uploads = [image_service.Upload(f.filename or "", f.read()) for f in files]
    channel_map = image_service.parse_channel_map(request.form.get("channels"))
    with rt.db.session() as s:
        project = project_service.get_project(s, project_id)
        created = image_service.import_images(
            s,
            rt.store,
            project,
            uploads,
            image_service.ImportLimits.from_settings(rt.settings),
            channel_map,
        )
        return jsonify({"images": [image_service.image_dict(i) for i in created]}), 201


@bp.get("/<int:project_id>/images/<int:image_id>")
@require_role("reviewer")
def get_image(project_id: int, image_id: int):
    with runtime().db.session() as s:
        return jsonify(image_service.image_dict(image_service.get_image(s, image_id, project_id)))


@bp.get("/<int:project_id>/images/<int:image_id>/thumbnail.png")
@require_role("reviewer")
def image_thumbnail(project_id: int, image_id: int):
    rt = runtime()
    size = min(max(request.args.get("size", 256, type=int), 16), 1024)
    with rt.db.session() as s:
        image = image_service.get_image(s, image_id, project_id)
        colours = [c["color"] for c in image.project.channels]
        png = image_service.image_thumbnail(rt.store, image, colours, size)
    return Response(png, mimetype="image/png", headers={"Cache-Control": "private, max-age=300"})
