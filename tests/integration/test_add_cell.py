""""Add a cell here" on the crowd and review server-tool paths (SQLite + PostgreSQL).

A 270² synthetic image whose round-0 prediction missed some cells; the round's maps are model-like
(the truth's inner distance and foreground, blurred, with noise) or absent (a baseline round).
"""

from __future__ import annotations

import base64
import zlib

import numpy as np
import pytest
from scipy import ndimage as ndi

from backend.models import Round, Stitch
from backend.services import labels_io
from backend.services.demo import synthetic_npz
from backend.services.images import Upload, import_images
from backend.services.prediction_maps import maps_key, put_prediction_maps
from backend.services.projects import create_project
from backend.services.stitching import crop_image
from tests.integration.test_crowd_api import auth, lease
from worker.model.transforms import inner_distance_transform

SIZE = 270
HALF = 48  # the editor sends the click ± 48 px


def model_like_maps(truth: np.ndarray, seed: int = 0) -> dict:
    """What a good model would predict for ``truth`` (2, H, W): blurred targets plus noise."""
    rng = np.random.default_rng(seed)
    maps = {}
    for f, name in enumerate(("whole_cell", "nuclear")):
        distance = ndi.gaussian_filter(inner_distance_transform(truth[f])[..., 0], 1.0)
        foreground = ndi.gaussian_filter((truth[f] > 0).astype(np.float32), 1.0)
        maps[name] = {"distance": distance + rng.normal(0, 0.02, distance.shape).astype(np.float32),
                      "foreground": np.clip(foreground + rng.normal(0, 0.02, foreground.shape), 0, 1)}
    return maps


def missed_cells(truth: np.ndarray, feature: int, n: int) -> list[int]:
    """``n`` well-sized cells of one feature away from the image border, the largest first."""
    areas = np.bincount(truth[feature].ravel())
    ids = [int(i) for i in np.argsort(areas)[::-1] if i and areas[i] >= 60]
    inner = [i for i in ids if (lambda ys, xs: ys.min() > 5 and xs.min() > 5 and ys.max() < SIZE - 6
                                and xs.max() < SIZE - 6)(*np.nonzero(truth[feature] == i))]
    return inner[:n]


def seed_round(rt, *, with_maps: bool, seed: int = 7):
    """A one-crop project whose prediction is the truth without some cells; returns what tests need."""
    with rt.db.session() as s:
        project = create_project(s, f"add-cell-{with_maps}", ["DAPI", "membrane", "lineage_1"], crop_size=SIZE,
                                 annotators_per_crop=1, gold_fraction=0.0)
        image = import_images(s, rt.store, project, [Upload("tissue.npz", synthetic_npz(SIZE, SIZE, 3, seed))])[0]
        truth = labels_io.get_labels(rt.store, image.ground_truth_key)
        missed = {f: missed_cells(truth, f, 3) for f in range(2)}
        predicted = truth.copy()
        for f, ids in missed.items():
            predicted[f][np.isin(truth[f], ids)] = 0
        rnd = Round(project_id=project.id, number=0)
        s.add(rnd)
        s.flush()
        labels_io.put_labels(rt.store, labels_io.prediction_key(image.id, 0), predicted)
        if with_maps:
            put_prediction_maps(rt.store, maps_key(image.id, 0), None, model_like_maps(truth))
        crop = crop_image(s, rt.store, image.id, rnd.id)[0]
        return project.id, crop.id, image.id, rnd.id, truth, predicted, missed


def interior(mask: np.ndarray) -> tuple[int, int]:
    dist = ndi.distance_transform_edt(mask)
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(y), int(x)


def click_body(labels: np.ndarray, feature: int, y: int, x: int, next_id: int) -> dict:
    h, w = labels.shape[1:]
    bbox = [max(0, y - HALF), max(0, x - HALF), min(h, y + HALF + 1), min(w, x + HALF + 1)]
    box = np.ascontiguousarray(labels[feature, bbox[0]:bbox[2], bbox[1]:bbox[3]], "<i4")
    return {"feature": feature, "bbox": bbox, "point": [y, x], "next_id": next_id,
            "labels": base64.b64encode(zlib.compress(box.tobytes())).decode()}


def applied(labels: np.ndarray, feature: int, answer: dict) -> np.ndarray:
    y0, x0, y1, x1 = answer["bbox"]
    box = np.frombuffer(zlib.decompress(base64.b64decode(answer["labels"])), "<i4").reshape(y1 - y0, x1 - x0)
    out = labels[feature].copy()
    out[y0:y1, x0:x1] = box
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture
def crowd_task(client, runtime):
    def make(with_maps: bool):
        pid, crop_id, *rest = seed_round(runtime, with_maps=with_maps)
        token = lease(client, pid, worker="ann-1").json["token"]
        return (f"/api/crowd/crops/{crop_id}/tools/add_cell", token, *rest)
    return make


def test_a_click_in_missed_cells_adds_them_from_the_model_maps(client, crowd_task):
    url, token, _, _, truth, predicted, missed = crowd_task(True)
    for feature in (0, 1):
        labels = predicted.copy()
        for cell in missed[feature]:
            y, x = interior(truth[feature] == cell)
            next_id = int(labels[feature].max()) + 1
            r = client.post(url, json=click_body(labels, feature, y, x, next_id), headers=auth(token))
            assert r.status_code == 200, r.json
            assert r.json["changed"] and r.json["maps"] == "model" and r.json["tool"] == "add_cell"
            after = applied(labels, feature, r.json)
            assert iou(after == next_id, truth[feature] == cell) >= 0.7
            assert np.array_equal(after[labels[feature] != 0], labels[feature][labels[feature] != 0]), \
                "labelled pixels never change"
            labels[feature] = after


