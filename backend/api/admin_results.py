"""The admin console's results: model versions, the dashboard, and exports (routes on ``admin.bp``).

Reviewers may read the dashboard (page, JSON, SVG); model versions and exports need the admin
role. Split from :mod:`backend.api.admin`, which imports this module so that registering
``admin.bp`` registers these routes too.
"""

from __future__ import annotations

from flask import Response, jsonify, request, send_file, url_for
from markupsafe import Markup
from sqlalchemy import select

from backend.api import runtime
from backend.api.admin import act, bp, body_params, image_rows, int_param, render_page
from backend.api.auth import current_user, require_role
from backend.errors import NotFoundError
from backend.models import DatasetVersion, ModelVersion
from backend.services import dashboard, exports, registry
from backend.services import images as image_service
from backend.services import projects as project_service


# --- model versions -----------------------------------------------------------------------------------
@bp.get("/api/projects/<int:project_id>/models")
@require_role("admin")
def list_models(project_id: int):
    """Model versions of the project, newest first, with their test metrics."""
    with runtime().db.session() as s:
        project_service.get_project(s, project_id)
        versions = s.scalars(select(ModelVersion).where(ModelVersion.project_id == project_id)
                             .order_by(ModelVersion.version.desc()))
        return jsonify({"models": [registry.model_dict(m) for m in versions]})


@bp.post("/api/projects/<int:project_id>/models/<int:model_id>/promote")
@require_role("admin")
def promote_model(project_id: int, model_id: int):
    """Promote a ready version: the next round predicts with it."""
    def action():
        with runtime().db.session() as s:
            mv = s.get(ModelVersion, model_id)
            if mv is None or mv.project_id != project_id:
                raise NotFoundError(f"no model version with id {model_id} in project {project_id}")
            out = registry.model_dict(registry.promote(s, model_id))
        return out, 200, f"Model v{out['version']} promoted: the next round predicts with it."

    return act(url_for("admin.rounds_page", project_id=project_id), action)


@bp.post("/api/projects/<int:project_id>/models/rollback")
@require_role("admin")
def roll_back_model(project_id: int):
    """Retire the promoted version; the one promoted before it (or the baseline) serves again."""
    def action():
        with runtime().db.session() as s:
            project_service.get_project(s, project_id)
            previous = registry.roll_back(s, project_id)
            out = {"promoted": registry.model_dict(previous) if previous else None}
        serving = f"model v{out['promoted']['version']}" if out["promoted"] else "the classical baseline"
        return out, 200, f"Rolled back: {serving} predicts the next round."

    return act(url_for("admin.rounds_page", project_id=project_id), action)


@bp.post("/api/projects/<int:project_id>/retrain")
@require_role("admin")
def retrain(project_id: int):
    """Build a dataset from the approved images and train a new model version on it."""

    def action():
        rt = runtime()
        body = body_params()
        steps = int_param(body, "steps", rt.settings.train_steps)
        backbone = body.get("backbone") or rt.settings.train_backbone
        with rt.db.session() as s:
            project = project_service.get_project(s, project_id)
            job = registry.start_retraining(s, rt.queue, project, steps=steps, backbone=backbone,
                                            reason=f"admin {current_user().username}")
            out = {"job_id": job.id, "kind": job.kind, "steps": steps, "backbone": backbone}
        return out, 202, f"Retraining queued ({steps} steps, {backbone}); follow it under Jobs."

    return act(url_for("admin.rounds_page", project_id=project_id), action)


# --- dashboard ----------------------------------------------------------------------------------------------
@bp.get("/projects/<int:project_id>/dashboard")
@require_role("reviewer")
def dashboard_page(project_id: int):
    """One SVG chart per figure across rounds, inline (readable without JavaScript), and the table."""
    rt = runtime()
    with rt.db.session() as s:
        project = project_service.get_project(s, project_id)
        figures = dashboard.project_figures(s, rt.store, project_id)
    charts = {name: Markup(svg) for name, svg in dashboard.all_chart_svgs(figures).items()}
    return render_page("admin/dashboard.html", project, tab="dashboard", figures=figures, charts=charts)


