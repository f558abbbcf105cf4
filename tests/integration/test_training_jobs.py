"""build_dataset → train → evaluate → promote → predict on PostgreSQL; a crashing training keeps
the promoted version serving."""

import pytest
from sqlalchemy import select

from backend.models import DatasetVersion, Image, Job, ModelVersion
from backend.services import registry
from backend.services.demo import synthetic_npz
from backend.services.images import Upload, import_images
from backend.services.projects import create_project
from backend.services.rounds import start_round
from worker import training

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def rt(pg_runtime):
    return pg_runtime


def _approved_project(rt):
    """Three synthetic images whose ground truth stands in for approved labels."""
    with rt.db.session() as s:
        project = create_project(s, "training", ["DAPI", "membrane"], auto_promote=False)
        uploads = [Upload(f"t{i}.npz", synthetic_npz(256, 256, 2, seed=40 + i)) for i in range(3)]
        for image in import_images(s, rt.store, project, uploads):
            image.status, image.labels_key = "approved", image.ground_truth_key
        return project.id


def _jobs(rt, kind):
    with rt.db.session() as s:
        return s.scalars(select(Job).where(Job.kind == kind).order_by(Job.id)).all()


def _retrain(rt, project_id, steps=4, auto_promote=None):
    """Start a retraining of the project, wait for its jobs, and return the training job."""
    from backend.models import Project

    with rt.db.session() as s:
        project = s.get(Project, project_id)
        if auto_promote is not None:
            project.auto_promote = auto_promote
        registry.start_retraining(s, rt.queue, project, steps=steps, backbone="small")
    rt.queue.join()
    return _jobs(rt, "train_model")[-1]


def test_train_evaluate_promote_predict_and_a_crash_keeps_the_promoted_version(rt, monkeypatch):
    from backend.queue import JobContext

    messages = []
    original = JobContext.progress
    monkeypatch.setattr(JobContext, "progress",
                        lambda self, fraction, message="": (messages.append(message), original(self, fraction, message)))
    project_id = _approved_project(rt)
    train = _retrain(rt, project_id)
    epochs = [m.split(":")[0] for m in messages if m.startswith("epoch ")]
    assert epochs and epochs[0] == f"epoch 1/{len(epochs)}" and epochs[-1] == f"epoch {len(epochs)}/{len(epochs)}"
    build = _jobs(rt, "build_dataset")[-1]
    assert (build.status, build.progress) == ("finished", 1.0), build.error
    assert (train.status, train.progress) == ("finished", 1.0), train.error
    assert "F1" in train.message
    with rt.db.session() as s:
        ds = s.scalar(select(DatasetVersion))
        assert sum(ds.n_tiles.values()) == 3 and ds.n_tiles["train"] >= 1
        v1 = s.scalar(select(ModelVersion))
        assert v1.status == "ready" and v1.key and v1.metrics["f1"] is not None
        # measured against what the next round would otherwise use: the better of the two
        candidates = v1.metrics["reference"]["candidates"]
        assert set(candidates) == {"generalist", "baseline"}
        assert v1.metrics["reference"]["source"] == max(candidates, key=lambda n: candidates[n]["headline"])
        # fine-tuned from the shipped generalist; three small images hold too few validation
        # cells to search post-processing on, so the generalist's settings and zoom carry over
        from worker.model import generalist

        card = generalist.load_card()
        assert v1.config["fine_tuned_from"] == "generalist"
        calibration = v1.metrics["calibration"]
        assert calibration["inherited_from"] == "generalist"
        assert 0 < calibration["validation_cells"] < training.CALIBRATION_MIN_CELLS
        assert v1.postprocess == card["postprocess"]
        assert v1.scale["zoom"] == card["scale"]["zoom"] and v1.scale["nucleus_diameter"] > 0
        assert v1.metrics["history"]["batch_norm"] == "frozen"
        # nothing was chosen on the validation image (averaged weights, inherited settings): it is
        # held out as well, and the candidate and its reference are measured on both images
        assert v1.metrics["evaluated_on"] == "test+val" and v1.metrics["history"]["kept"] == "average"
        assert v1.metrics["history"]["averaged_epochs"] >= 1 and v1.config["keep"] == "average"
        # both held-out images came with the lab's ground truth: judged by it, none left out
        held = v1.metrics["held_out"]
        assert held["ground_truth"] == held["images"] and len(held["images"]) == 2 and held["left_out"] == {}
        registry.promote(s, v1.id)
        rt.queue.enqueue(s, "worker.jobs.evaluate_model", project_id=project_id, model_version_id=v1.id)
    rt.queue.join()
    evaluate = _jobs(rt, "evaluate_model")[-1]
    assert evaluate.status == "finished" and evaluate.result["f1"] is not None
    # The next round predicts with the promoted version.
    with rt.db.session() as s:
        for image in s.scalars(select(Image)):
            image.status = "uploaded"
        from backend.models import Project

        start_round(s, rt.queue, s.get(Project, project_id))
    rt.queue.join()
    predictions = _jobs(rt, "predict_image")
    assert predictions and all(j.status == "finished" and j.result["source"] == "model v1" for j in predictions)

    # A training that crashes leaves a failed version and the promoted one serving.
    import worker.model.train as train_module

    def crash(*args, **kwargs):
        raise RuntimeError("out of GPU memory (simulated)")

    monkeypatch.setattr(train_module, "train_model", crash)
    with rt.db.session() as s:
        for image in s.scalars(select(Image)):
            image.status = "approved"
    failed = _retrain(rt, project_id)
    assert failed.status == "failed" and "out of GPU memory" in failed.error
    with rt.db.session() as s:
        versions = {mv.version: mv for mv in s.scalars(select(ModelVersion))}
        assert versions[2].status == "failed" and "out of GPU memory" in versions[2].error
        assert versions[1].status == "promoted"
        assert registry.promoted(s, project_id).id == v1.id


