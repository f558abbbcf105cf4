"""The project dashboard: figures per round, from the rows and arrays a round leaves behind.

Each round here is built directly (no crowd, no model): one image per round whose prediction is
its ground truth, cut into crops; two annotators submit the first crop — one deletes a cell, the
other changes nothing; the stitch equals the truth and the expert approves it minus one cell. So
every expected figure follows from the construction, not from the code under test.
"""

import io
import re
import xml.etree.ElementTree as ET
from datetime import timedelta

import numpy as np
import pytest

from backend.models import Annotator, Assignment, Crop, LabelRevision, ModelVersion, Round, Stitch, utcnow
from backend.services import labels_io
from backend.services.dashboard import CHART_NAMES, correction_counts
from backend.services.images import Upload, import_images
from backend.services.projects import create_project
from backend.services.stitching import crop_image

SVG = "{http://www.w3.org/2000/svg}"
SECONDS = (30.0, 50.0)  # active time of the two submissions of each round


@pytest.fixture
def console(app):
    """The app with the admin blueprint (registered here until backend/app.py registers it)."""
    from backend.api import admin

    if "admin" not in app.blueprints:
        app.register_blueprint(admin.bp)
    return app


@pytest.fixture
def admin_http(console, users):
    from tests.conftest import ADMIN_PASSWORD, basic_auth

    c = console.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = basic_auth("admin", ADMIN_PASSWORD)
    return c


@pytest.fixture
def reviewer_http(console, users):
    from tests.conftest import REVIEWER_PASSWORD, basic_auth

    c = console.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = basic_auth("reviewer", REVIEWER_PASSWORD)
    return c


def blob_labels(h: int, w: int, n_side: int) -> np.ndarray:
    """(2,h,w) int32: a grid of n_side² square cells (ids 1..n) with a square nucleus each."""
    labels = np.zeros((2, h, w), dtype=np.int32)
    step_y, step_x = h // n_side, w // n_side
    cell = 1
    for i in range(n_side):
        for j in range(n_side):
            y, x = i * step_y, j * step_x
            labels[0, y + 1:y + step_y - 1, x + 1:x + step_x - 1] = cell
            labels[1, y + 3:y + step_y - 3, x + 3:x + step_x - 3] = cell
            cell += 1
    return labels


def npz_upload(name: str, labels: np.ndarray, seed: int) -> Upload:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 1000, size=(labels.shape[1], labels.shape[2], 2), dtype=np.uint16)
    buf = io.BytesIO()
    np.savez(buf, X=pixels, y=np.moveaxis(labels, 0, -1))
    return Upload(name, buf.getvalue())


def submit(s, store, crop, worker: str, labels: np.ndarray | None, seconds: float, project_id: int) -> Assignment:
    """A submitted assignment on ``crop``; ``labels`` None: submitted without any saved revision."""
    annotator = s.query(Annotator).filter_by(project_id=project_id, worker_id=worker).one_or_none()
    if annotator is None:
        annotator = Annotator(project_id=project_id, platform="generic", worker_id=worker)
        s.add(annotator)
        s.flush()
    a = Assignment(crop_id=crop.id, annotator_id=annotator.id, platform="generic", external_worker_id=worker,
                   lease_expires_at=utcnow() + timedelta(hours=1), status="submitted", submitted_at=utcnow(),
                   active_seconds=seconds, edit_count=3)
    s.add(a)
    s.flush()
    if labels is not None:
        key = labels_io.revision_key(a.id, 1)
        labels_io.put_labels(store, key, labels)
        s.add(LabelRevision(assignment_id=a.id, number=1, key=key, author=worker))
    return a


