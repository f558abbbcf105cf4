"""crop → (submissions written directly) → fuse → stitch, through the job queue, re-run idempotent."""

from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import func, select

from backend.models import Annotator, Assignment, Crop, Image, Job, LabelRevision, Round, Stitch, utcnow
from backend.services import labels_io
from backend.services.demo import synthetic_npz
from backend.services.images import Upload, import_images
from backend.services.projects import create_project
from backend.services.rounds import start_round


def same_up_to_renumbering(a: np.ndarray, b: np.ndarray) -> bool:
    """True when the two label images partition the pixels identically (ids may differ)."""
    if a.shape != b.shape or not np.array_equal(a == 0, b == 0):
        return False
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


def _setup(rt, gold_fraction=0.0, k=2):
    with rt.db.session() as s:
        project = create_project(s, "stitchy", ["DAPI", "membrane", "CD3"], crop_size=64, overlap=8,
                                 annotators_per_crop=k, gold_fraction=gold_fraction)
        image = import_images(s, rt.store, project, [Upload("t.npz", synthetic_npz(150, 170, 3, seed=5))])[0]
        rnd = start_round(s, rt.queue, project)
        return project.id, image.id, rnd.id


def _submit(rt, crop: Crop, labels: np.ndarray, worker: str, project_id: int) -> int:
    """What the crowd API will do: an annotator, a submitted assignment and its revision."""
    with rt.db.session() as s:
        annotator = s.scalar(select(Annotator).where(Annotator.worker_id == worker))
        if annotator is None:
            annotator = Annotator(project_id=project_id, platform="generic", worker_id=worker)
            s.add(annotator)
            s.flush()
        a = Assignment(crop_id=crop.id, annotator_id=annotator.id, platform="generic",
                       external_worker_id=worker, lease_expires_at=utcnow() + timedelta(hours=1),
                       status="submitted", submitted_at=utcnow())
        s.add(a)
        s.flush()
        key = labels_io.revision_key(a.id, 1)
        labels_io.put_labels(rt.store, key, labels)
        s.add(LabelRevision(assignment_id=a.id, number=1, key=key, author=worker))
        return a.id


def _snapshot(rt):
    with rt.db.session() as s:
        counts = {m.__name__: s.scalar(select(func.count()).select_from(m)) for m in (Crop, Stitch, LabelRevision)}
    return counts, rt.store.list("")


