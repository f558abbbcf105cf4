"""Scoring a model on an uploaded image's ground truth from the console (``looplabel evaluate`` as a
gpu job): the API, its errors and roles, the job's figures and the images page (SQLite + PostgreSQL)."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from sqlalchemy import func, select

from backend.models import Job, ModelVersion
from backend.services.demo import synthetic_npz
from backend.services.projects import create_project
from tests.conftest import ADMIN_PASSWORD


def make_project(runtime, name="evaluate", channels=("DAPI", "membrane")) -> int:
    with runtime.db.session() as s:
        return create_project(s, name, list(channels)).id


def upload(client, project_id: int, name: str, data: bytes) -> int:
    r = client.post(f"/api/projects/{project_id}/images", data={"files": (io.BytesIO(data), name)})
    assert r.status_code == 201, r.json
    return r.json["images"][0]["id"]


def npz_without_truth(h=96, w=96) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, X=np.random.default_rng(0).integers(0, 1000, size=(h, w, 2), dtype=np.uint16))
    return buf.getvalue()


def evaluate_url(project_id: int, image_id: int, api: bool = True) -> str:
    return f"{'/api' if api else ''}/projects/{project_id}/images/{image_id}/evaluate"


def job_count(runtime) -> int:
    with runtime.db.session() as s:
        return s.scalar(select(func.count(Job.id)).where(Job.func == "worker.jobs.evaluate_image"))


@pytest.mark.slow
def test_baseline_and_generalist_are_scored_on_an_uploaded_image_and_shown_on_its_page(
        admin_client, reviewer_client, runtime, tmp_path):
    pid = make_project(runtime)
    data = synthetic_npz(160, 160, 2, seed=11)
    image_id = upload(admin_client, pid, "tissue.npz", data)
    page = admin_client.get(f"/projects/{pid}/images").data.decode()
    assert f'action="{evaluate_url(pid, image_id, api=False)}"' in page and '<option value="baseline">' in page

    jobs = {}
    for model in ("baseline", "generalist"):
        r = admin_client.post(evaluate_url(pid, image_id), json={"model": model})
        assert r.status_code == 202, r.json
        assert r.json["model"] == model and r.json["kind"] == "evaluate_image"
        jobs[model] = r.json["job_id"]
    runtime.queue.join()

    results = {}
    with runtime.db.session() as s:
        for model, job_id in jobs.items():
            job = s.get(Job, job_id)
            assert job.status == "finished", job.error
            assert job.queue_name == "gpu" and job.args == {"project_id": pid, "image_id": image_id, "model": model}
            result = job.result
            assert result["model"] == model and result["image_id"] == image_id and result["n_images"] == 1
            assert 0 < result["f1"] <= 1 and 0 < result["nuclear_f1"] <= 1
            assert 0 <= result["precision"] <= 1 and 0 <= result["recall"] <= 1 and result["seconds"] >= 0
            assert set(result["errors"]) == {"correct", "missed", "gained", "split", "merge", "catastrophe"}
            assert job.message == (f"done: {model}: whole-cell F1 {result['f1']:.3f}, "
                                   f"nuclear {result['nuclear_f1']:.3f}")
            results[model] = result

    # the same figure as `looplabel evaluate` on the same file (one predict path)
    from worker.evaluate import evaluate_predictor, load_labelled_npz
    from worker.predict import BASELINE

    path = tmp_path / "tissue.npz"
    path.write_bytes(data)
    assert evaluate_predictor(BASELINE, load_labelled_npz(path))["f1"] == results["baseline"]["f1"]

    for client in (admin_client, reviewer_client):  # reviewers read the figures, without the form
        page = client.get(f"/projects/{pid}/images").data.decode()
        rows = re.findall(r'<tr data-role="evaluation">(.*?)</tr>', page, re.S)
        assert len(rows) == 2 and "generalist" in rows[0] and "baseline" in rows[1]  # newest first
        for model, row in zip(("generalist", "baseline"), rows):
            assert f"{results[model]['f1']:.3f}" in row and f"{results[model]['nuclear_f1']:.3f}" in row
            assert "UTC" in row
    assert "/evaluate" not in reviewer_client.get(f"/projects/{pid}/images").data.decode()

    # the page's form, without JavaScript: redirect back with a message, then the figure shows
    r = admin_client.post(evaluate_url(pid, image_id, api=False), data={"model": "baseline"})
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/projects/{pid}/images")
    assert "Scoring baseline on tissue.npz" in admin_client.get(r.headers["Location"]).data.decode()
    runtime.queue.join()
    page = admin_client.get(f"/projects/{pid}/images").data.decode()
    assert len(re.findall(r'<tr data-role="evaluation">', page)) == 3


def test_bad_requests_name_the_problem_and_enqueue_nothing(admin_client, runtime):
    pid = make_project(runtime)
    other = make_project(runtime, "other")
    image_id = upload(admin_client, pid, "tissue.npz", synthetic_npz(64, 64, 2, seed=3))
    bare_id = upload(admin_client, pid, "bare.npz", npz_without_truth())
    with runtime.db.session() as s:
        training = ModelVersion(project_id=pid, version=1, status="training", config={})
        foreign = ModelVersion(project_id=other, version=1, status="ready", key="models/x/model.keras", config={})
        s.add_all([training, foreign])
        s.flush()
        training_id, foreign_id = training.id, foreign.id

    url = evaluate_url(pid, image_id)
    for bad in ("nope", "", "  ", None, True, 3.5, [1], str(training_id), foreign_id, str(foreign_id)):
        r = admin_client.post(url, json={"model": bad})
        assert r.status_code == 400 and r.json["field"] == "model", (bad, r.json)
        assert "model must be generalist, baseline" in r.json["error"]
    r = admin_client.post(url, json={})
    assert r.status_code == 400 and r.json["field"] == "model"
    r = admin_client.post(url, data="[1]", content_type="application/json")
    assert r.status_code == 400

    r = admin_client.post(evaluate_url(pid, bare_id), json={"model": "baseline"})
    assert r.status_code == 409 and "no ground truth" in r.json["error"] and "bare.npz" in r.json["error"]
    r = admin_client.post(evaluate_url(pid, bare_id, api=False), data={"model": "baseline"})
    assert r.status_code == 303
    assert "has no ground truth" in admin_client.get(r.headers["Location"]).data.decode()

    assert admin_client.post(evaluate_url(pid, image_id + 99), json={"model": "baseline"}).status_code == 404
    assert admin_client.post(evaluate_url(other, image_id), json={"model": "baseline"}).status_code == 404
    assert admin_client.post(evaluate_url(pid + 99, image_id), json={"model": "baseline"}).status_code == 404
    assert job_count(runtime) == 0

    # only images with ground truth get the form; the select offers ready/promoted versions of the project
    with runtime.db.session() as s:
        s.add(ModelVersion(project_id=pid, version=2, status="ready", key="models/y/model.keras", config={}))
    page = admin_client.get(f"/projects/{pid}/images").data.decode()
    assert evaluate_url(pid, image_id, api=False) in page and evaluate_url(pid, bare_id, api=False) not in page
    assert "model v2 (ready)" in page and "model v1" not in page


def test_reviewers_and_anonymous_users_may_not_evaluate(app, users, runtime, admin_client, reviewer_client):
    pid = make_project(runtime)
    image_id = upload(admin_client, pid, "tissue.npz", synthetic_npz(64, 64, 2, seed=4))
    for api in (True, False):
        url = evaluate_url(pid, image_id, api)
        assert reviewer_client.post(url, json={"model": "baseline"}).status_code == 403
        assert app.test_client().post(url, json={"model": "baseline"}).status_code in (401, 302)
    assert job_count(runtime) == 0


def test_a_browser_session_needs_the_csrf_token(app, users, runtime, admin_client):
    pid = make_project(runtime)
    image_id = upload(admin_client, pid, "tissue.npz", synthetic_npz(64, 64, 2, seed=5))
    browser = app.test_client()
    login = browser.get("/login").data
    token = re.search(rb'name="csrf_token" value="([^"]+)"', login).group(1).decode()
    assert browser.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD,
                                        "csrf_token": token}).status_code == 302
    token = browser.get("/api/me").json["csrf_token"]
    url = evaluate_url(pid, image_id, api=False)
    assert browser.post(url, data={"model": "bogus"}).status_code == 403  # refused before the model check
    r = browser.post(url, data={"model": "bogus", "csrf_token": token})
    assert r.status_code == 303  # through the CSRF check: the bad model is flashed on the page
    assert "model must be generalist" in browser.get(r.headers["Location"]).data.decode()
    assert job_count(runtime) == 0
