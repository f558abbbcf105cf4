"""The admin console: roles and CSRF on every admin/review route, bad input, rounds, jobs, crowd
links, annotators and blocking, and the pages themselves (SQLite + PostgreSQL)."""

import csv
import html
import io
import re
import statistics
import zlib
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import func, select

from backend.errors import ForbiddenError
from backend.models import Annotator, Assignment, Crop, Image, LabelRevision, Project, Round, utcnow
from backend.services import labels_io, tasks
from backend.services.images import Upload, import_images
from backend.services.projects import create_project
from backend.services.stitching import crop_image, submissions_for
from tests.conftest import ADMIN_PASSWORD, REVIEWER_PASSWORD, basic_auth

P = 1  # the project every role test works on (created first in a fresh database)
# Every route of the admin console: reviewers and anonymous users must not reach any of them.
ADMIN_ROUTES = [
    ("get", "/projects/new"), ("post", "/projects/new"),
    ("get", f"/projects/{P}/settings"), ("post", f"/projects/{P}/settings"),
    ("post", f"/projects/{P}/images"),
    ("patch", f"/api/projects/{P}/images/1"), ("post", f"/projects/{P}/images/1/pixel-size"),
    ("post", f"/api/projects/{P}/images/1/evaluate"), ("post", f"/projects/{P}/images/1/evaluate"),
    ("get", f"/projects/{P}/rounds"), ("get", f"/api/projects/{P}/rounds"), ("post", f"/api/projects/{P}/rounds"),
    ("post", f"/api/projects/{P}/rounds/1/policy"),
    ("get", f"/api/projects/{P}/jobs"),
    ("get", f"/api/projects/{P}/crowd-links"), ("get", f"/api/projects/{P}/crowd-links.csv"),
    ("get", f"/api/projects/{P}/models"), ("post", f"/api/projects/{P}/models/1/promote"),
    ("post", f"/api/projects/{P}/models/rollback"), ("post", f"/api/projects/{P}/retrain"),
    ("get", f"/projects/{P}/annotators"), ("get", f"/api/projects/{P}/annotators"),
    ("post", f"/api/projects/{P}/annotators/1/block"), ("post", f"/api/projects/{P}/annotators/1/unblock"),
    ("get", f"/projects/{P}/exports"), ("get", f"/api/projects/{P}/datasets"),
    ("get", f"/api/projects/{P}/datasets/1/export.npz"), ("get", f"/api/projects/{P}/images/1/export.ome.tif"),
    # the project API's admin actions (backend/api/projects.py)
    ("post", "/api/projects"), ("patch", f"/api/projects/{P}"), ("post", f"/api/projects/{P}/images"),
]
# Reviewers may read these (images and the dashboard); anonymous users may not.
READER_ROUTES = [
    ("get", f"/projects/{P}/images"), ("get", f"/api/projects/{P}/images/progress"),
    ("get", f"/projects/{P}/dashboard"), ("get", f"/api/projects/{P}/dashboard"),
    ("get", f"/api/projects/{P}/dashboard/model_f1.svg"),
]
# The review API (backend/api/review.py): reviewers and admins, never anonymous.
REVIEW_ROUTES = [
    ("get", "/api/review/queue"), ("get", "/api/review/stitches/1"), ("get", "/api/review/stitches/1/channels"),
    ("get", "/api/review/stitches/1/labels"), ("put", "/api/review/stitches/1/labels"),
    ("get", "/api/review/stitches/1/overlays/conflicts"), ("post", "/api/review/stitches/1/tools/threshold"),
    ("post", "/api/review/stitches/1/approve"), ("post", "/api/review/stitches/1/reject"),
]
UNSAFE = ("post", "put", "patch", "delete")


# --- fixtures ---------------------------------------------------------------------------------------------
@pytest.fixture
def console(app):
    """The app with the admin blueprint (registered here until backend/app.py registers it)."""
    from backend.api import admin

    if "admin" not in app.blueprints:
        app.register_blueprint(admin.bp)
    return app


def _client(app, user=None, password=None):
    c = app.test_client()
    if user:
        c.environ_base["HTTP_AUTHORIZATION"] = basic_auth(user, password)
    return c


@pytest.fixture
def admin_http(console, users):
    return _client(console, "admin", ADMIN_PASSWORD)


@pytest.fixture
def reviewer_http(console, users):
    return _client(console, "reviewer", REVIEWER_PASSWORD)


@pytest.fixture
def anonymous(console):
    return console.test_client()


@pytest.fixture
def project_id(admin_http):
    r = admin_http.post("/api/projects", json={"name": "console", "channels": ["DAPI", "membrane"]})
    assert r.status_code == 201
    assert r.json["id"] == P
    return r.json["id"]


def session_login(app, username, password):
    """A cookie-authenticated client (as a browser) and its CSRF token."""
    c = app.test_client()
    page = c.get("/login")
    token = re.search(rb'name="csrf_token" value="([^"]+)"', page.data).group(1).decode()
    assert c.post("/login", data={"username": username, "password": password, "csrf_token": token}).status_code == 302
    return c, c.get("/api/me").json["csrf_token"]