@pytest.mark.postgres
def test_crop_fuse_stitch_end_to_end(pg_runtime):
    rt = pg_runtime
    project_id, image_id, round_id = _setup(rt)
    rt.queue.join()
    with rt.db.session() as s:
        failed = s.scalars(select(Job).where(Job.status != "finished")).all()
        assert not failed, [(j.kind, j.error) for j in failed]
        image = s.get(Image, image_id)
        assert image.status == "in_crowd"
        crops = s.scalars(select(Crop).where(Crop.image_id == image_id).order_by(Crop.index)).all()
        truth = labels_io.get_labels(rt.store, image.ground_truth_key)
    assert len(crops) == 9  # 150x170 with 64-px crops, overlap 8: 3 rows x 3 columns
    for c in crops:
        arrays = rt.store.get_arrays(c.key)
        assert arrays["channels"].dtype == np.uint8 and arrays["channels"].shape == (3, c.y1 - c.y0, c.x1 - c.x0)
        assert arrays["labels"].dtype == np.int32
    # Two annotators per crop submit the true labels of their crop, each renumbered their own way.
    rng = np.random.default_rng(0)
    for c in crops:
        window = truth[:, c.y0:c.y1, c.x0:c.x1]
        for worker in ("alice", "bob"):
            ids = np.unique(window)
            perm = np.zeros(int(truth.max()) + 1, dtype=np.int32)
            perm[ids[ids > 0]] = rng.permutation(len(ids[ids > 0])).astype(np.int32) + 1 + 70000
            _submit(rt, c, perm[window], worker, project_id)
    with rt.db.session() as s:
        for c in crops:
            rt.queue.enqueue(s, "worker.jobs.fuse_crop", crop_id=c.id)
    rt.queue.join()
    with rt.db.session() as s:
        stitch = s.scalar(select(Stitch).where(Stitch.image_id == image_id))
        assert stitch is not None, [(j.kind, j.status, j.error) for j in s.scalars(select(Job))]
        assert s.get(Image, image_id).status == "in_review"
        agreements = [a.agreement for a in s.scalars(select(Assignment))]
    stitched = labels_io.get_labels(rt.store, stitch.key)
    assert stitched.dtype == np.int32
    for f in range(2):
        assert same_up_to_renumbering(stitched[f], truth[f]), f"feature {f} not reproduced"
    assert stitch.n_conflict_pixels == 0
    assert all(a["mean_iou"] == pytest.approx(1.0) and a["missed"] == 0 and a["extra"] == 0 for a in agreements)

    # Re-running every step rewrites the same rows and keys.
    before = _snapshot(rt)
    before_arrays = {k: rt.store.get_arrays(k) for k in before[1] if k.startswith(("stitches/", "fused/"))}
    with rt.db.session() as s:
        rt.queue.enqueue(s, "worker.jobs.crop_image", image_id=image_id, round_id=round_id)
        for c in crops:
            rt.queue.enqueue(s, "worker.jobs.fuse_crop", crop_id=c.id)
        rt.queue.enqueue(s, "worker.jobs.stitch_image", image_id=image_id, round_id=round_id)
    rt.queue.join()
    assert _snapshot(rt) == before
    for key, arrays in before_arrays.items():
        again = rt.store.get_arrays(key)
        assert again.keys() == arrays.keys()
        assert all(np.array_equal(again[name], arrays[name]) for name in arrays), key
    with rt.db.session() as s:
        assert s.get(Stitch, stitch.id).n_cells == stitch.n_cells
        assert s.scalar(select(func.count()).select_from(Round)) == 1


@pytest.mark.postgres
def test_fuse_waits_for_k_submissions_and_ignores_blocked_workers(pg_runtime):
    rt = pg_runtime
    project_id, image_id, round_id = _setup(rt, k=2)
    rt.queue.join()
    with rt.db.session() as s:
        crop = s.scalars(select(Crop).where(Crop.image_id == image_id).order_by(Crop.index)).first()
        predicted = labels_io.get_labels(rt.store, crop.key)
    _submit(rt, crop, predicted, "carol", project_id)
    _submit(rt, crop, np.zeros_like(predicted), "spammer", project_id)
    with rt.db.session() as s:
        s.scalar(select(Annotator).where(Annotator.worker_id == "spammer")).blocked = True
    with rt.db.session() as s:
        rt.queue.enqueue(s, "worker.jobs.fuse_crop", crop_id=crop.id)
    rt.queue.join()
    with rt.db.session() as s:
        assert s.get(Crop, crop.id).status == "open"  # one usable submission of two
    _submit(rt, crop, predicted, "dave", project_id)
    with rt.db.session() as s:
        rt.queue.enqueue(s, "worker.jobs.fuse_crop", crop_id=crop.id)
    rt.queue.join()
    with rt.db.session() as s:
        c = s.get(Crop, crop.id)
        assert c.status == "fused"
        fused = labels_io.get_labels(rt.store, c.fused_key)
    for f in range(2):
        assert same_up_to_renumbering(fused[f], predicted[f])


