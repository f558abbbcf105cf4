"""The lab admin console: server-rendered pages and the JSON API behind them (blueprint ``admin``).

Who may do what: reviewers may READ a project's images page and its dashboard (figures per
round, as JSON or SVG); everything else — project settings, uploads, rounds, jobs, crowd links,
annotators and blocking, model versions, exports — needs the admin role. Every change is a POST
(or PATCH) that passes the CSRF check of :mod:`backend.api.auth` when cookie-authenticated.

Actions answer JSON to API clients and, when sent by a plain HTML form, redirect back to their
page with a flash message (so the console works without JavaScript; its small ES modules only
add upload progress bars and live job progress).
"""

from __future__ import annotations

from typing import Callable

from flask import Blueprint, Response, flash, jsonify, redirect, render_template, request, url_for
from markupsafe import Markup
from sqlalchemy import select

from backend.api import runtime
from backend.api.auth import current_user, require_role
from backend.api.project_form import ProjectForm
from backend.core.imaging import ImageImportError
from backend.errors import ConflictError, NotFoundError, UserError
from backend.models import IMAGE_STATUSES, Job, ModelVersion, Project, Round
from backend.services import annotators, crowd_policy, dashboard, exports, image_pool, registry, rounds, stitching
from backend.services import images as image_service
from backend.services import projects as project_service