def npz_bytes(h=100, w=100, channels=2, labels=None, seed=1) -> bytes:
    rng = np.random.default_rng(seed)
    arrays = {"X": rng.integers(0, 1000, size=(h, w, channels), dtype=np.uint16)}
    if labels is not None:
        arrays["y"] = np.moveaxis(labels, 0, -1)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def disks(h=100, w=100) -> np.ndarray:
    """(2,h,w) int32: four disks (whole-cell) with smaller nuclei."""
    yy, xx = np.mgrid[:h, :w]
    labels = np.zeros((2, h, w), dtype=np.int32)
    for n, (cy, cx) in enumerate([(20, 20), (20, 70), (70, 25), (75, 75)], start=1):
        labels[0][(yy - cy) ** 2 + (xx - cx) ** 2 <= 100] = n
        labels[1][(yy - cy) ** 2 + (xx - cx) ** 2 <= 16] = n
    return labels


def crowd_project(rt, *, name="crowd", k=2, gold_fraction=0.0, platform="generic", with_truth=False) -> tuple[int, list[int]]:
    """A project with one open round cropped from a known prediction (no jobs run)."""
    with rt.db.session() as s:
        project = create_project(s, name, ["DAPI", "membrane"], crop_size=64, overlap=8, annotators_per_crop=k,
                                 gold_fraction=gold_fraction, platform=platform)
        image = import_images(s, rt.store, project,
                              [Upload("img.npz", npz_bytes(labels=disks() if with_truth else None))])[0]
        rnd = Round(project_id=project.id, number=0)
        s.add(rnd)
        s.flush()
        labels_io.put_labels(rt.store, labels_io.prediction_key(image.id, 0), disks())
        image.labels_key = labels_io.prediction_key(image.id, 0)
        crops = crop_image(s, rt.store, image.id, rnd.id)
        return project.id, [c.id for c in crops]


# --- roles and CSRF ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method,path", ADMIN_ROUTES)
def test_reviewers_and_anonymous_users_cannot_reach_admin_routes(reviewer_http, anonymous, project_id, method, path):
    r = getattr(reviewer_http, method)(path)
    assert r.status_code == 403, r.data[:200]
    if path.startswith("/api/"):
        assert "admin" in r.json["error"]
    r = getattr(anonymous, method)(path)
    if path.startswith("/api/"):
        assert r.status_code == 401
    else:
        assert r.status_code == 302 and "/login" in r.headers["Location"]


@pytest.mark.parametrize("method,path", READER_ROUTES)
def test_reviewers_read_images_and_the_dashboard(reviewer_http, anonymous, project_id, method, path):
    assert getattr(reviewer_http, method)(path).status_code == 200
    assert getattr(anonymous, method)(path).status_code in (401, 302)


@pytest.mark.parametrize("method,path", REVIEW_ROUTES)
def test_review_routes_refuse_anonymous_users(anonymous, project_id, method, path):
    assert getattr(anonymous, method)(path).status_code == 401


