"""The admin console's results routes (backend/api/admin_results.py): dataset and image exports,
model versions. Roles and CSRF of these routes are tested with the others in test_admin_api.py."""

import io
import re

import numpy as np
import pytest
import tifffile
from sqlalchemy import select

from backend.models import DatasetVersion, Image, ModelVersion
from backend.services import labels_io
from tests.conftest import ADMIN_PASSWORD, basic_auth
from tests.integration.test_admin_api import crowd_project, disks


@pytest.fixture
def admin_http(app, users):
    """An admin client of the app with the admin blueprint (registered here until app.py does)."""
    from backend.api import admin

    if "admin" not in app.blueprints:
        app.register_blueprint(admin.bp)
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = basic_auth("admin", ADMIN_PASSWORD)
    return c


@pytest.fixture
def project_id(admin_http):
    r = admin_http.post("/api/projects", json={"name": "console", "channels": ["DAPI", "membrane"]})
    assert r.status_code == 201
    return r.json["id"]


# --- exports ------------------------------------------------------------------------------------------------------
def test_dataset_export_as_npz(admin_http, runtime, project_id):
    tiles = {"train": 3, "val": 1, "test": 2}
    with runtime.db.session() as s:
        ds = DatasetVersion(project_id=project_id, version=1, key_prefix="", n_tiles=tiles,
                            image_ids={"train": [1], "val": [2], "test": [3]})
        s.add(ds)
        s.flush()
        ds.key_prefix = f"datasets/{ds.id}"
        for value, (split, n) in enumerate(tiles.items(), start=1):
            X = np.full((n, 16, 16, 2), value, dtype=np.float32)
            y = np.full((n, 16, 16, 2), 70000 + value, dtype=np.int32)
            runtime.store.put_arrays(f"{ds.key_prefix}/{split}.npz", X=X, y=y)
        dataset_id = ds.id
    r = admin_http.get(f"/api/projects/{project_id}/datasets/{dataset_id}/export.npz")
    assert r.status_code == 200 and "console_dataset_v1.npz" in r.headers["Content-Disposition"]
    assert int(r.headers["Content-Length"]) == len(r.data)
    data = np.load(io.BytesIO(r.data))
    assert data["X"].shape == (6, 16, 16, 2) and data["X"].dtype == np.float32
    assert data["y"].shape == (6, 16, 16, 2) and data["y"].dtype == np.int32
    assert list(data["split"]) == ["train"] * 3 + ["val"] + ["test"] * 2
    assert [float(x[0, 0, 0]) for x in data["X"]] == [1, 1, 1, 2, 3, 3]  # train, val, test in order
    assert int(data["y"].max()) == 70003  # int32 ids above uint16 survive
    val = np.load(io.BytesIO(admin_http.get(f"/api/projects/{project_id}/datasets/{dataset_id}/export.npz?split=val").data))
    assert val["X"].shape[0] == 1 and float(val["X"].max()) == 2
    bad = admin_http.get(f"/api/projects/{project_id}/datasets/{dataset_id}/export.npz?split=holdout")
    assert bad.status_code == 400 and bad.json["field"] == "split"
    other = admin_http.post("/api/projects", json={"name": "other", "channels": ["DAPI"]}).json["id"]
    assert admin_http.get(f"/api/projects/{other}/datasets/{dataset_id}/export.npz").status_code == 404
    listed = admin_http.get(f"/api/projects/{project_id}/datasets").json["datasets"]
    assert [d["version"] for d in listed] == [1]


