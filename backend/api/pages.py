"""Server-rendered pages: the project list and a project's images (readable without JavaScript)."""

from flask import Blueprint, render_template

from backend.api import runtime
from backend.api.auth import require_role
from backend.services import projects as project_service

bp = Blueprint("pages", __name__)


@bp.get("/")
@require_role("reviewer")
def index():
    rt = runtime()
    with rt.db.session() as s:
        projects = [project_service.project_dict(s, p) for p in project_service.list_projects(s)]
    return render_template("index.html", projects=projects, health=rt.health())


@bp.get("/projects/<int:project_id>")
@require_role("reviewer")
def project_page(project_id: int):
    with runtime().db.session() as s:
        project = project_service.get_project(s, project_id)
        info = project_service.project_dict(s, project)
        images = [
            {"id": i.id, "name": i.name, "height": i.height, "width": i.width, "status": i.status,
             "dtype": i.dtype, "n_channels": i.n_channels, "has_ground_truth": i.ground_truth_key is not None}
            for i in project.images
        ]
    return render_template("project.html", project=info, images=images)