bp = Blueprint("admin", __name__)
@bp.after_request
def console_headers(response: Response) -> Response:
    """No caching of console pages or JSON (the app adds the strict CSP of every staff page)."""
    if response.mimetype in ("text/html", "application/json"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


# --- request plumbing -----------------------------------------------------------------------------------
def is_form() -> bool:
    """Whether the request was sent by an HTML form (then actions answer with a redirect)."""
    return request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data")


def body_params() -> dict:
    """The action's parameters: form fields, or a JSON object (an empty body is ``{}``)."""
    if is_form():
        return request.form.to_dict()
    if not request.get_data(cache=True):
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise UserError("the request body must be a JSON object")
    return body


def act(page: str, action: Callable[[], tuple[dict, int, str]]):
    """Run an admin action: JSON for API clients; for an HTML form, flash the outcome and go back."""
    if not is_form():
        payload, status, _message = action()
        return jsonify(payload), status
    try:
        _payload, _status, message = action()
    except UserError as exc:
        flash(exc.message, "error")
    else:
        flash(message, "ok")
    return redirect(page, code=303)


def int_param(body: dict, name: str, default: int | None = None) -> int:
    """``body[name]`` as an int (form text or JSON number); UserError naming the field otherwise."""
    value = body.get(name, default)
    if isinstance(value, bool):
        raise UserError(f"{name} must be an integer", field=name)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be an integer", field=name) from None


def is_admin() -> bool:
    """Whether the current user has the admin role (pages hide admin controls from reviewers)."""
    user = current_user()
    return user is not None and user.role == "admin"


def render_page(template: str, project: Project | None = None, tab: str = "", **context):
    """Render a console page; ``project`` (any loaded row) becomes its project_dict for the header."""
    info = None
    if project is not None:
        with runtime().db.session() as s:
            info = project_service.project_dict(s, project_service.get_project(s, project.id))
    return render_template(template, project=info, tab=tab, is_admin=is_admin(), **context)


# --- project settings (pages) ---------------------------------------------------------------------------
def posted_pixel_size() -> dict:
    """The form's ``pixel_size_um`` text as a setting (blank: unknown); ``{}`` when not posted."""
    text = request.form.get("pixel_size_um")
    return {} if text is None else {"pixel_size_um": text.strip() or None}


def pixel_size_text(value) -> str:
    """A pixel size for a form field: ``""`` when unknown, else the number without a trailing .0."""
    return "" if value is None else f"{value:g}"


@bp.route("/projects/new", methods=["GET", "POST"])
@require_role("admin")
def new_project():
    """Create-project form (GET) and its submission (POST): 400 with the message next to the field."""
    form = ProjectForm.defaults()
    if request.method == "POST":
        form = ProjectForm.from_request(request.form)
        pixel_size = posted_pixel_size()
        try:
            with runtime().db.session() as s:
                name, settings = form.settings()
                settings.update(pixel_size)
                channels = settings.pop("channels", [])
                project = project_service.create_project(s, name, channels, **settings)
                project_id = project.id
        except UserError as exc:
            form.errors[exc.field or "form"] = exc.message
            return (render_page("admin/project_form.html", tab="new", form=form, creating=True,
                                pixel_size=pixel_size.get("pixel_size_um") or ""), exc.status)
        flash(f"Project {name!r} created. Upload its images next.", "ok")
        return redirect(url_for("admin.images_page", project_id=project_id), code=303)
    return render_page("admin/project_form.html", tab="new", form=form, creating=True, pixel_size="")


@bp.route("/projects/<int:project_id>/settings", methods=["GET", "POST"])
@require_role("admin")
def project_settings(project_id: int):
    """Settings form of a project (GET) and its submission (POST); bad values change nothing."""
    with runtime().db.session() as s:
        project = project_service.get_project(s, project_id)
        form = ProjectForm.from_project(project_service.project_dict(s, project))
        pixel_size = pixel_size_text(project.pixel_size_um)
    if request.method == "POST":
        form = ProjectForm.from_request(request.form, name=form.name)
        posted = posted_pixel_size()
        try:
            with runtime().db.session() as s:
                _name, settings = form.settings()
                settings.update(posted)
                project = project_service.update_project(s, project_id, settings)
        except UserError as exc:
            form.errors[exc.field or "form"] = exc.message
            pixel_size = (posted.get("pixel_size_um") or "") if posted else pixel_size
            return (render_page("admin/project_form.html", project, tab="settings", form=form, creating=False,
                                pixel_size=pixel_size), exc.status)
        flash("Settings saved.", "ok")
        return redirect(url_for("admin.project_settings", project_id=project_id), code=303)
    preview = Markup(project_service.instructions_html(form.instructions))
    return render_page("admin/project_form.html", project, tab="settings", form=form, creating=False,
                       instructions_preview=preview, pixel_size=pixel_size)


# --- images ------------------------------------------------------------------------------------------------
def image_rows(s, project: Project) -> list[dict]:
    """image_dict of every image of ``project`` plus ``status_text``, ``crops`` progress and ``has_labels``."""
    progress = dashboard.image_progress(s, project.id)
    rows = []
    for image in project.images:
        row = image_service.image_dict(image)
        row["status_text"] = dashboard.status_text(image.status, progress.get(image.id))
        row["crops"] = progress.get(image.id)
        row["has_labels"] = image.labels_key is not None
        rows.append(row)
    return rows


@bp.get("/projects/<int:project_id>/images")
@require_role("reviewer")
def images_page(project_id: int):
    """Thumbnails (channel composite), status per image with crop progress; the upload form for admins;
    for images with ground truth, their newest evaluations (and the evaluate form for admins)."""
    with runtime().db.session() as s:
        project = project_service.get_project(s, project_id)
        rows = image_rows(s, project)
        evaluations, eval_models = image_evaluations(s, project_id), evaluation_models(s, project_id)
    counts = {status: sum(r["status"] == status for r in rows) for status in IMAGE_STATUSES}
    return render_page("admin/images.html", project, tab="images", images=rows, counts=counts,
                       statuses=IMAGE_STATUSES, evaluations=evaluations, eval_models=eval_models)


@bp.post("/projects/<int:project_id>/images")
@require_role("admin")
def upload_images_form(project_id: int):
    """The upload form without JavaScript: every file in one request, all or nothing.
    (With JavaScript, the page sends one file per request to the JSON API, each with its bar.)"""
    rt = runtime()
    uploads = [image_service.Upload(f.filename or "", f.read()) for f in request.files.getlist("files")]
    try:
        with rt.db.session() as s:
            project = project_service.get_project(s, project_id)
            created = image_service.import_images(
                s, rt.store, project, uploads, image_service.ImportLimits.from_settings(rt.settings),
                image_service.parse_channel_map(request.form.get("channels")))
            names = [i.name for i in created]
    except (UserError, ImageImportError) as exc:
        flash(f"Nothing was imported: {exc}", "error")
    else:
        flash(f"Imported {len(names)} image(s): {', '.join(names)}.", "ok")
    return redirect(url_for("admin.images_page", project_id=project_id), code=303)


@bp.patch("/api/projects/<int:project_id>/images/<int:image_id>")
@bp.post("/projects/<int:project_id>/images/<int:image_id>/pixel-size")
@require_role("admin")
def set_image_pixel_size(project_id: int, image_id: int):
    """Set an image's pixel size (``{"pixel_size_um": 0.5}``, µm per pixel) or clear it (null or
    empty: the project's applies). 404 for an image not in the project, 400 naming the field."""

    def action():
        body = body_params()
        if "pixel_size_um" not in body:
            raise UserError("send pixel_size_um: µm per pixel, or null if unknown", field="pixel_size_um")
        with runtime().db.session() as s:
            out = image_service.image_dict(
                image_service.set_pixel_size(s, project_id, image_id, body["pixel_size_um"]))
        shown = (f"{out['pixel_size_um']:g} µm per pixel" if out["pixel_size_um"] is not None
                 else "cleared (the project's applies)")
        return out, 200, f"Pixel size of {out['name']}: {shown}."

    return act(url_for("admin.images_page", project_id=project_id), action)


# --- scoring a model on an image's uploaded ground truth (``looplabel evaluate`` from the console) ----
EVALUATE_JOB = "worker.jobs.evaluate_image"


def evaluation_models(s, project_id: int) -> list[dict]:
    """What an image may be scored with: ``value`` (the job's ``model``) and ``label``; the
    generalist, the baseline, then the project's ready and promoted versions, newest first."""
    versions = s.scalars(select(ModelVersion).where(
        ModelVersion.project_id == project_id, ModelVersion.status.in_(("ready", "promoted")),
        ModelVersion.key.isnot(None)).order_by(ModelVersion.version.desc()))
    return ([{"value": "generalist", "label": "generalist"}, {"value": "baseline", "label": "baseline"}]
            + [{"value": str(m.id), "label": f"model v{m.version} ({m.status})"} for m in versions])


def image_evaluations(s, project_id: int, per_image: int = 3, scanned: int = 300) -> dict[int, list[dict]]:
    """image id → its newest evaluate_image jobs (``status``, ``model``, ``f1``, ``nuclear_f1``,
    ``when`` as UTC text, ``message``), newest first, from the project's last ``scanned`` ones."""
    jobs = s.scalars(select(Job).where(Job.project_id == project_id, Job.func == EVALUATE_JOB)
                     .order_by(Job.id.desc()).limit(scanned))
    out: dict[int, list[dict]] = {}
    for job in jobs:
        shown = out.setdefault((job.args or {}).get("image_id"), [])
        if len(shown) >= per_image:
            continue
        result = job.result or {}
        when = job.ended_at or job.created_at
        shown.append({"status": job.status, "model": result.get("model") or (job.args or {}).get("model"),
                      "f1": result.get("f1"), "nuclear_f1": result.get("nuclear_f1"),
                      "when": when.strftime("%Y-%m-%d %H:%M UTC"), "message": job.message or ""})
    return out


@bp.post("/api/projects/<int:project_id>/images/<int:image_id>/evaluate")
@bp.post("/projects/<int:project_id>/images/<int:image_id>/evaluate")
@require_role("admin")
def evaluate_image(project_id: int, image_id: int):
    """Score a model on the image's uploaded ground truth (``{"model": "generalist"}``: generalist,
    baseline or a ready/promoted model version id of this project) as a gpu job; 202 with the job.
    404 for an image not in the project, 409 when it has no ground truth, 400 naming ``model``."""

    def action():
        rt = runtime()
        model = body_params().get("model")
        model = str(model).strip() if isinstance(model, (str, int)) and not isinstance(model, bool) else ""
        with rt.db.session() as s:
            project_service.get_project(s, project_id)
            image = image_service.get_image(s, image_id, project_id)
            offered = evaluation_models(s, project_id)
            if model not in {m["value"] for m in offered}:
                versions = ", ".join(m["value"] for m in offered[2:]) or "none yet"
                raise UserError(f"model must be generalist, baseline or the id of a ready or promoted model "
                                f"version of this project (ids: {versions}); got {model or 'nothing'!r}",
                                field="model")
            if image.ground_truth_key is None:
                raise ConflictError(f"image {image.name!r} has no ground truth to score against: upload it as "
                                    "an NPZ with a y array (whole-cell, nuclear labels)")
            label, name = next(m["label"] for m in offered if m["value"] == model), image.name
            job = rt.queue.enqueue(s, EVALUATE_JOB, queue="gpu", project_id=project_id,
                                   image_id=image_id, model=model)
            out = {"job_id": job.id, "kind": job.kind, "status": job.status, "image_id": image_id,
                   "model": model}
        return out, 202, f"Scoring {label} on {name}'s ground truth; the figures show here when the job is done."

    return act(url_for("admin.images_page", project_id=project_id), action)


@bp.get("/api/projects/<int:project_id>/images/progress")
@require_role("reviewer")
def images_progress(project_id: int):
    """Every image with its status text (e.g. ``in crowd 3/9 crops``) and crop progress."""
    with runtime().db.session() as s:
        project = project_service.get_project(s, project_id)
        return jsonify({"images": image_rows(s, project)})


# --- rounds, jobs, crowd links ----------------------------------------------------------------------------
@bp.get("/projects/<int:project_id>/rounds")
@require_role("admin")
def rounds_page(project_id: int):
    """Start a round, live job progress, the rounds' progress, crowd links, model versions."""
    rt = runtime()
    with rt.db.session() as s:
        project = project_service.get_project(s, project_id)
        current = rounds.current_round(s, project_id)
        context = {
            "rounds": dashboard.round_progress(s, project_id),
            "jobs": dashboard.project_jobs(s, project_id),
            "links": annotators.crowd_links(project, request.host_url),
            "open_crops": len(annotators.open_crop_rows(s, project_id)),
            "round_open": current is not None and current.status == "open",
            "models": [registry.model_dict(m) for m in s.scalars(
                select(ModelVersion).where(ModelVersion.project_id == project_id).order_by(ModelVersion.version.desc()))],
            "training": registry.training_in_progress(s, project_id),
            "default_steps": rt.settings.train_steps, "default_backbone": rt.settings.train_backbone,
            "backbones": registry.BACKBONES,
        }
    return render_page("admin/rounds.html", project, tab="rounds", **context)


@bp.get("/api/projects/<int:project_id>/rounds")
@require_role("admin")
def list_rounds(project_id: int):
    """Rounds of the project, newest first, with crops fused / total, submissions and stitches."""
    with runtime().db.session() as s:
        project_service.get_project(s, project_id)
        return jsonify({"rounds": dashboard.round_progress(s, project_id)})


@bp.post("/api/projects/<int:project_id>/rounds")
@require_role("admin")
def start_round(project_id: int):
    """Open the next round: predict every image not yet approved with the promoted model, crop,
    open the crowd tasks. 409 while a round is open."""

    def action():
        rt = runtime()
        params = body_params()
        policy = crowd_policy.policy_from_params(params) if params.get("policy") else None
        with rt.db.session() as s:
            project = project_service.get_project(s, project_id)
            take = image_pool.validate_take(params.get("images"), rounds.waiting_images(s, project))
            rnd = rounds.start_round(s, rt.queue, project, policy, take)
            out = {"id": rnd.id, "number": rnd.number, "status": rnd.status,
                   "model_version_id": rnd.model_version_id, "policy": crowd_policy.round_policy(rnd),
                   "takes": (rnd.policy or {}).get("take")}
        return out, 201, f"Round {out['number']} started: predicting, then cropping."

    return act(url_for("admin.rounds_page", project_id=project_id), action)


@bp.post("/api/projects/<int:project_id>/rounds/<int:round_id>/policy")
@require_role("admin")
def set_round_policy(project_id: int, round_id: int):
    """Change an open round's crowd policy (``{"policy": "budget", "budget": 20}``): crops nobody
    has started follow it; every lease and submission is kept."""

    def action():
        rt = runtime()
        policy = crowd_policy.policy_from_params(body_params())
        with rt.db.session() as s:
            project_service.get_project(s, project_id)
            rnd = s.get(Round, round_id)
            if rnd is None or rnd.project_id != project_id:
                raise NotFoundError(f"project {project_id} has no round with id {round_id}")
            changed = crowd_policy.change_round_policy(s, rt.store, rnd, policy)
            for image_id in changed["images"]:
                stitching.queue_stitch_if_due(s, rt.queue, image_id, rnd.id)
            out = {"round": rnd.number, "policy": crowd_policy.round_policy(rnd),
                   "skipped": changed["skipped"], "opened": changed["opened"]}
        return out, 200, f"Round {out['round']}: {crowd_policy.describe(out['policy'])}."

    return act(url_for("admin.rounds_page", project_id=project_id), action)


@bp.get("/api/projects/<int:project_id>/jobs")
@require_role("admin")
def list_jobs(project_id: int):
    """Active jobs, recent finished/failed ones and a per-kind summary, each with progress 0–1."""
    with runtime().db.session() as s:
        project_service.get_project(s, project_id)
        return jsonify(dashboard.project_jobs(s, project_id))


@bp.get("/api/projects/<int:project_id>/crowd-links")
@require_role("admin")
def crowd_links(project_id: int):
    """The links to hand to the crowd platform (absolute, for this server's host)."""
    with runtime().db.session() as s:
        project = project_service.get_project(s, project_id)
        links = annotators.crowd_links(project, request.host_url)
        links["open_crops"] = len(annotators.open_crop_rows(s, project_id))
    links["crop_csv_url"] = url_for("admin.crowd_links_csv", project_id=project_id, _external=True)
    return jsonify(links)


@bp.get("/api/projects/<int:project_id>/crowd-links.csv")
@require_role("admin")
def crowd_links_csv(project_id: int):
    """One row per open crop (gold included) of the open round, with its absolute task URL."""
    with runtime().db.session() as s:
        project = project_service.get_project(s, project_id)
        rows = annotators.open_crop_rows(s, project_id)
        name = project.name
    text = annotators.crop_links_csv(rows, annotators.entry_url(request.host_url, project_id))
    filename = exports.export_filename(name, "crop_links", suffix=".csv")
    return Response(text, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# --- annotators ----------------------------------------------------------------------------------------------
@bp.get("/projects/<int:project_id>/annotators")
@require_role("admin")
def annotators_page(project_id: int):
    """One row per worker: tasks, gold accuracy and gain, agreement, time and edits per crop; block buttons."""
    from backend.services.tasks import MIN_GOLD_GAIN, QUALIFYING_GOLD

    with runtime().db.session() as s:
        project = project_service.get_project(s, project_id)
        rows = annotators.annotator_table(s, project_id)
    return render_page("admin/annotators.html", project, tab="annotators", annotators=rows,
                       qualifying_gold=QUALIFYING_GOLD, min_gold_gain=MIN_GOLD_GAIN)


@bp.get("/api/projects/<int:project_id>/annotators")
@require_role("admin")
def list_annotators(project_id: int):
    """The annotator table as JSON (see :func:`backend.services.annotators.annotator_table`)."""
    with runtime().db.session() as s:
        project_service.get_project(s, project_id)
        return jsonify({"annotators": annotators.annotator_table(s, project_id)})


def _set_blocked(project_id: int, annotator_id: int, blocked: bool):
    def action():
        with runtime().db.session() as s:
            out = annotators.set_blocked(s, project_id, annotator_id, blocked)
        if blocked:
            message = (f"Worker {out['worker_id']} blocked; dropped {out['dropped_submissions']} pending "
                       f"submission(s) and {out['dropped_leases']} lease(s).")
        else:
            message = f"Worker {out['worker_id']} may take tasks again."
        return out, 200, message

    return act(url_for("admin.annotators_page", project_id=project_id), action)


@bp.post("/api/projects/<int:project_id>/annotators/<int:annotator_id>/block")
@require_role("admin")
def block_annotator(project_id: int, annotator_id: int):
    """Block a worker: no new tasks; pending submissions and leases are dropped from fusion."""
    return _set_blocked(project_id, annotator_id, True)


@bp.post("/api/projects/<int:project_id>/annotators/<int:annotator_id>/unblock")
@require_role("admin")
def unblock_annotator(project_id: int, annotator_id: int):
    """Let a blocked worker take tasks again (their dropped work stays dropped)."""
    return _set_blocked(project_id, annotator_id, False)


from backend.api import admin_results  # noqa: E402,F401  (registers the results routes on bp)