@pytest.mark.postgres
def test_gold_crops_fuse_to_their_expert_labels(pg_runtime):
    rt = pg_runtime
    _, image_id, _ = _setup(rt, gold_fraction=0.3)
    rt.queue.join()
    with rt.db.session() as s:
        image = s.get(Image, image_id)
        truth = labels_io.get_labels(rt.store, image.ground_truth_key)
        crops = s.scalars(select(Crop).where(Crop.image_id == image_id)).all()
    gold = [c for c in crops if c.is_gold]
    assert len(gold) == 3  # round(0.3 * 9)
    for c in gold:
        assert c.status == "fused"
        assert np.array_equal(labels_io.get_labels(rt.store, c.gold_key), truth[:, c.y0:c.y1, c.x0:c.x1])
        assert "gold" not in rt.store.get_arrays(c.key)  # what the crowd fetches never holds the answer


def _stitch_jobs(rt, image_id: int) -> list[Job]:
    with rt.db.session() as s:
        return [j for j in s.scalars(select(Job).where(Job.kind == "stitch_image"))
                if j.args.get("image_id") == image_id]


def _submit_truth(rt, crops, truth, workers, project_id) -> None:
    for c in crops:
        for worker in workers:
            _submit(rt, c, truth[:, c.y0:c.y1, c.x0:c.x1], worker, project_id)


def _crops_and_truth(rt, image_id):
    with rt.db.session() as s:
        crops = s.scalars(select(Crop).where(Crop.image_id == image_id).order_by(Crop.index)).all()
        truth = labels_io.get_labels(rt.store, s.get(Image, image_id).ground_truth_key)
    return crops, truth


@pytest.mark.postgres
def test_an_image_is_stitched_once_when_its_last_crop_fuses(pg_runtime):
    """Issue #14 bug 7: every submission queues a fuse job; a backlog of them (or a fuse job
    re-run) must not queue a stitch per fused crop: one stitch job per image."""
    rt = pg_runtime
    project_id, image_id, _ = _setup(rt, k=2)
    rt.queue.join()
    crops, truth = _crops_and_truth(rt, image_id)
    _submit_truth(rt, crops, truth, ("alice", "bob"), project_id)
    with rt.db.session() as s:  # what the crowd API queues: one fuse job per submission
        for c in crops:
            for _ in range(2):
                rt.queue.enqueue(s, "worker.jobs.fuse_crop", project_id=project_id, crop_id=c.id)
    rt.queue.join()
    with rt.db.session() as s:
        rt.queue.enqueue(s, "worker.jobs.fuse_crop", project_id=project_id, crop_id=crops[0].id)
    rt.queue.join()
    jobs = _stitch_jobs(rt, image_id)
    assert len(jobs) == 1, [(j.id, j.status, j.message) for j in jobs]
    assert jobs[0].status == "finished" and jobs[0].result["stitched"]


@pytest.mark.postgres
def test_two_fuse_jobs_finishing_an_image_at_once_stitch_it_exactly_once(pg_runtime, monkeypatch):
    """Issue #14 bug 7, the PostgreSQL race: the fuse jobs of an image's last two crops run at the
    same time; neither may miss the other's fuse (no stitch) and they may not both stitch."""
    import threading

    from backend.queue import run_job
    from backend.services import stitching

    rt = pg_runtime
    project_id, image_id, _ = _setup(rt, k=1)
    rt.queue.join()
    crops, truth = _crops_and_truth(rt, image_id)
    _submit_truth(rt, crops, truth, ("alice",), project_id)
    *first, last_a, last_b = crops
    with rt.db.session() as s:
        for c in first:
            rt.queue.enqueue(s, "worker.jobs.fuse_crop", project_id=project_id, crop_id=c.id)
    rt.queue.join()
    assert _stitch_jobs(rt, image_id) == []

    both_fused = threading.Barrier(2)
    fuse = stitching.fuse_crop

    def fuse_then_wait(session, store, crop_id):  # both jobs have fused before either goes on
        out = fuse(session, store, crop_id)
        both_fused.wait(timeout=20)
        return out

    monkeypatch.setattr(stitching, "fuse_crop", fuse_then_wait)
    with rt.db.session() as s:
        rows = [Job(func="worker.jobs.fuse_crop", kind="fuse_crop", queue_name="default", project_id=project_id,
                    args={"crop_id": c.id}, status="queued") for c in (last_a, last_b)]
        s.add_all(rows)
        s.flush()
        job_ids = [r.id for r in rows]
    errors = []

    def run(job_id):
        try:
            run_job(job_id, rt)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(j,)) for j in job_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    rt.queue.join()
    jobs = _stitch_jobs(rt, image_id)
    assert len(jobs) == 1, [(j.id, j.status) for j in jobs]
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Stitch).where(Stitch.image_id == image_id)) == 1
        assert s.get(Image, image_id).status == "in_review"