def build_project(rt, n_rounds: int, with_models: bool = True) -> dict:
    """A project with ``n_rounds`` rounds as described in the module docstring; returns what to expect."""
    truth = blob_labels(96, 96, 4)  # 16 cells
    expected = {"pixels": [], "cells": [], "approved_f1": [], "model_f1": []}
    with rt.db.session() as s:
        project = create_project(s, "dash", ["DAPI", "membrane"], crop_size=64, overlap=8,
                                 annotators_per_crop=2, gold_fraction=0.0)
        images = import_images(s, rt.store, project, [npz_upload(f"img{r}.npz", truth, r) for r in range(n_rounds)])
        versions = []
        if with_models:
            for v, (f1, ref) in enumerate([(0.71, {"source": "baseline", "f1": 0.55}),
                                           (0.83, {"source": "promoted", "f1": 0.71})], start=1):
                mv = ModelVersion(project_id=project.id, version=v, status="ready", key=f"models/x{v}.keras",
                                  metrics={"f1": f1, "reference": ref})
                s.add(mv)
                s.flush()
                versions.append(mv)
        for r, image in enumerate(images):
            model = versions[r - 1] if 0 < r <= len(versions) else None
            rnd = Round(project_id=project.id, number=r, model_version_id=model.id if model else None,
                        status="open" if r == n_rounds - 1 else "closed")
            s.add(rnd)
            s.flush()
            expected["model_f1"].append((model.metrics["f1"] if model else (0.55 if with_models else None)))
            labels_io.put_labels(rt.store, labels_io.prediction_key(image.id, r), truth)
            crops = crop_image(s, rt.store, image.id, rnd.id)
            first = crops[0]
            start = truth[:, first.y0:first.y1, first.x0:first.x1]
            edited = start.copy()
            victim = int(np.bincount(start[0].ravel())[1:].argmax()) + 1  # the largest whole cell
            edited[0][edited[0] == victim] = 0
            submit(s, rt.store, first, "deleter", edited, SECONDS[0], project.id)
            submit(s, rt.store, first, "keeper", None, SECONDS[1], project.id)
            area = int((start[0] == victim).sum())
            expected["pixels"].append(area / 2)  # mean over the two submissions
            expected["cells"].append(1 / 2)
            # stitched = truth; the expert approves it with one cell removed
            stitch_key, conflicts_key = labels_io.stitch_keys(image.id, r)
            labels_io.put_labels(rt.store, stitch_key, truth)
            approved = truth.copy()
            approved[0][approved[0] == 1] = 0
            approved_key = f"images/{image.id}/approved_r{r}.npz"
            labels_io.put_labels(rt.store, approved_key, approved)
            s.add(Stitch(image_id=image.id, round_id=rnd.id, key=stitch_key, conflicts_key=conflicts_key,
                         status="approved"))
            image.status, image.labels_key = "approved", approved_key
            n = 16
            expected["approved_f1"].append(2 * (n - 1) / ((n - 1) + n))
        return {"project_id": project.id, **expected}


def svgs(html: str) -> dict[str, ET.Element]:
    out = {}
    for block in re.findall(r"<svg.*?</svg>", html, flags=re.S):
        root = ET.fromstring(block)
        out[root.get("id").removeprefix("chart-")] = root
    return out


def n_points(root: ET.Element) -> int:
    return len(list(root.iter(f"{SVG}circle")))


def test_correction_counts_of_a_deleted_and_a_split_cell():
    start = blob_labels(40, 40, 2)
    assert correction_counts(start, start) == (0, 0)
    deleted = start.copy()
    deleted[0][deleted[0] == 2] = 0
    assert correction_counts(start, deleted) == (int((start[0] == 2).sum()), 1)
    split = start.copy()
    ys, xs = np.nonzero(start[0] == 3)
    lower = ys >= ys.min() + 6  # cut cell 3 (18 rows) into a third and two thirds
    split[0][ys[lower], xs[lower]] = 99
    pixels, cells = correction_counts(start, split)
    assert pixels == int(lower.sum())
    assert cells == 2  # two pieces that match no cell of before; the old cell lives on in the larger


def test_dashboard_with_no_rounds(admin_http, runtime):
    project_id = admin_http.post("/api/projects", json={"name": "empty", "channels": ["DAPI"]}).json["id"]
    assert admin_http.get(f"/api/projects/{project_id}/dashboard").json["rounds"] == []
    page = admin_http.get(f"/projects/{project_id}/dashboard")
    assert page.status_code == 200
    charts = svgs(page.data.decode())
    assert set(charts) == set(CHART_NAMES)
    for root in charts.values():
        assert n_points(root) == 0
        assert any("no rounds yet" in "".join(t.itertext()) for t in root.iter(f"{SVG}text"))
    assert "No rounds yet" in page.data.decode()


