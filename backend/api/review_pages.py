"""The reviewer's pages: the queue of stitched images waiting for review, and the review editor.

Both need the reviewer role (admins may review too); anonymous visitors are sent to the login
page. The queue is rendered on the server (readable without JavaScript); the editor page is a
shell that ``frontend/pages/review.js`` fills from the JSON/binary API of
:mod:`backend.api.review`.
"""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, Response, abort, render_template, request

from backend.api import runtime
from backend.api.auth import require_role
from backend.errors import NotFoundError
from backend.models import Image, Project
from backend.services import projects as project_service
from backend.services import review as review_service

bp = Blueprint("review_pages", __name__)
@bp.after_request
def review_page_headers(response: Response) -> Response:
    """Never cached (the queue changes); the app adds the strict CSP of every staff page."""
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def waiting_for(since_iso: str, now: datetime | None = None) -> str:
    """How long an image has waited, for people: "just now", "12 min", "3 h 5 min", "2 d 4 h".

    Parameters
    ----------
    since_iso : str
        ISO 8601 UTC time, as the queue gives it (``2024-05-01T10:00:00.123456Z``).
    now : datetime, optional
        Aware UTC "now" (default: the clock).

    Returns
    -------
    str
        A short duration; "just now" under a minute (and for times in the future).
    """
    since = datetime.fromisoformat(since_iso.removesuffix("Z"))
    if since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    seconds = int(((now or datetime.now(timezone.utc)) - since).total_seconds())
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if minutes < 1:
        return "just now"
    if hours < 1:
        return f"{minutes} min"
    if days < 1:
        rest = minutes - hours * 60
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    rest = hours - days * 24
    return f"{days} d {rest} h" if rest else f"{days} d"


@bp.get("/review")
@require_role("reviewer")
def queue_page():
    """Stitched images waiting for review, oldest first; ``?project_id=`` narrows to one project."""
    project_id = request.args.get("project_id", type=int)
    with runtime().db.session() as s:
        projects = {p.id: p.name for p in project_service.list_projects(s)}
        if project_id is not None and project_id not in projects:
            project_id = None
        queue = review_service.review_queue(s, project_id)
    for item in queue:
        item["project_name"] = projects.get(item["project_id"], f"project {item['project_id']}")
        item["waiting"] = waiting_for(item["waiting_since"])
    return render_template("review_queue.html", queue=queue, projects=projects, project_id=project_id)


@bp.get("/review/<int:stitch_id>")
@require_role("reviewer")
def editor_page(stitch_id: int):
    """The review editor for one stitched image (a 404 page when there is none)."""
    with runtime().db.session() as s:
        try:
            stitch = review_service.get_stitch(s, stitch_id)
        except NotFoundError as exc:
            abort(404, description=f"{exc.message}: it may have been re-stitched or removed; pick one from /review")
        image = s.get(Image, stitch.image_id)
        project = s.get(Project, image.project_id)
        page = {"stitch_id": stitch.id, "image_name": image.name, "project_id": project.id,
                "project_name": project.name, "status": stitch.status}
    return render_template("review.html", **page)