def test_background_labelled_and_outside_clicks_answer_400_with_a_message(client, crowd_task):
    url, token, _, _, truth, predicted, missed = crowd_task(True)
    ys, xs = np.nonzero(ndi.binary_erosion(truth[0] == 0, iterations=3))
    assert len(ys), "the synthetic crop has background"
    r = client.post(url, json=click_body(predicted, 0, int(ys[0]), int(xs[0]), 9999), headers=auth(token))
    assert r.status_code == 400 and "background" in r.json["error"]
    labelled = np.argwhere(predicted[0] > 0)[0]
    r = client.post(url, json=click_body(predicted, 0, int(labelled[0]), int(labelled[1]), 9999), headers=auth(token))
    assert r.status_code == 400 and f"cell {predicted[0][tuple(labelled)]}" in r.json["error"]
    body = click_body(predicted, 0, 10, 10, 9999)
    for point in ([SIZE, 10], [-1, 10], [10, SIZE + 5]):
        r = client.post(url, json={**body, "point": point}, headers=auth(token))
        assert r.status_code == 400 and "outside the 270×270 px crop" in r.json["error"], r.json
    r = client.post(url, json={**body, "point": [200, 200]}, headers=auth(token))
    assert r.status_code == 400 and "outside the box" in r.json["error"]
    r = client.post(url, json={**body, "point": "here"}, headers=auth(token))
    assert r.status_code == 400 and "point" in r.json["error"]


def test_a_baseline_round_derives_the_maps_from_the_crop(client, crowd_task):
    url, token, _, _, truth, predicted, missed = crowd_task(False)
    cell = missed[1][0]
    y, x = interior(truth[1] == cell)
    next_id = int(predicted[1].max()) + 1
    r = client.post(url, json=click_body(predicted, 1, y, x, next_id), headers=auth(token))
    assert r.status_code == 200, r.json
    assert r.json["maps"] == "image"
    assert iou(applied(predicted, 1, r.json) == next_id, truth[1] == cell) >= 0.7


def in_review(runtime, image_id: int, round_id: int, labels: np.ndarray) -> int:
    """A stitch of the image waiting for review whose labels are ``labels``; returns its id."""
    with runtime.db.session() as s:
        stitch_key, conflicts_key = labels_io.stitch_keys(image_id, 0)
        labels_io.put_labels(runtime.store, stitch_key, labels)
        runtime.store.put_arrays(conflicts_key, conflicts=np.zeros((2, SIZE, SIZE), dtype=bool))
        stitch = Stitch(image_id=image_id, round_id=round_id, key=stitch_key, conflicts_key=conflicts_key,
                        status="in_review", n_cells=int(labels[0].max()))
        s.add(stitch)
        s.flush()
        return stitch.id


def test_the_review_editor_adds_a_cell_on_the_stitched_image(reviewer_client, runtime):
    _, _, image_id, round_id, truth, predicted, missed = seed_round(runtime, with_maps=True)
    stitch_id = in_review(runtime, image_id, round_id, predicted)
    url = f"/api/review/stitches/{stitch_id}/tools/add_cell"
    cell = missed[0][0]
    y, x = interior(truth[0] == cell)
    next_id = int(predicted[0].max()) + 1
    r = reviewer_client.post(url, json=click_body(predicted, 0, y, x, next_id))
    assert r.status_code == 200, r.json
    assert r.json["maps"] == "model"
    assert iou(applied(predicted, 0, r.json) == next_id, truth[0] == cell) >= 0.7
    r = reviewer_client.post(url, json={**click_body(predicted, 0, y, x, next_id), "point": [SIZE + 1, 3]})
    assert r.status_code == 400 and "outside the 270×270 px image" in r.json["error"]


@pytest.mark.parametrize("with_maps", [True, False])
def test_simulated_annotators_add_missed_cells_with_the_tool_and_keep_only_good_ones(runtime, tmp_path, with_maps):
    from dataclasses import replace

    from backend.app import build_app
    from backend.core.crowd_simulation import PROFILES, missed_cells
    from worker.simulate import HttpClient, SimAnnotator, Simulation, SimulationConfig, serve

    pid, crop_id, _, _, truth, predicted, missed = seed_round(runtime, with_maps=with_maps)
    rng = np.random.default_rng(0)
    keen = SimAnnotator("sim-keen", replace(PROFILES["careful"], tool_probability=1.0), rng)
    never = SimAnnotator("sim-never", PROFILES["hasty"], rng)
    with serve(build_app(runtime=runtime)) as url:
        sim = Simulation(runtime, SimulationConfig(out_dir=tmp_path))
        sim.crowd = HttpClient(url)
        token = sim.crowd.json("POST", f"/api/crowd/{pid}/lease", json_body={"params": {"worker": "sim-1"}})["token"]
        base = f"/api/crowd/crops/{crop_id}"
        labels, calls = sim.add_missed_cells(keen, base, token, predicted, truth)
        unchanged, none = sim.add_missed_cells(never, base, token, predicted, truth)
    assert calls == sum(len(missed_cells(predicted[f], truth[f])) for f in range(2)) >= 6
    assert none == 0 and np.array_equal(unchanged, predicted)
    for f in range(2):
        assert np.array_equal(labels[f][predicted[f] > 0], predicted[f][predicted[f] > 0])
        for new_id in np.setdiff1d(np.unique(labels[f]), np.unique(predicted[f])):  # every cell kept is good
            cell = np.bincount(truth[f][labels[f] == new_id]).argmax()
            assert iou(labels[f] == new_id, truth[f] == cell) >= 0.7
    if with_maps:  # the model's maps recover every missed cell; the rest are left to the brush
        assert all(missed_cells(labels[f], truth[f]) == [] for f in range(2))