def test_dashboard_with_one_round(admin_http, runtime):
    expected = build_project(runtime, 1, with_models=False)
    pid = expected["project_id"]
    (row,) = admin_http.get(f"/api/projects/{pid}/dashboard").json["rounds"]
    assert row["number"] == 0 and row["n_submissions"] == 2 and row["n_approved"] == 1
    assert row["model_f1"] is None and row["f1_source"] == "baseline"  # no trained version: no baseline figure
    assert row["changed_pixels_per_crop"] == pytest.approx(expected["pixels"][0])
    assert row["changed_cells_per_crop"] == pytest.approx(expected["cells"][0])
    assert row["median_seconds_per_crop"] == pytest.approx(np.median(SECONDS))
    assert row["crowd_expert_f1"] == pytest.approx(expected["approved_f1"][0])
    charts = svgs(admin_http.get(f"/projects/{pid}/dashboard").data.decode())
    assert n_points(charts["model_f1"]) == 0
    assert "no model figures yet" in ET.tostring(charts["model_f1"], encoding="unicode")
    for name in ("changed_pixels", "changed_cells", "median_time", "agreement"):
        assert n_points(charts[name]) == 1, name


def test_dashboard_with_several_rounds(admin_http, reviewer_http, runtime):
    expected = build_project(runtime, 3)
    pid = expected["project_id"]
    rows = reviewer_http.get(f"/api/projects/{pid}/dashboard").json["rounds"]  # reviewers may read it
    assert [r["number"] for r in rows] == [0, 1, 2]
    assert [r["model_f1"] for r in rows] == pytest.approx([0.55, 0.71, 0.83])
    assert [r["f1_source"] for r in rows] == ["baseline", "model v1", "model v2"]
    assert [r["changed_pixels_per_crop"] for r in rows] == pytest.approx(expected["pixels"])
    assert [r["crowd_expert_f1"] for r in rows] == pytest.approx(expected["approved_f1"])
    with runtime.db.session() as s:  # every crop of these rounds went to the crowd
        per_round = [s.query(Crop).filter(Crop.round_id == r["round_id"], Crop.is_gold.is_(False)).count()
                     for r in rows]
    assert [r["crowd_crops"] for r in rows] == per_round and all(per_round)
    assert [r["crowd_crops_cumulative"] for r in rows] == list(np.cumsum(per_round))
    assert [r["model_crops"] for r in rows] == [0, 0, 0]
    page = reviewer_http.get(f"/projects/{pid}/dashboard")
    assert page.status_code == 200
    charts = svgs(page.data.decode())
    for name in CHART_NAMES:
        assert n_points(charts[name]) == 3, name
    # the F1 points climb: later rounds sit higher (smaller SVG y)
    ys = [float(c.get("cy")) for c in charts["model_f1"].iter(f"{SVG}circle")]
    assert ys[0] > ys[1] > ys[2]
    # the cost curve: F1 rising to the right as crowd crops accumulate
    points = [(float(c.get("cx")), float(c.get("cy"))) for c in charts["cost_curve"].iter(f"{SVG}circle")]
    assert points[0][0] < points[1][0] < points[2][0] and points[0][1] > points[1][1] > points[2][1]
    # each figure also stands alone as an SVG document
    r = reviewer_http.get(f"/api/projects/{pid}/dashboard/model_f1.svg")
    assert r.status_code == 200 and r.mimetype == "image/svg+xml"
    assert n_points(ET.fromstring(r.data)) == 3
    assert reviewer_http.get(f"/api/projects/{pid}/dashboard/nonsense.svg").status_code == 404


def test_blocked_workers_dropped_submissions_leave_the_figures(admin_http, runtime):
    expected = build_project(runtime, 1, with_models=False)
    pid = expected["project_id"]
    with runtime.db.session() as s:
        deleter = s.query(Annotator).filter_by(worker_id="deleter").one().id
    r = admin_http.post(f"/api/projects/{pid}/annotators/{deleter}/block")
    assert r.status_code == 200 and r.json["dropped_submissions"] == 1
    (row,) = admin_http.get(f"/api/projects/{pid}/dashboard").json["rounds"]
    assert row["n_submissions"] == 1 and row["changed_pixels_per_crop"] == 0
    assert row["median_seconds_per_crop"] == SECONDS[1]
