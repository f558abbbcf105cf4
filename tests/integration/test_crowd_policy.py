"""Round crowd policies: a budget of the most uncertain crops, confident-skip, switching mid-round."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from sqlalchemy import select

from backend.models import Assignment, Crop, Image, Job, Round, Stitch
from backend.services import labels_io
from backend.services.datasets import build_dataset, drawn_by, tile_images
from backend.services.demo import synthetic_npz
from backend.services.images import Upload, import_images
from backend.services.prediction_maps import UNSURE, get_prediction_maps, maps_key
from backend.services.projects import create_project
from tests.integration.test_crowd_api import auth, lease


def make_project(rt, n_images=2, **settings):
    with rt.db.session() as s:
        project = create_project(s, "policy", ["DAPI", "membrane"], crop_size=64, overlap=8,
                                 annotators_per_crop=1, gold_fraction=0.0, **settings)
        import_images(s, rt.store, project, [Upload(f"t{i}.npz", synthetic_npz(120, 120, 2, seed=40 + i))
                                             for i in range(n_images)])
        return project.id


def start(admin_client, rt, project_id, policy=None):
    r = admin_client.post(f"/api/projects/{project_id}/rounds", json={"policy": policy} if policy else {})
    assert r.status_code == 201, r.json
    rt.queue.join()
    with rt.db.session() as s:
        failed = [(j.kind, j.error) for j in s.scalars(select(Job).where(Job.status == "failed"))]
    assert not failed, failed
    return r.json


def crops_of(rt, round_id):
    with rt.db.session() as s:
        rows = s.scalars(select(Crop).where(Crop.round_id == round_id).order_by(Crop.id)).all()
        return [{"id": c.id, "image_id": c.image_id, "status": c.status, "source": c.source,
                 "expected_fixes": c.expected_fixes, "uncertainty": c.uncertainty, "key": c.key,
                 "fused_key": c.fused_key} for c in rows]


def test_every_crop_is_scored_and_all_goes_to_the_crowd(admin_client, runtime):
    pid = make_project(runtime)
    rnd = start(admin_client, runtime, pid)
    crops = crops_of(runtime, rnd["id"])
    assert len(crops) == 2 * 4
    assert all(c["expected_fixes"] is not None and 0.0 <= c["uncertainty"] <= 1.0 for c in crops)
    assert {c["status"] for c in crops} == {"open"} and {c["source"] for c in crops} == {"crowd"}
    rounds = admin_client.get(f"/api/projects/{pid}/rounds").json["rounds"]
    assert rounds[0]["policy"] == {"policy": "all"} and rounds[0]["crowd_crops"] == 8


def test_a_budget_opens_the_most_uncertain_crops_and_never_leases_more(admin_client, client, runtime):
    pid = make_project(runtime)
    rnd = start(admin_client, runtime, pid, {"policy": "budget", "budget": 3})
    crops = crops_of(runtime, rnd["id"])
    opened = [c for c in crops if c["status"] == "open"]
    skipped = [c for c in crops if c["source"] == "model"]
    assert len(opened) == 3 and len(skipped) == 5
    assert min(c["expected_fixes"] for c in opened) >= max(c["expected_fixes"] for c in skipped)
    for c in skipped:  # the model's labels, unchecked, fused as they were predicted
        assert c["status"] == "fused"
        assert np.array_equal(labels_io.get_labels(runtime.store, c["fused_key"]),
                              labels_io.get_labels(runtime.store, c["key"]))
    leased = set()
    for n in range(6):
        r = lease(client, pid, worker=f"w{n}")
        if r.status_code == 200:
            leased.add(r.json["task"]["crop_id"])
            assert client.post(f"/api/crowd/crops/{r.json['task']['crop_id']}/submit", json={},
                               headers=auth(r.json["token"])).status_code == 200
        else:
            assert r.status_code == 404
    assert leased == {c["id"] for c in opened}
    runtime.queue.join()
    with runtime.db.session() as s:  # everything fused: both images stitched, each once
        stitches = s.scalars(select(Stitch).where(Stitch.round_id == rnd["id"])).all()
        assert sorted(st.image_id for st in stitches) == sorted({c["image_id"] for c in crops})
    rounds = admin_client.get(f"/api/projects/{pid}/rounds").json["rounds"]
    assert (rounds[0]["crowd_crops"], rounds[0]["model_crops"]) == (3, 5)


@pytest.mark.parametrize("skip_below, skipped", [(0.0, False), (1.0, True)])
def test_confident_skip_at_the_extremes_skips_none_or_all(admin_client, runtime, skip_below, skipped):
    pid = make_project(runtime, n_images=1)
    rnd = start(admin_client, runtime, pid, {"policy": "confident-skip", "skip_below": skip_below})
    assert {c["source"] for c in crops_of(runtime, rnd["id"])} == {"model" if skipped else "crowd"}


def test_confident_skip_sends_only_crops_at_or_over_the_threshold(admin_client, runtime):
    pid = make_project(runtime)
    rnd = start(admin_client, runtime, pid)
    threshold = float(np.median([c["uncertainty"] for c in crops_of(runtime, rnd["id"])]))
    r = admin_client.post(f"/api/projects/{pid}/rounds/{rnd['id']}/policy",
                          json={"policy": "confident-skip", "skip_below": threshold})
    assert r.status_code == 200, r.json
    crops = crops_of(runtime, rnd["id"])
    for c in crops:
        assert (c["source"] == "model") == (c["uncertainty"] < threshold)
    assert 0 < sum(c["source"] == "model" for c in crops) < len(crops)


def test_everything_skipped_is_stitched_reviewed_and_recorded_as_model_labels(admin_client, reviewer_client, runtime):
    pid = make_project(runtime, n_images=1)
    rnd = start(admin_client, runtime, pid, {"policy": "budget", "budget": 0})
    queue = reviewer_client.get(f"/api/review/queue?project_id={pid}").json["queue"]
    assert len(queue) == 1
    info = reviewer_client.get(f"/api/review/stitches/{queue[0]['stitch_id']}").json
    assert {c["source"] for c in info["crops"]} == {"model"}
    r = reviewer_client.get(f"/api/review/stitches/{queue[0]['stitch_id']}/overlays/uncertain")
    assert r.status_code == 200
    unsure = np.frombuffer(zlib.decompress(r.data), np.uint8).reshape(2, 120, 120)
    u = get_prediction_maps(runtime.store, maps_key(info["image_id"], rnd["number"]))["uncertainty"]
    assert np.array_equal(unsure, (u >= UNSURE).astype(np.uint8))
    r = reviewer_client.post(f"/api/review/stitches/{queue[0]['stitch_id']}/approve",
                             json={"revision": info["revision"]})
    assert r.status_code == 200, r.json
    with runtime.db.session() as s:
        ds = build_dataset(s, runtime.store, pid)
        sources = ds.qc["label_sources"]
        # who drew the image's labels (the round's predictor), and which tiles of which split are its
        predictor = s.get(Round, rnd["id"]).predictor
        assert predictor in ("generalist", "baseline")
        assert drawn_by(s, ds) == {info["image_id"]: predictor}
        assert [i for split in ("train", "val", "test") for i in tile_images(s, ds, split)] == [info["image_id"]]
    assert list(sources.values())[0] == {"round": rnd["number"], "crops": {"crowd": 0, "model": 4, "gold": 0}}


def test_switching_policy_mid_round_keeps_every_submitted_annotation(admin_client, client, runtime):
    pid = make_project(runtime)
    rnd = start(admin_client, runtime, pid)
    r = lease(client, pid, worker="early")
    crop_id, token = r.json["task"]["crop_id"], r.json["token"]
    labels = np.zeros((2, 64, 64), np.int32)
    labels[:, 10:30, 10:30] = 5
    body = zlib.compress(labels.tobytes())
    put = client.put(f"/api/crowd/crops/{crop_id}/labels", data=body,
                     headers={**auth(token), "X-Base-Revision": "0", "X-Dtype": "int32", "X-Shape": "2,64,64"})
    assert put.status_code == 201, put.json
    assert client.post(f"/api/crowd/crops/{crop_id}/submit", json={}, headers=auth(token)).status_code == 200
    other = lease(client, pid, worker="holder").json  # leased, not submitted: kept too
    r = admin_client.post(f"/api/projects/{pid}/rounds/{rnd['id']}/policy",
                          json={"policy": "confident-skip", "skip_below": 1.0})
    assert r.status_code == 200, r.json
    runtime.queue.join()
    crops = {c["id"]: c for c in crops_of(runtime, rnd["id"])}
    assert crops[crop_id]["source"] == "crowd" and crops[other["task"]["crop_id"]]["source"] == "crowd"
    assert sum(c["source"] == "model" for c in crops.values()) == len(crops) - 2
    with runtime.db.session() as s:
        sub = s.scalar(select(Assignment).where(Assignment.crop_id == crop_id))
        assert sub.status == "submitted"
    fused = labels_io.get_labels(runtime.store, crops[crop_id]["fused_key"])
    assert (fused[0] > 0).sum() == 400  # the annotator's labels, not the prediction
    # and back to "all": nothing is taken from the crowd's work either
    r = admin_client.post(f"/api/projects/{pid}/rounds/{rnd['id']}/policy", json={"policy": "all"})
    assert r.status_code == 200 and r.json["policy"] == {"policy": "all"}
    after = {c["id"]: c for c in crops_of(runtime, rnd["id"])}
    assert {i: c["source"] for i, c in after.items()} == {i: c["source"] for i, c in crops.items()}
    assert np.array_equal(labels_io.get_labels(runtime.store, after[crop_id]["fused_key"]), fused)


@pytest.mark.parametrize("policy, message", [
    ({"policy": "cheapest"}, "one of"),
    ({"policy": "budget"}, "budget"),
    ({"policy": "budget", "budget": -1}, "budget"),
    ({"policy": "confident-skip", "skip_below": 2}, "skip_below"),
    ({"policy": "all", "colour": "red"}, "unknown"),
])
def test_bad_policies_are_400_naming_the_problem(admin_client, runtime, policy, message):
    pid = make_project(runtime, n_images=1)
    r = admin_client.post(f"/api/projects/{pid}/rounds", json={"policy": policy})
    assert r.status_code == 400 and message in r.json["error"]
    with runtime.db.session() as s:
        assert s.scalar(select(Round).where(Round.project_id == pid)) is None
    r = admin_client.patch(f"/api/projects/{pid}", json={"crowd_policy": policy})
    assert r.status_code == 400 and message in r.json["error"]


def test_the_project_policy_is_the_default_of_its_rounds(admin_client, runtime):
    pid = make_project(runtime, n_images=1)
    r = admin_client.patch(f"/api/projects/{pid}", json={"crowd_policy": {"policy": "budget", "budget": 2}})
    assert r.status_code == 200, r.json
    rnd = start(admin_client, runtime, pid)
    assert rnd["policy"] == {"policy": "budget", "budget": 2}
    assert sum(c["status"] == "open" for c in crops_of(runtime, rnd["id"])) == 2


def test_a_round_can_take_the_images_the_model_is_least_sure_of(admin_client, runtime):
    pid = make_project(runtime, n_images=3)
    with runtime.db.session() as s:
        before = {i.id: i.status for i in s.scalars(select(Image).where(Image.project_id == pid))}
    r = admin_client.post(f"/api/projects/{pid}/rounds", json={"images": 1})
    assert r.status_code == 201 and r.json["takes"] == 1
    runtime.queue.join()
    with runtime.db.session() as s:
        rnd = s.get(Round, r.json["id"])
        scores = {int(k): v for k, v in rnd.policy["image_scores"].items()}
        statuses = {i.id: i.status for i in s.scalars(select(Image).where(Image.project_id == pid))}
        cropped = set(s.scalars(select(Crop.image_id).where(Crop.round_id == rnd.id)))
    assert set(scores) == set(before)  # every waiting image was scored
    chosen = max(scores, key=lambda i: (scores[i], -i))
    assert cropped == {chosen} and rnd.policy["images"] == [chosen]
    assert statuses[chosen] == "in_crowd"
    assert all(statuses[i] == before[i] for i in before if i != chosen)  # back to waiting, untouched


@pytest.mark.parametrize("images", [0, -2, "many", True])
def test_a_bad_number_of_images_is_400(admin_client, runtime, images):
    pid = make_project(runtime, n_images=1)
    r = admin_client.post(f"/api/projects/{pid}/rounds", json={"images": images})
    assert r.status_code == 400 and "images" in r.json["error"]


def test_a_budget_set_mid_round_counts_the_crops_the_crowd_already_has(admin_client, client, runtime):
    pid = make_project(runtime)
    rnd = start(admin_client, runtime, pid)
    started = lease(client, pid, worker="early").json["task"]["crop_id"]
    r = admin_client.post(f"/api/projects/{pid}/rounds/{rnd['id']}/policy", json={"policy": "budget", "budget": 2})
    assert r.status_code == 200 and r.json["opened"] == 1, r.json
    crops = crops_of(runtime, rnd["id"])
    crowd = [c for c in crops if c["source"] == "crowd"]
    assert {c["id"] for c in crowd} >= {started} and len(crowd) == 2
    untouched = [c for c in crops if c["id"] != started]
    chosen = next(c for c in crowd if c["id"] != started)
    assert chosen["expected_fixes"] == max(c["expected_fixes"] for c in untouched)