def test_image_export_as_ome_tiff(admin_http, runtime):
    pid, _ = crowd_project(runtime, with_truth=True)
    with runtime.db.session() as s:
        image = s.scalar(select(Image).where(Image.project_id == pid))
        image_id, raw = image.id, runtime.store.get_array(image.raw_key)
        current = disks().copy()
        current[0][current[0] == 1] = 123456  # the current labels differ from the file's ground truth
        labels_io.put_labels(runtime.store, image.labels_key, current)
    r = admin_http.get(f"/api/projects/{pid}/images/{image_id}/export.ome.tif")
    assert r.status_code == 200 and r.mimetype == "image/tiff" and ".ome.tif" in r.headers["Content-Disposition"]
    with tifffile.TiffFile(io.BytesIO(r.data)) as tif:
        assert tif.is_ome and len(tif.series) == 2
        pixels, labels = tif.series[0].asarray(), tif.series[1].asarray()
        xml = tif.ome_metadata
    assert pixels.dtype == raw.dtype and np.array_equal(pixels, raw)
    assert labels.dtype == np.int32 and np.array_equal(labels, current)
    names = re.findall(r'<Channel [^>]*Name="([^"]+)"', xml)
    assert names == ["DAPI", "membrane", "whole_cell", "nuclear"]
    truth = admin_http.get(f"/api/projects/{pid}/images/{image_id}/export.ome.tif?labels=ground_truth")
    with tifffile.TiffFile(io.BytesIO(truth.data)) as tif:
        assert np.array_equal(tif.series[1].asarray(), disks())
    assert admin_http.get(f"/api/projects/{pid}/images/{image_id}/export.ome.tif?labels=x").status_code == 400
    with runtime.db.session() as s:
        s.get(Image, image_id).labels_key = None
    missing = admin_http.get(f"/api/projects/{pid}/images/{image_id}/export.ome.tif")
    assert missing.status_code == 404 and "no labels yet" in missing.json["error"]


# --- models ---------------------------------------------------------------------------------------------------------
def test_promote_and_roll_back_model_versions(admin_http, runtime, project_id):
    with runtime.db.session() as s:
        for v in (1, 2):
            s.add(ModelVersion(project_id=project_id, version=v, status="ready", key=f"models/{v}/model.keras",
                               metrics={"f1": 0.5 + v / 10}))
    models = admin_http.get(f"/api/projects/{project_id}/models").json["models"]
    v1 = next(m for m in models if m["version"] == 1)
    r = admin_http.post(f"/api/projects/{project_id}/models/{v1['id']}/promote")
    assert r.status_code == 200 and r.json["status"] == "promoted"
    r = admin_http.post(f"/api/projects/{project_id}/models/rollback")
    assert r.status_code == 200 and r.json["promoted"] is None  # back to the baseline
    assert admin_http.post(f"/api/projects/{project_id}/models/rollback").status_code == 409
    assert admin_http.post(f"/api/projects/{project_id}/models/999/promote").status_code == 404
    r = admin_http.post(f"/api/projects/{project_id}/retrain", json={"steps": 10, "backbone": "small"})
    assert r.status_code == 400 and "approved" in r.json["error"]
    assert admin_http.post(f"/api/projects/{project_id}/retrain", json={"steps": "many"}).json["field"] == "steps"


def test_the_models_table_says_what_each_score_was_judged_on(admin_http, runtime, project_id):
    held = {"images": [3, 5, 8], "ground_truth": [3, 5], "left_out": {"9": "model v1"}}
    with runtime.db.session() as s:
        s.add(ModelVersion(project_id=project_id, version=1, status="ready", key="models/1/model.keras",
                           metrics={"f1": 0.91, "headline": 0.93, "evaluated_on": "test+val", "held_out": held}))
        s.add(ModelVersion(project_id=project_id, version=2, status="ready", key="models/2/model.keras",
                           metrics={"f1": 0.9, "headline": 0.92, "evaluated_on": "test",
                                    "held_out": {"images": [4], "ground_truth": [], "left_out": {}}}))
    page = admin_http.get(f"/projects/{project_id}/rounds")
    assert page.status_code == 200
    text = re.sub(r"\s+", " ", page.get_data(as_text=True))
    assert "test + val, 3 image(s); 2 on ground truth; 1 left out (drawn by model v1)" in text
    assert re.search(r"0\.920<div class=\"small muted\">test</div>", text)
