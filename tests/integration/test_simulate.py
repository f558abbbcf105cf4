"""``looplabel simulate`` end to end: HTTP API, tokens, PostgreSQL, Redis/RQ, storage, fusion,
stitching, review, dataset, training and promotion, with a simulated crowd (small and fast)."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from sqlalchemy import func, select

from backend.config import Settings
from backend.models import (
    Assignment,
    Crop,
    DatasetVersion,
    Image,
    Job,
    LabelRevision,
    ModelVersion,
    Review,
    Round,
    Stitch,
)
from backend.runtime import Runtime
from worker.simulate import SimulationConfig, SimulationError, run_simulation


@pytest.fixture
def rq_runtime(pg_url, redis_url, tmp_path):
    """PostgreSQL + RQ on Redis (a queue prefix of its own) + a local store."""
    env = {"LOOPLABEL_INSTANCE": str(tmp_path / "instance"), "DATABASE_URL": pg_url, "REDIS_URL": redis_url,
           "QUEUE_PREFIX": f"test-sim-{uuid.uuid4().hex[:8]}-", "STORAGE_URL": f"file://{tmp_path / 'storage'}",
           "SECRET_KEY": "test-secret"}
    rt = Runtime(Settings.from_env(env))
    yield rt
    for name in ("default", "gpu"):
        rt.queue.rq_queue(name).delete(delete_jobs=True)
    rt.close()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_two_simulated_rounds_leave_every_stage_behind(rq_runtime, tmp_path):
    rt = rq_runtime
    config = SimulationConfig(images=2, size=300, channels=2, rounds=2, annotators_per_crop=2,
                              profiles="careful*2,hasty,spammer", train_steps=4, backbone="small", seed=3,
                              test_images=1, promotion="always", out_dir=tmp_path / "report")
    report = run_simulation(rt, config)
    store = rt.store
    with rt.db.session() as s:
        pid = report["project_id"]
        rounds = s.scalars(select(Round).where(Round.project_id == pid).order_by(Round.number)).all()
        models = s.scalars(select(ModelVersion).where(ModelVersion.project_id == pid)
                           .order_by(ModelVersion.version)).all()
        images = s.scalars(select(Image).where(Image.project_id == pid)).all()
        crops = s.scalars(select(Crop).join(Image, Image.id == Crop.image_id).where(Image.project_id == pid)).all()
        assignments = s.scalars(select(Assignment).where(Assignment.crop_id.in_([c.id for c in crops]))).all()
        revisions = s.scalars(select(LabelRevision).where(
            LabelRevision.assignment_id.in_([a.id for a in assignments]))).all()
        stitches = s.scalars(select(Stitch).where(Stitch.image_id.in_([i.id for i in images]))).all()
        reviews = s.scalars(select(Review).where(Review.stitch_id.in_([st.id for st in stitches]))).all()
        datasets = s.scalars(select(DatasetVersion).where(DatasetVersion.project_id == pid)
                             .order_by(DatasetVersion.version)).all()
        jobs = s.scalars(select(Job).where(Job.project_id == pid)).all()
        leased = s.scalar(select(func.count(Assignment.id)).where(Assignment.status == "leased"))

    # rounds: predicted by the generalist (or the baseline), then by the first trained version
    assert [(r.number, r.status) for r in rounds] == [(0, "closed"), (1, "closed")]
    assert rounds[0].model_version_id is None and rounds[1].model_version_id == models[0].id
    # images: 2 per round, approved with stored labels and ground truth
    assert len(images) == 4 and all(i.status == "approved" for i in images)
    assert all(store.exists(i.labels_key) and store.exists(i.ground_truth_key) for i in images)
    # crops (2 x 2 per 300-px image): stored, fused; gold ones hold the expert labels
    assert len(crops) >= 16 and all(store.exists(c.key) and c.status == "fused" and store.exists(c.fused_key)
                                    for c in crops)
    gold = [c for c in crops if c.is_gold]
    assert gold and all(store.exists(c.gold_key) for c in gold)
    # the crowd worked only through the API: every task submitted, k per crop, revisions stored
    assert leased == 0 and all(a.status in ("submitted", "dropped") for a in assignments)
    for crop in crops:
        done = [a for a in assignments if a.crop_id == crop.id and a.generation == crop.generation
                and a.status == "submitted"]
        assert len(done) >= (1 if crop.is_gold else config.annotators_per_crop)
    assert revisions and all(store.exists(r.key) for r in revisions)
    assert all(a.active_seconds > 0 for a in assignments if a.status == "submitted")
    assert any(a.gold_score is not None for a in assignments) and any(a.agreement for a in assignments)
    assert sum(r["tool_calls"] for r in report["rounds"]) > 0  # the watershed split over HTTP
    # stitched, reviewed, approved
    assert len(stitches) == 4 and all(st.status == "approved" and store.exists(st.key) for st in stitches)
    assert sum(r.decision == "approved" for r in reviews) == 4
    assert all(r.reason for r in reviews if r.decision == "rejected")
    # one dataset and one model version per round; the second version is promoted
    assert len(datasets) == 2 and all(store.exists(f"{d.key_prefix}/train.npz") for d in datasets)
    assert [m.status for m in models] == ["ready", "promoted"] and all(store.exists(m.key) for m in models)
    assert models[1].parent_id == models[0].id and models[1].dataset_id == datasets[1].id
    assert jobs and all(j.status == "finished" for j in jobs)
    assert rt.queue.depth("default") == 0 and rt.queue.depth("gpu") == 0

    # the spammer is the worst annotator by the platform's gold gain, and is caught (plain gold
    # accuracy credits a spammer who submits a good model's prediction unchanged: it can pass hasty)
    gold_accuracy, gain = report["gold_accuracy_by_profile"], report["gold_gain_by_profile"]
    assert set(gold_accuracy) == {"careful", "hasty", "spammer"}
    assert gold_accuracy["spammer"] < gold_accuracy["careful"]
    assert gain["spammer"] == min(gain.values()) and gain["spammer"] <= 0 < gain["hasty"] < gain["careful"]
    assert report["spammer_caught"] and not report["rounds"][0]["annotator_check"]["false_alarms"]
    assert "spammer" not in report["rounds"][1]["median_seconds_by_profile"]  # blocked: no more tasks

    # report: per-round figures, files, and the admin dashboard of the project shows them too
    assert len(report["f1_by_round"]) == 2 and report["f1_round_zero"] == report["f1_by_round"][0] > 0.3
    # round 0 was predicted by the round-0 choice, measured through the predict path
    assert rounds[0].predictor == report["round_zero_predictor"] in ("generalist", "baseline")
    assert all(c is not None and c > 0 for c in report["corrections_per_crop_by_round"])
    # per 100 cells of the crops' truth: a share of the cells, not a count that grows with density
    assert all(c is not None and 0 < c < 100 for c in report["corrections_per_100_cells_by_round"])
    assert all(t is not None and t > 0 for t in report["median_seconds_per_crop_by_round"])
    assert [d["number"] for d in report["dashboard"]] == [0, 1]
    assert all(d["n_submissions"] > 0 and d["n_approved"] == 2 for d in report["dashboard"])
    written = {p.name: p for p in (tmp_path / "report").iterdir()}
    assert json.loads(written["report.json"].read_text())["f1_by_round"] == report["f1_by_round"]
    assert written["learning_curves.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sum(name.endswith(".svg") and "<svg" in p.read_text() for name, p in written.items()) == 4


def test_config_errors_name_what_to_change():
    with pytest.raises(SimulationError, match="annotations per crop"):
        SimulationConfig(profiles="careful", annotators_per_crop=2)
    with pytest.raises(SimulationError, match="unknown annotator profile"):
        SimulationConfig(profiles="careful,sloppy")
    with pytest.raises(SimulationError, match="backbone"):
        SimulationConfig(backbone="vgg")
    with pytest.raises(SimulationError, match="steps per image"):
        SimulationConfig(steps_per_image=-1)
    assert np.isfinite(SimulationConfig().approve_f1)


@pytest.mark.postgres
@pytest.mark.slow
def test_a_budget_round_spends_at_most_its_budget_on_the_crowd(pg_runtime, tmp_path):
    runtime = pg_runtime
    config = SimulationConfig(images=2, size=300, channels=2, rounds=1, annotators_per_crop=2,
                              profiles="careful*2", train_steps=50, steps_per_image=1, backbone="small", seed=4,
                              test_images=1, policy={"policy": "budget", "budget": 3}, out_dir=tmp_path / "report")
    report = run_simulation(runtime, config)
    with runtime.db.session() as s:
        crops = s.scalars(select(Crop).join(Image, Image.id == Crop.image_id)
                          .where(Image.project_id == report["project_id"], Crop.is_gold.is_(False))).all()
        crowd = [c for c in crops if c.source == "crowd"]
        submitted = s.scalars(select(Assignment.crop_id).join(Crop, Crop.id == Assignment.crop_id)
                              .where(Crop.is_gold.is_(False), Assignment.status == "submitted")).all()
    assert report["policy"] == {"policy": "budget", "budget": 3}
    assert report["crowd_crops_by_round"] == [3] == [len(crowd)]
    assert report["model_crops_by_round"] == [len(crops) - 3]
    assert set(submitted) == {c.id for c in crowd}  # nobody worked on a skipped crop
    assert max(c.expected_fixes for c in crops if c.source == "model") <= min(c.expected_fixes for c in crowd)
    assert 0.5 < report["approved_label_f1"] <= 1.0
    assert len(report["approved_label_nuclear_f1_by_round"]) == 1
    assert 0.5 < report["approved_label_nuclear_f1_by_round"][0] <= 1.0
    # one step per approved image (two), not the fixed train_steps
    assert [r["training"]["steps"] for r in report["rounds"]] == [2]
    with runtime.db.session() as s:
        trained = s.scalars(select(ModelVersion).where(ModelVersion.project_id == report["project_id"])).all()
    assert [mv.config["steps"] for mv in trained] == [2]


def test_images_uploaded_without_truth_are_annotated_against_the_truth_the_simulation_kept(runtime, tmp_path):
    config = SimulationConfig(images=2, size=300, channels=2, rounds=1, annotators_per_crop=1,
                              profiles="careful", train_steps=2, backbone="small", seed=5, test_images=1,
                              truth_images=1, out_dir=tmp_path / "report")
    report = run_simulation(runtime, config)
    with runtime.db.session() as s:
        images = s.scalars(select(Image).where(Image.project_id == report["project_id"]).order_by(Image.id)).all()
        gold = {c.image_id for c in s.scalars(select(Crop).where(Crop.is_gold.is_(True)))}
        assert [i.ground_truth_key is not None for i in images] == [True, False]
        assert all(i.status == "approved" for i in images)
        assert gold <= {images[0].id}  # gold crops only where the product holds the truth
    # the crowd fixed the image the product has no truth for as well as the other
    assert report["approved_label_f1"] > 0.9
    with pytest.raises(SimulationError, match="truth images"):
        SimulationConfig(images=2, truth_images=3)


def test_a_bad_policy_is_a_config_error():
    with pytest.raises(SimulationError, match="budget"):
        SimulationConfig(policy={"policy": "budget"})