def _fuse_everything(rt, crops, labels_of, project_id) -> None:
    """One submission per (non-gold) crop with ``labels_of(crop)``, fused and stitched by the jobs."""
    for c in crops:
        if not c.is_gold:
            _submit(rt, c, labels_of(c), "alice", project_id)
    with rt.db.session() as s:
        for c in crops:
            if not c.is_gold:
                rt.queue.enqueue(s, "worker.jobs.fuse_crop", project_id=project_id, crop_id=c.id)
    rt.queue.join()


@pytest.mark.postgres
def test_gold_crops_do_not_count_as_crowd_changes_or_seam_conflicts(pg_runtime):
    """Issue #14 bug 5: a gold crop's expert labels go into the stitch, but the review figures
    (cells the crowd changed, seam-conflict pixels) and overlays count the crowd's edits only."""
    from backend.services import review

    rt = pg_runtime
    project_id, image_id, _ = _setup(rt, gold_fraction=0.3, k=1)
    rt.queue.join()
    crops, truth = _crops_and_truth(rt, image_id)
    gold = [c for c in crops if c.is_gold]
    assert gold
    _fuse_everything(rt, crops, lambda c: labels_io.get_labels(rt.store, c.key), project_id)  # nobody edits
    with rt.db.session() as s:
        stitch = s.scalar(select(Stitch).where(Stitch.image_id == image_id))
        assert stitch is not None
        stitched = labels_io.get_labels(rt.store, stitch.key)
        assert (stitch.n_changed_cells, stitch.n_conflict_pixels) == (0, 0)
        changed = review.changed_mask(rt.store, stitch, 0, image_id, stitched)
    assert not changed.any()
    assert not rt.store.get_arrays(stitch.conflicts_key)["conflicts"].any()
    g = gold[0]  # the gold crop's expert labels are what the stitch holds in its middle
    middle = (slice(g.y0 + 8, g.y1 - 8), slice(g.x0 + 8, g.x1 - 8))
    for f in range(2):
        assert same_up_to_renumbering(stitched[f][middle], truth[f][middle])


@pytest.mark.postgres
def test_a_crowd_edit_next_to_gold_still_counts(pg_runtime):
    rt = pg_runtime
    project_id, image_id, _ = _setup(rt, gold_fraction=0.3, k=1)
    rt.queue.join()
    crops, _ = _crops_and_truth(rt, image_id)
    edited = next(c for c in crops if not c.is_gold)

    def labels_of(c):
        labels = labels_io.get_labels(rt.store, c.key).copy()
        if c.id == edited.id:  # the annotator deletes every whole-cell fully inside the crop's middle
            inner = labels[0][12:-12, 12:-12]
            border = set(np.unique(labels[0])) - set(np.unique(inner)) | set(np.unique(inner[[0, -1]])) \
                | set(np.unique(inner[:, [0, -1]]))
            gone = [i for i in np.unique(inner) if i and i not in border]
            assert gone
            labels[0][np.isin(labels[0], gone)] = 0
            labels_of.gone = len(gone)
        return labels

    _fuse_everything(rt, crops, labels_of, project_id)
    with rt.db.session() as s:
        stitch = s.scalar(select(Stitch).where(Stitch.image_id == image_id))
    assert stitch.n_changed_cells == labels_of.gone