def test_the_route_tables_cover_every_admin_and_review_route(console):
    tested = {(m.upper(), re.sub(r"\d+", "N", p.replace("model_f1", "<name>"))) for m, p in
              ADMIN_ROUTES + READER_ROUTES + REVIEW_ROUTES}
    for rule in console.url_map.iter_rules():
        if not rule.endpoint.startswith(("admin.", "review.")):
            continue
        path = re.sub(r"<int:\w+>", "N", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            variants = {path, path.replace("<tool>", "threshold").replace("<name>", "conflicts")}
            assert any((method, v) in tested for v in variants), f"{method} {rule.rule} is not in a role test"


def test_cookie_session_changes_need_the_csrf_token(console, users, project_id):
    """Every unsafe admin/review route refuses a cookie-authenticated change without the token."""
    browser, token = session_login(console, "admin", ADMIN_PASSWORD)
    unsafe = [(m, p) for m, p in ADMIN_ROUTES + REVIEW_ROUTES if m in UNSAFE]
    assert len(unsafe) >= 15
    for method, path in unsafe:
        r = getattr(browser, method)(path, data={"x": "1"})
        assert r.status_code == 403, f"{method} {path} without a token: {r.status_code}"
        if path.startswith("/api/"):
            assert "CSRF" in r.json["error"]
    # with the token (form field or header) the same requests get past the check
    for method, path in unsafe:
        r = getattr(browser, method)(path, data={"csrf_token": token})
        assert r.status_code != 403, f"{method} {path} with a token: {r.status_code} {r.data[:200]}"
    r = browser.post(f"/api/projects/{project_id}/annotators/1/block", headers={"X-CSRF-Token": token})
    assert r.status_code == 404 and "annotator" in r.json["error"]


def test_a_reviewer_session_cannot_act_as_admin_even_with_the_token(console, users, project_id):
    browser, token = session_login(console, "reviewer", REVIEWER_PASSWORD)
    r = browser.post(f"/api/projects/{project_id}/rounds", headers={"X-CSRF-Token": token})
    assert r.status_code == 403
    assert browser.get(f"/projects/{project_id}/settings").status_code == 403
    assert browser.get(f"/projects/{project_id}/dashboard").status_code == 200


def test_console_pages_carry_a_strict_content_security_policy(admin_http, project_id):
    r = admin_http.get(f"/projects/{project_id}/rounds")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
    assert re.search(rb"<script(?![^>]*\bsrc=)[^>]*>", r.data) is None  # no inline scripts


# --- project settings ------------------------------------------------------------------------------------------
GOOD_FORM = {
    "name": "Tonsil panel", "channel_name": ["DAPI", "CD45", ""], "channel_color": ["#0000ff", "#00ff00", "#ffffff"],
    "features": ["whole_cell", "nuclear"], "crop_size": "128", "overlap": "16", "annotators_per_crop": "3",
    "quorum": "", "gold_fraction": "0.2", "platform": "prolific", "platform_settings": "completion_code = C0DE42",
    "frame_ancestors": "https://app.prolific.com 'self'", "instructions": "Outline **every** cell.",
    "retrain_min_images": "5", "retrain_every_hours": "", "auto_promote": "1",
}


def test_project_form_creates_a_project(admin_http):
    r = admin_http.post("/projects/new", data=GOOD_FORM)
    assert r.status_code == 303
    project_id = int(re.search(r"/projects/(\d+)/images", r.headers["Location"]).group(1))
    p = admin_http.get(f"/api/projects/{project_id}").json
    assert p["name"] == "Tonsil panel"
    assert p["channels"] == [{"name": "DAPI", "color": "#0000ff"}, {"name": "CD45", "color": "#00ff00"}]
    assert (p["crop_size"], p["overlap"], p["annotators_per_crop"], p["quorum"]) == (128, 16, 3, None)
    assert p["platform"] == "prolific" and p["platform_settings"] == {"completion_code": "C0DE42"}
    assert p["frame_ancestors"] == ["https://app.prolific.com", "'self'"]
    assert p["gold_fraction"] == pytest.approx(0.2) and p["auto_promote"] is True
    page = admin_http.get(f"/projects/{project_id}/settings").data.decode()
    assert 'value="C0DE42"' not in page and "completion_code = C0DE42" in page
    assert "<strong>every</strong>" in page  # the Markdown preview


@pytest.mark.parametrize("text,expected", [
    ("completion_code = C0DE42\n# a comment\n\nreturn_url = https://x.example/?a=b",
     {"completion_code": "C0DE42", "return_url": "https://x.example/?a=b"}),
    ('{"completion_code": "C0DE42", "max_tasks": 3}', {"completion_code": "C0DE42", "max_tasks": 3}),
])
def test_platform_settings_as_lines_or_json(admin_http, text, expected):
    r = admin_http.post("/projects/new", data={**GOOD_FORM, "platform_settings": text})
    assert r.status_code == 303
    (project,) = admin_http.get("/api/projects").json["projects"]
    assert project["platform_settings"] == expected
    page = html.unescape(admin_http.get(f"/projects/{project['id']}/settings").data.decode())
    assert ('"max_tasks": 3' in page) == ("max_tasks" in expected)  # non-text values stay JSON


@pytest.mark.parametrize("changes,field", [
    ({"crop_size": "31"}, "crop_size"),
    ({"crop_size": "2049"}, "crop_size"),
    ({"crop_size": "64", "overlap": "64"}, "overlap"),
    ({"crop_size": "64", "overlap": "80"}, "overlap"),
    ({"annotators_per_crop": "2", "quorum": "3"}, "quorum"),
    ({"gold_fraction": "0.9"}, "gold_fraction"),
    ({"platform_settings": "no equals sign here"}, "platform_settings"),
    ({"channel_name": ["", ""]}, "channels"),
    ({"features": []}, "features"),
])
def test_malformed_settings_are_400_naming_the_field(admin_http, changes, field):
    form = {**GOOD_FORM, **changes}
    r = admin_http.post("/projects/new", data=form)
    assert r.status_code == 400
    text = r.data.decode()
    assert f'id="err-{field}"' in text  # the message sits next to the field
    assert 'value="Tonsil panel"' in text  # what was typed comes back
    assert admin_http.get("/api/projects").json["projects"] == []  # nothing was created


@pytest.mark.parametrize("body,field", [
    ({"crop_size": 31}, "crop_size"), ({"crop_size": 4096}, "crop_size"),
    ({"crop_size": 100, "overlap": 100}, "overlap"), ({"annotators_per_crop": 2, "quorum": 3}, "quorum"),
])
def test_malformed_settings_through_the_json_api(admin_http, project_id, body, field):
    r = admin_http.patch(f"/api/projects/{project_id}", json=body)
    assert r.status_code == 400 and r.json["field"] == field


def test_settings_form_edits_and_keeps_bad_edits_out(admin_http, project_id):
    page = admin_http.get(f"/projects/{project_id}/settings").data.decode()
    assert 'name="crop_size" value="270"' in page
    form = {**GOOD_FORM, "channel_name": ["DAPI", "membrane"], "channel_color": ["#0050ff", "#00ff40"]}
    form.pop("name")
    r = admin_http.post(f"/projects/{project_id}/settings", data={**form, "crop_size": "64", "overlap": "200"})
    assert r.status_code == 400 and 'id="err-overlap"' in r.data.decode()
    assert admin_http.get(f"/api/projects/{project_id}").json["crop_size"] == 270
    r = admin_http.post(f"/projects/{project_id}/settings", data={**form, "crop_size": "96", "overlap": "12"})
    assert r.status_code == 303
    p = admin_http.get(f"/api/projects/{project_id}").json
    assert (p["crop_size"], p["overlap"], p["name"]) == (96, 12, "console")


# --- pixel size: the project's default and each image's own ------------------------------------------------
@pytest.mark.parametrize("value,expected", [(0.65, 0.65), ("0.325", 0.325), (1, 1.0), (None, None), ("", None),
                                            (0.01, 0.01), (100, 100.0)])
def test_project_pixel_size_through_the_json_api(admin_http, value, expected):
    r = admin_http.post("/api/projects", json={"name": "scaled", "channels": ["DAPI"], "pixel_size_um": value})
    assert r.status_code == 201, r.json
    assert r.json["pixel_size_um"] == expected
    r = admin_http.patch(f"/api/projects/{r.json['id']}", json={"pixel_size_um": 0.5})
    assert r.status_code == 200 and r.json["pixel_size_um"] == 0.5
    r = admin_http.patch(f"/api/projects/{r.json['id']}", json={"pixel_size_um": None})
    assert r.status_code == 200 and r.json["pixel_size_um"] is None


@pytest.mark.parametrize("value", [0, 0.009, 100.5, -1, "abc", True, [0.5], {"x": 1}, "nan", "inf", "1e999"])
def test_bad_project_pixel_size_is_400_naming_the_field(admin_http, project_id, value):
    r = admin_http.post("/api/projects", json={"name": "bad", "channels": ["DAPI"], "pixel_size_um": value})
    assert r.status_code == 400 and r.json["field"] == "pixel_size_um", r.json
    assert "µm per pixel" in r.json["error"]
    r = admin_http.patch(f"/api/projects/{project_id}", json={"pixel_size_um": value})
    assert r.status_code == 400 and r.json["field"] == "pixel_size_um"
    assert admin_http.get(f"/api/projects/{project_id}").json["pixel_size_um"] is None


def test_project_form_pixel_size(admin_http):
    page = admin_http.get("/projects/new").data.decode()
    assert 'name="pixel_size_um"' in page and "leave empty if unknown" in page
    r = admin_http.post("/projects/new", data={**GOOD_FORM, "pixel_size_um": "150"})
    assert r.status_code == 400 and 'id="err-pixel_size_um"' in r.data.decode()
    assert 'name="pixel_size_um" value="150"' in r.data.decode()  # what was typed comes back
    assert admin_http.get("/api/projects").json["projects"] == []
    r = admin_http.post("/projects/new", data={**GOOD_FORM, "pixel_size_um": "0.65"})
    assert r.status_code == 303
    (project,) = admin_http.get("/api/projects").json["projects"]
    assert project["pixel_size_um"] == 0.65
    settings = f"/projects/{project['id']}/settings"
    assert 'name="pixel_size_um" value="0.65"' in admin_http.get(settings).data.decode()
    form = {k: v for k, v in GOOD_FORM.items() if k != "name"}
    r = admin_http.post(settings, data={**form, "pixel_size_um": "x"})
    assert r.status_code == 400 and 'id="err-pixel_size_um"' in r.data.decode()
    assert admin_http.get(f"/api/projects/{project['id']}").json["pixel_size_um"] == 0.65
    assert admin_http.post(settings, data=form).status_code == 303  # not posted: unchanged
    assert admin_http.get(f"/api/projects/{project['id']}").json["pixel_size_um"] == 0.65
    assert admin_http.post(settings, data={**form, "pixel_size_um": ""}).status_code == 303  # empty: unknown
    assert admin_http.get(f"/api/projects/{project['id']}").json["pixel_size_um"] is None


def test_image_pixel_size_override(admin_http, reviewer_http, anonymous, runtime):
    pid, _ = crowd_project(runtime)
    with runtime.db.session() as s:
        image_id = s.scalar(select(Image.id).where(Image.project_id == pid))
    url = f"/api/projects/{pid}/images/{image_id}"
    assert admin_http.get(url).json["pixel_size_source"] == "unknown"
    r = admin_http.patch(url, json={"pixel_size_um": 0.5})
    assert r.status_code == 200, r.json
    assert (r.json["pixel_size_um"], r.json["effective_pixel_size_um"], r.json["pixel_size_source"]) == (
        0.5, 0.5, "image")
    assert admin_http.get(url).json["pixel_size_um"] == 0.5  # the GET of the project API still answers
    admin_http.patch(f"/api/projects/{pid}", json={"pixel_size_um": 0.8})
    assert admin_http.get(url).json["effective_pixel_size_um"] == 0.5  # the image's own wins
    r = admin_http.patch(url, json={"pixel_size_um": None})
    assert r.status_code == 200 and r.json["pixel_size_um"] is None
    assert (r.json["effective_pixel_size_um"], r.json["pixel_size_source"]) == (0.8, "project")
    for bad in (0, 101, "abc", True, [1]):
        r = admin_http.patch(url, json={"pixel_size_um": bad})
        assert r.status_code == 400 and r.json["field"] == "pixel_size_um", (bad, r.json)
    r = admin_http.patch(url, json={"other": 1})
    assert r.status_code == 400 and r.json["field"] == "pixel_size_um"
    assert admin_http.patch(url, json=[0.5]).status_code == 400
    assert admin_http.get(url).json["pixel_size_um"] is None  # bad requests changed nothing
    assert admin_http.patch(f"/api/projects/{pid}/images/{image_id + 99}", json={"pixel_size_um": 1}).status_code == 404
    assert admin_http.patch(f"/api/projects/{pid + 1}/images/{image_id}", json={"pixel_size_um": 1}).status_code == 404
    assert reviewer_http.patch(url, json={"pixel_size_um": 1}).status_code == 403
    assert anonymous.patch(url, json={"pixel_size_um": 1}).status_code == 401
    assert admin_http.get(url).json["pixel_size_um"] is None
    # the images page shows it, and its form sets it without JavaScript
    page = admin_http.get(f"/projects/{pid}/images").data.decode()
    assert "0.8 µm/px" in page and "(project default)" in page
    r = admin_http.post(f"/projects/{pid}/images/{image_id}/pixel-size", data={"pixel_size_um": "0.25"})
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/projects/{pid}/images")
    page = admin_http.get(r.headers["Location"]).data.decode()
    assert "0.25 µm/px" in page and "(this image's)" in page
    assert admin_http.get(url).json["pixel_size_um"] == 0.25
    r = admin_http.post(f"/projects/{pid}/images/{image_id}/pixel-size", data={"pixel_size_um": "500"})
    assert r.status_code == 303 and "pixel_size_um must be" in admin_http.get(r.headers["Location"]).data.decode()
    assert admin_http.get(url).json["pixel_size_um"] == 0.25
    text = reviewer_http.get(f"/projects/{pid}/images").data.decode()
    assert "0.25 µm/px" in text and "/pixel-size" not in text  # reviewers see it, cannot set it


def test_image_pixel_size_needs_the_csrf_token_in_a_browser_session(console, users, runtime):
    pid, _ = crowd_project(runtime)
    with runtime.db.session() as s:
        image_id = s.scalar(select(Image.id).where(Image.project_id == pid))
    browser, token = session_login(console, "admin", ADMIN_PASSWORD)
    url = f"/api/projects/{pid}/images/{image_id}"
    assert browser.patch(url, json={"pixel_size_um": 0.5}).status_code == 403
    r = browser.patch(url, json={"pixel_size_um": 0.5}, headers={"X-CSRF-Token": token})
    assert r.status_code == 200 and r.json["pixel_size_um"] == 0.5


# --- uploads ----------------------------------------------------------------------------------------------------
def stored_keys(rt) -> list[str]:
    return [k for k in rt.store.list("") if k.startswith("images/")]


def test_a_wrong_file_gets_the_servers_message_and_nothing_is_stored(admin_http, runtime, project_id):
    url = f"/api/projects/{project_id}/images"  # what the page's upload script sends, one file per request
    r = admin_http.post(url, data={"files": (io.BytesIO(b"just some notes"), "notes.tif")})
    assert r.status_code == 400 and "notes.tif" in r.json["error"]
    r = admin_http.post(url, data={"files": (io.BytesIO(npz_bytes(channels=3)), "three.npz")})
    assert r.status_code == 400 and "channel" in r.json["error"]
    assert stored_keys(runtime) == []
    with runtime.db.session() as s:
        assert s.scalar(select(func.count(Image.id))) == 0
    r = admin_http.post(url, data={"files": (io.BytesIO(npz_bytes()), "good.npz")})
    assert r.status_code == 201 and r.json["images"][0]["name"] == "good.npz"
    assert len(stored_keys(runtime)) == 1


def test_the_form_upload_without_javascript_is_all_or_nothing(admin_http, runtime, project_id):
    r = admin_http.post(f"/projects/{project_id}/images", data={
        "files": [(io.BytesIO(npz_bytes()), "good.npz"), (io.BytesIO(b"\x89PNG broken"), "bad.png")]})
    assert r.status_code == 303
    page = admin_http.get(r.headers["Location"]).data.decode()
    assert "Nothing was imported" in page and "bad.png" in page
    assert stored_keys(runtime) == []
    r = admin_http.post(f"/projects/{project_id}/images", data={"files": [(io.BytesIO(npz_bytes()), "good.npz")]})
    page = admin_http.get(r.headers["Location"]).data.decode()
    assert "Imported 1 image(s): good.npz" in page and "thumbnail.png" in page


# --- rounds and jobs ---------------------------------------------------------------------------------------------
def test_start_a_round_follow_its_jobs_and_refuse_a_second(admin_http, runtime, project_id):
    assert admin_http.patch(f"/api/projects/{project_id}", json={"crop_size": 64, "overlap": 8}).status_code == 200
    admin_http.post(f"/api/projects/{project_id}/images", data={"files": (io.BytesIO(npz_bytes()), "a.npz")})
    r = admin_http.post(f"/api/projects/{project_id}/rounds")
    assert r.status_code == 201 and r.json["number"] == 0 and r.json["model_version_id"] is None
    again = admin_http.post(f"/api/projects/{project_id}/rounds")
    assert again.status_code == 409 and "still open" in again.json["error"]
    runtime.queue.join()
    jobs = admin_http.get(f"/api/projects/{project_id}/jobs").json
    assert jobs["active"] == []
    kinds = {j["kind"]: j for j in jobs["recent"]}
    assert {"predict_image", "crop_image"} <= set(kinds), [(j["kind"], j["error"]) for j in jobs["recent"]]
    assert all(j["status"] == "finished" and j["progress"] == 1.0 for j in jobs["recent"])
    summary = {k["kind"]: k for k in jobs["summary"]}
    assert summary["predict_image"]["finished"] == summary["predict_image"]["total"] == 1
    (rnd,) = admin_http.get(f"/api/projects/{project_id}/rounds").json["rounds"]
    assert rnd["crops"] == 4 and rnd["images"] == 1  # 100x100 px in 64-px crops: 2 x 2
    images = admin_http.get(f"/api/projects/{project_id}/images/progress").json["images"]
    assert images[0]["status_text"] == "in crowd 0/4 crops"
    # the form version of the same action: the refusal is shown on the page
    r = admin_http.post(f"/api/projects/{project_id}/rounds", data={"x": "1"})
    assert r.status_code == 303
    page = admin_http.get(r.headers["Location"]).data.decode()
    assert "still open" in page and "predict_image" in page and "<progress" in page


def test_a_failed_job_shows_its_error(admin_http, runtime, project_id):
    with runtime.db.session() as s:
        runtime.queue.enqueue(s, "tests.job_functions.fail_after_progress", project_id=project_id, key="k")
    runtime.queue.join()
    (job,) = admin_http.get(f"/api/projects/{project_id}/jobs").json["recent"]
    assert job["status"] == "failed" and job["progress"] == 0.5
    assert "deliberate failure" in job["error"]


# --- crowd links --------------------------------------------------------------------------------------------------
def test_crowd_links_for_the_platform_and_the_per_crop_csv(admin_http, runtime):
    pid, crop_ids = crowd_project(runtime, platform="prolific", gold_fraction=0.25, with_truth=True)
    with runtime.db.session() as s:
        crops = {c.id: c for c in s.scalars(select(Crop).where(Crop.id.in_(crop_ids)))}
        gold = {cid for cid, c in crops.items() if c.is_gold}
        done = next(cid for cid in crop_ids if cid not in gold)
        crops[done].status = "fused"  # finished crops leave the list; gold crops stay (any number of workers)
    links = admin_http.get(f"/api/projects/{pid}/crowd-links").json
    assert links["platform"] == "prolific"
    assert links["study_url"] == (f"http://localhost/annotate/{pid}"
                                  "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}")
    assert links["links"]["generic"]["url"] == f"http://localhost/annotate/{pid}?worker={{WORKER_ID}}"
    assert links["links"]["mturk"]["url"] == f"http://localhost/annotate/{pid}"
    r = admin_http.get(f"/api/projects/{pid}/crowd-links.csv")
    assert r.mimetype == "text/csv" and "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.data.decode())))
    assert [int(row["crop_id"]) for row in rows] == sorted(set(crop_ids) - {done})
    assert {int(row["crop_id"]) for row in rows if row["gold"] == "1"} == gold and len(gold) == 1
    for row in rows:
        assert row["url"] == f"http://localhost/annotate/{pid}?crop={row['crop_id']}"
    assert links["open_crops"] == len(rows)
    with runtime.db.session() as s:
        s.scalar(select(Round).where(Round.project_id == pid)).status = "closed"
    closed = admin_http.get(f"/api/projects/{pid}/crowd-links.csv").data.decode().strip().splitlines()
    assert closed == ["crop_id,image_id,image,round,gold,url"]


# --- annotators ---------------------------------------------------------------------------------------------------
def lease(client, project_id, worker):
    r = client.post(f"/api/crowd/{project_id}/lease", json={"params": {"worker": worker}})
    return r


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_annotator_table_figures(admin_http, runtime):
    pid, crop_ids = crowd_project(runtime, k=3)
    # (worker, seconds, edits, gold score, agreement score) per submitted task
    work = {
        "ann": [(40.0, 10, 0.9, None), (60.0, 20, None, 0.8), (90.0, 5, 0.7, 0.6)],
        "bo": [(12.0, 2, None, None)],
    }
    with runtime.db.session() as s:
        for worker, tasks_ in work.items():
            annotator = Annotator(project_id=pid, platform="generic", worker_id=worker)
            s.add(annotator)
            s.flush()
            for n, (seconds, edits, gold, agreement) in enumerate(tasks_):
                s.add(Assignment(crop_id=crop_ids[n], annotator_id=annotator.id, platform="generic",
                                 external_worker_id=worker, lease_expires_at=utcnow(), status="submitted",
                                 submitted_at=utcnow(), active_seconds=seconds, edit_count=edits, gold_score=gold,
                                 gold_gain=None if gold is None else gold - 0.5,
                                 agreement=None if agreement is None else {"score": agreement, "mean_iou": 0.5}))
        idle = Annotator(project_id=pid, platform="generic", worker_id="idle")
        s.add(idle)
        s.flush()
        s.add(Assignment(crop_id=crop_ids[0], annotator_id=idle.id, platform="generic", external_worker_id="idle",
                         lease_expires_at=utcnow() + timedelta(hours=1), status="leased"))
    rows = {r["worker_id"]: r for r in admin_http.get(f"/api/projects/{pid}/annotators").json["annotators"]}
    ann = rows["ann"]
    assert ann["tasks_done"] == 3 and ann["gold_tasks"] == 2 and ann["agreement_tasks"] == 2
    assert ann["gold_accuracy"] == pytest.approx(statistics.mean([0.9, 0.7]))
    assert ann["gain_tasks"] == 2 and ann["gold_gain"] == pytest.approx(statistics.mean([0.4, 0.2]))
    assert ann["agreement"] == pytest.approx(statistics.mean([0.8, 0.6]))
    assert ann["median_seconds"] == statistics.median([40.0, 60.0, 90.0])
    assert ann["median_edits"] == statistics.median([10, 20, 5])
    assert rows["bo"]["gold_accuracy"] is None and rows["bo"]["median_seconds"] == 12.0
    assert rows["idle"]["tasks_done"] == 0 and rows["idle"]["leased"] == 1 and rows["idle"]["median_seconds"] is None
    assert list(rows) == ["ann", "bo", "idle"]  # most productive first
    page = admin_http.get(f"/projects/{pid}/annotators").data.decode()
    assert "ann" in page and "80 %" in page and "70 %" in page and "30 %" in page and "Block" in page
    assert "first 2 tasks are gold" in page


def test_blocking_a_worker_drops_their_pending_submission_from_fusion(admin_http, client, runtime):
    pid, crop_ids = crowd_project(runtime, k=2)
    first = crop_ids[0]
    carol = lease(client, pid, "carol").json
    assert carol["task"]["crop_id"] == first
    r = client.post(f"/api/crowd/crops/{first}/submit", json={"active_seconds": 20, "edit_count": 0},
                    headers=bearer(carol["token"]))
    assert r.status_code == 200
    runtime.queue.join()
    # the spammer's submission of empty labels is in, its fusion not run yet
    spam = lease(client, pid, "spammer").json
    assert spam["task"]["crop_id"] == first
    with runtime.db.session() as s:
        a = s.get(Assignment, spam["task"]["assignment_id"])
        key = labels_io.revision_key(a.id, 1)
        labels_io.put_labels(runtime.store, key, np.zeros((2, 64, 64), np.int32))
        s.add(LabelRevision(assignment_id=a.id, number=1, key=key, author="spammer"))
        a.status, a.submitted_at = "submitted", utcnow()
        assert len(submissions_for(s, s.get(Crop, first))) == 2  # k reached: unblocked, it would fuse now
    held = lease(client, pid, "spammer").json  # and they hold a live lease on another crop
    assert held["task"]["crop_id"] != first
    spammer = next(a for a in admin_http.get(f"/api/projects/{pid}/annotators").json["annotators"]
                   if a["worker_id"] == "spammer")

    r = admin_http.post(f"/api/projects/{pid}/annotators/{spammer['id']}/block")
    assert r.status_code == 200
    assert (r.json["blocked"], r.json["dropped_submissions"], r.json["dropped_leases"]) == (True, 1, 1)

    with runtime.db.session() as s, pytest.raises(ForbiddenError, match="no longer accepted"):
        tasks.lease_task(s, s.get(Project, pid), {"worker": "spammer"}, secret="k", ttl_s=60)  # no new tasks
    zeros = np.zeros((2, 64, 64), np.int32)
    put = client.put(f"/api/crowd/crops/{held['task']['crop_id']}/labels", data=zlib.compress(zeros.tobytes()),
                     headers={**bearer(held["token"]), "X-Base-Revision": "0", "X-Shape": "2,64,64"})
    assert put.status_code == 409  # the held task link stopped working
    with runtime.db.session() as s:
        runtime.queue.enqueue(s, "worker.jobs.fuse_crop", project_id=pid, crop_id=first)
    runtime.queue.join()
    with runtime.db.session() as s:
        assert s.get(Crop, first).status == "open"  # one usable submission of two
    dave = lease(client, pid, "dave").json
    assert dave["task"]["crop_id"] == first  # the dropped slot went back to the pool
    client.post(f"/api/crowd/crops/{first}/submit", json={"active_seconds": 30, "edit_count": 0},
                headers=bearer(dave["token"]))
    runtime.queue.join()
    with runtime.db.session() as s:
        crop = s.get(Crop, first)
        assert crop.status == "fused"
        fused = labels_io.get_labels(runtime.store, crop.fused_key)
        by_worker = {a.external_worker_id: a for a in s.scalars(select(Assignment).where(Assignment.crop_id == first))}
    predicted = disks()[:, crop.y0:crop.y1, crop.x0:crop.x1]
    for f in range(2):  # carol and dave kept the prediction; the spammer's empty labels played no part
        assert np.array_equal(fused[f] > 0, predicted[f] > 0)
        assert len(np.unique(fused[f])) == len(np.unique(predicted[f]))
    assert by_worker["spammer"].status == "dropped" and by_worker["spammer"].agreement is None
    assert by_worker["carol"].agreement is not None and by_worker["dave"].agreement is not None
    # unblocking lets the worker in again; their dropped work stays dropped
    r = admin_http.post(f"/api/projects/{pid}/annotators/{spammer['id']}/unblock")
    assert r.status_code == 200 and r.json["blocked"] is False
    assert lease(client, pid, "spammer").status_code == 200
    with runtime.db.session() as s:
        assert s.get(Assignment, spam["task"]["assignment_id"]).status == "dropped"


def test_block_from_the_page_form(admin_http, runtime):
    pid, _ = crowd_project(runtime)
    with runtime.db.session() as s:
        a = Annotator(project_id=pid, platform="generic", worker_id="w-form")
        s.add(a)
        s.flush()
        annotator_id = a.id
    r = admin_http.post(f"/api/projects/{pid}/annotators/{annotator_id}/block", data={"x": "1"})
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/projects/{pid}/annotators")
    page = admin_http.get(r.headers["Location"]).data.decode()
    assert "Worker w-form blocked" in page and "Unblock" in page
    assert admin_http.post(f"/api/projects/{pid + 1}/annotators/{annotator_id}/block").status_code == 404


# --- the pages ----------------------------------------------------------------------------------------------------
def test_every_console_page_renders(admin_http, runtime):
    pid, crop_ids = crowd_project(runtime, with_truth=True, gold_fraction=0.25)
    pages = {
        "/": "crowd", f"/projects/{pid}": "Overview", f"/projects/{pid}/images": 'type="file"',
        "/projects/new": "Create project", f"/projects/{pid}/settings": "Save settings",
        f"/projects/{pid}/rounds": "Start round", f"/projects/{pid}/annotators": "No annotator",
        f"/projects/{pid}/dashboard": "<svg", f"/projects/{pid}/exports": "export.ome.tif",
    }
    for path, marker in pages.items():
        r = admin_http.get(path)
        assert r.status_code == 200, path
        text = r.data.decode()
        assert marker in text, (path, marker)
        assert "Log out" in text and 'name="csrf_token"' in text
    images = admin_http.get(f"/projects/{pid}/images").data.decode()
    # the gold crop is counted apart: nobody in the crowd has fused anything yet
    assert re.search(r'<progress data-role="crops" max="3" value="0"', images)
    assert "in crowd 0/3 crops (+1 gold)" in images


def test_images_page_is_read_only_for_reviewers(reviewer_http, admin_http, runtime):
    pid, _ = crowd_project(runtime)
    text = reviewer_http.get(f"/projects/{pid}/images").data.decode()
    assert 'type="file"' not in text and "export.ome.tif" not in text and "in crowd" in text
    assert 'href="/projects/%d/settings"' % pid not in text
    assert 'href="/projects/%d/settings"' % pid in admin_http.get(f"/projects/{pid}/images").data.decode()


def test_gold_crops_do_not_count_as_fused_before_any_submission(admin_http, runtime):
    """Issue #14 bug 6: gold crops hold their expert labels from the start; the console's crop
    progress counts the crowd's crops only (gold apart), so nothing is fused before a submission."""
    project_id, crop_ids = crowd_project(runtime, name="golden", gold_fraction=0.5, with_truth=True)
    with runtime.db.session() as s:
        n_gold = sum(s.get(Crop, c).is_gold for c in crop_ids)
    n_crowd = len(crop_ids) - n_gold
    assert 0 < n_gold and 0 < n_crowd
    (rnd,) = admin_http.get(f"/api/projects/{project_id}/rounds").json["rounds"]
    assert (rnd["crops_fused"], rnd["crops"], rnd["gold_crops"], rnd["submissions"]) == (0, n_crowd, n_gold, 0)
    (image,) = admin_http.get(f"/api/projects/{project_id}/images/progress").json["images"]
    assert image["crops"]["fused"] == 0 and image["crops"]["crops"] == n_crowd
    assert image["status_text"] == f"in crowd 0/{n_crowd} crops (+{n_gold} gold)"
    page = admin_http.get(f"/projects/{project_id}/rounds").data.decode()
    assert f"0 / {n_crowd} (+{n_gold} gold)" in page