def test_held_out_images_are_judged_by_their_ground_truth_where_it_labels_every_feature(rt):
    """The held-out splits keep, beside the approved labels a model never trains on, the labels
    versions are judged by: the uploaded ground truth, or the approved labels when the truth
    misses a feature (here: whole-cell truth only)."""
    import numpy as np

    from backend.services import datasets, labels_io

    with rt.db.session() as s:
        project = create_project(s, "judging", ["DAPI", "membrane"], auto_promote=False)
        uploads = [Upload(f"j{i}.npz", synthetic_npz(256, 256, 2, seed=60 + i)) for i in range(5)]
        images = import_images(s, rt.store, project, uploads)
        splits = datasets.assign_splits([i.id for i in images])
        whole_only = splits["test"][0]  # a held-out image whose truth has whole cells only
        for image in images:
            truth = labels_io.get_labels(rt.store, image.ground_truth_key)
            if image.id == whole_only:
                truth[1] = 0
                rt.store.put_arrays(image.ground_truth_key, labels=truth)
            labels = truth.copy()
            labels[0][labels[0] == labels[0].max()] = 0  # the crowd missed a cell the truth has
            if image.id == whole_only:
                labels[1] = labels_io.get_labels(rt.store, image.ground_truth_key)[0]
            key = f"images/{image.id}/approved.npz"
            labels_io.put_labels(rt.store, key, labels)
            image.status, image.labels_key = "approved", key
        s.flush()
        ds = datasets.build_dataset(s, rt.store, project.id)
        assert ds.image_ids == splits and splits["val"]
        for split in ("val", "test"):
            _, y = datasets.load_split(rt.store, ds, split)
            judge, on_truth = datasets.load_judging_labels(rt.store, ds, split)
            owners = datasets.tile_images(s, ds, split)
            assert judge.shape == y.shape and on_truth.shape == (y.shape[0],) and len(owners) == y.shape[0]
            for k, image_id in enumerate(owners):
                image = s.get(Image, image_id)
                truth = labels_io.get_labels(rt.store, image.ground_truth_key)
                assert bool(on_truth[k]) is (image_id != whole_only)
                if image_id == whole_only:  # its approved labels, as trained on (after QC)
                    np.testing.assert_array_equal(judge[k], y[k])
                else:  # the truth, with the cell the crowd missed
                    np.testing.assert_array_equal(judge[k], np.moveaxis(truth, 0, -1))
                    assert not np.array_equal(judge[k], y[k])
        arrays = rt.store.get_arrays(f"{ds.key_prefix}/train.npz")
        assert "y_judge" not in arrays  # a training split is never judged on


def test_a_worse_candidate_is_never_promoted(rt, monkeypatch):
    """A candidate with random weights loses to the generalist / baseline and stays unpromoted,
    even with auto-promotion on; a better one (its reference made worse) is promoted."""
    import keras

    import worker.model.train as train_module
    from backend.models import Project
    from worker.model.panoptic import build_panoptic

    def random_weights(model, *args, **kwargs):
        keras.utils.set_random_seed(1)
        return build_panoptic(2, "small"), {"steps": 0}

    monkeypatch.setattr(train_module, "train_model", random_weights)
    project_id = _approved_project(rt)
    train = _retrain(rt, project_id, auto_promote=True)
    assert train.status == "finished", train.error
    with rt.db.session() as s:
        mv = s.scalar(select(ModelVersion))
        assert mv.status == "ready" and registry.promoted(s, project_id) is None
        assert mv.metrics["headline"] < mv.metrics["reference"]["headline"]
        assert train.result["promoted"] is False
        # the rule itself: equal is not better, a missing reference is not better
        for reference, promoted in ((mv.metrics["headline"], False), (None, False),
                                    (mv.metrics["headline"] - 0.01, True)):
            mv.metrics = {**mv.metrics, "reference": {**mv.metrics["reference"], "headline": reference}}
            assert registry.apply_promotion_rule(s, mv) is promoted


def test_a_fine_tune_searches_post_processing_when_validation_holds_enough_cells(rt, monkeypatch):
    monkeypatch.setattr(training, "CALIBRATION_MIN_CELLS", 1)
    project_id = _approved_project(rt)
    train = _retrain(rt, project_id, steps=2)
    assert train.status == "finished", train.error
    with rt.db.session() as s:
        v1 = s.scalar(select(ModelVersion))
        calibration = v1.metrics["calibration"]
        assert calibration["inherited_from"] is None and calibration["objective"] == "pq"
        assert set(calibration["by_zoom"]) and calibration["validation_cells"] >= 1
        assert v1.scale["zoom"] == calibration["zoom"]
        assert set(v1.postprocess["feature_kwargs"]) == {"whole_cell", "nuclear"}
        assert v1.metrics["evaluated_on"] == "test"  # calibrated on validation: not held out any more