@bp.get("/api/projects/<int:project_id>/dashboard")
@require_role("reviewer")
def dashboard_json(project_id: int):
    """The figures per round (see :class:`backend.services.dashboard.RoundFigures`)."""
    rt = runtime()
    with rt.db.session() as s:
        project_service.get_project(s, project_id)
        figures = dashboard.project_figures(s, rt.store, project_id)
    return jsonify({"rounds": [f.as_dict() for f in figures], "charts": list(dashboard.CHART_NAMES)})


@bp.get("/api/projects/<int:project_id>/dashboard/<name>.svg")
@require_role("reviewer")
def dashboard_svg(project_id: int, name: str):
    """One figure as a standalone SVG document; 404 for an unknown figure name."""
    if name not in dashboard.CHART_NAMES:
        raise NotFoundError(f"no figure {name!r}; figures are {', '.join(dashboard.CHART_NAMES)}")
    rt = runtime()
    with rt.db.session() as s:
        project_service.get_project(s, project_id)
        figures = dashboard.project_figures(s, rt.store, project_id)
    return Response(dashboard.chart_svg(figures, name), mimetype="image/svg+xml",
                    headers={"Cache-Control": "no-store"})


# --- exports -------------------------------------------------------------------------------------------------
@bp.get("/projects/<int:project_id>/exports")
@require_role("admin")
def exports_page(project_id: int):
    """Download links: dataset versions as .npz, images with their labels as OME-TIFF."""
    with runtime().db.session() as s:
        project = project_service.get_project(s, project_id)
        datasets = [exports.dataset_dict(d) for d in s.scalars(
            select(DatasetVersion).where(DatasetVersion.project_id == project_id)
            .order_by(DatasetVersion.version.desc()))]
        rows = image_rows(s, project)
    return render_page("admin/exports.html", project, tab="exports", datasets=datasets, images=rows)


@bp.get("/api/projects/<int:project_id>/datasets")
@require_role("admin")
def list_datasets(project_id: int):
    """Dataset versions of the project, newest first, with tiles per split and QC."""
    with runtime().db.session() as s:
        project_service.get_project(s, project_id)
        rows = s.scalars(select(DatasetVersion).where(DatasetVersion.project_id == project_id)
                         .order_by(DatasetVersion.version.desc()))
        return jsonify({"datasets": [exports.dataset_dict(d) for d in rows]})


def _download(fileobj, mimetype: str, filename: str) -> Response:
    fileobj.seek(0, 2)
    size = fileobj.tell()
    fileobj.seek(0)
    response = send_file(fileobj, mimetype=mimetype, as_attachment=True, download_name=filename)
    response.content_length = size
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/api/projects/<int:project_id>/datasets/<int:dataset_id>/export.npz")
@require_role("admin")
def export_dataset(project_id: int, dataset_id: int):
    """The dataset version as .npz: ``X`` (N,H,W,C) float32, ``y`` (N,H,W,2) int32, ``split`` (N,).
    ``?split=train|val|test`` exports one split; default all, concatenated."""
    rt = runtime()
    split = request.args.get("split") or None
    with rt.db.session() as s:
        project = project_service.get_project(s, project_id)
        ds = exports.get_dataset(s, project_id, dataset_id)
        name = exports.export_filename(project.name, f"dataset_v{ds.version}", split or "", suffix=".npz")
    fileobj = exports.dataset_npz(rt.store, ds, split)
    return _download(fileobj, "application/octet-stream", name)


@bp.get("/api/projects/<int:project_id>/images/<int:image_id>/export.ome.tif")
@require_role("admin")
def export_image(project_id: int, image_id: int):
    """The image (series 0, its channels) and its labels (series 1, whole_cell + nuclear, int32)
    as one OME-TIFF. ``?labels=current`` (default) or ``ground_truth``."""
    rt = runtime()
    source = request.args.get("labels", "current")
    with rt.db.session() as s:
        image = image_service.get_image(s, image_id, project_id)
        channel_names = image.project.channel_names
        name = exports.export_filename(image.name.rsplit(".", 1)[0], source if source != "current" else "",
                                       suffix=".ome.tif")
        s.expunge(image)
    fileobj = exports.image_ome_tiff(rt.store, image, channel_names, source)
    return _download(fileobj, "image/tiff", name)
