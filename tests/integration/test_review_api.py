"""Review API (backend/api/review.py): concurrent saves, strict integers (SQLite + PostgreSQL)."""

import io
import threading
import time
import zlib
from collections import Counter

import numpy as np
import pytest
from sqlalchemy import select

from backend.models import Crop, Image, LabelRevision, Review, Round, Stitch
from backend.services import labels_io, review
from backend.services.images import Upload, import_images
from backend.services.projects import create_project
from backend.services.stitching import crop_image
from tests.conftest import REVIEWER_PASSWORD, basic_auth
from tests.integration.test_stitch_jobs import same_up_to_renumbering

H, W = 100, 100


def disks() -> np.ndarray:
    """(2,H,W) int32: three round cells, whole-cell and nuclear."""
    yy, xx = np.mgrid[:H, :W]
    labels = np.zeros((2, H, W), dtype=np.int32)
    for cell, (cy, cx) in enumerate([(20, 20), (50, 70), (75, 30)], start=1):
        labels[0][(yy - cy) ** 2 + (xx - cx) ** 2 <= 100] = cell
        labels[1][(yy - cy) ** 2 + (xx - cx) ** 2 <= 16] = cell
    return labels


def make_stitch(rt) -> int:
    """An image of a 2-crop round whose stitch waits for review; returns the stitch id."""
    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    np.savez(buf, X=rng.integers(0, 1000, size=(H, W, 2), dtype=np.uint16))
    with rt.db.session() as s:
        project = create_project(s, "review", ["DAPI", "membrane"], crop_size=64, overlap=8,
                                 annotators_per_crop=1, gold_fraction=0.0)
        image = import_images(s, rt.store, project, [Upload("img.npz", buf.getvalue())])[0]
        rnd = Round(project_id=project.id, number=0)
        s.add(rnd)
        s.flush()
        labels_io.put_labels(rt.store, labels_io.prediction_key(image.id, 0), disks())
        crop_image(s, rt.store, image.id, rnd.id)
        stitch_key, conflicts_key = labels_io.stitch_keys(image.id, 0)
        labels_io.put_labels(rt.store, stitch_key, disks())
        rt.store.put_arrays(conflicts_key, conflicts=np.zeros((2, H, W), dtype=bool))
        stitch = Stitch(image_id=image.id, round_id=rnd.id, key=stitch_key, conflicts_key=conflicts_key,
                        status="in_review", n_cells=3)
        s.add(stitch)
        image.status = "in_review"
        s.flush()
        return stitch.id


def put_review(client, stitch_id: int, labels: np.ndarray, base) -> "object":
    body = zlib.compress(np.ascontiguousarray(labels, dtype="<i4").tobytes())
    return client.put(f"/api/review/stitches/{stitch_id}/labels", data=body,
                      headers={"X-Base-Revision": str(base), "X-Dtype": "int32", "X-Shape": f"2,{H},{W}"})


def get_review_labels(client, stitch_id: int) -> tuple[np.ndarray, int]:
    r = client.get(f"/api/review/stitches/{stitch_id}/labels")
    assert r.status_code == 200, r.data
    shape = tuple(int(n) for n in r.headers["X-Shape"].split(","))
    return np.frombuffer(zlib.decompress(r.data), dtype="<i4").reshape(shape), int(r.headers["X-Revision"])


def marked(i: int) -> np.ndarray:
    """Labels that say who saved them: cell ``100 + i`` in the top-left corner."""
    labels = disks()
    labels[0, :4, :4] = 100 + i
    return labels


@pytest.mark.parametrize("then", ["approve", "reject"])
def test_twenty_concurrent_saves_on_one_base_one_wins_and_the_image_stays_usable(app, runtime, users, then):
    stitch_id = make_stitch(runtime)
    n = 20
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def save(i: int) -> None:
        client = app.test_client()  # one client per thread, as separate browsers
        client.environ_base["HTTP_AUTHORIZATION"] = basic_auth("reviewer", REVIEWER_PASSWORD)
        client.get("/api/review/queue")  # warm up the login before the race
        barrier.wait()
        try:
            r = put_review(client, stitch_id, marked(i), 0)
            results[i] = (r.status_code, r.get_json(silent=True))
        except Exception as exc:  # a crash in the app shows in the counts
            results[i] = (type(exc).__name__, None)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    counts = Counter(code for code, _ in results)
    assert counts == {201: 1, 409: n - 1}, results
    winner = next(i for i, (code, _) in enumerate(results) if code == 201)
    assert results[winner][1]["revision"] == 1

    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = basic_auth("reviewer", REVIEWER_PASSWORD)
    labels, revision = get_review_labels(client, stitch_id)
    assert revision == 1
    assert np.array_equal(labels, marked(winner))
    assert client.get(f"/api/review/stitches/{stitch_id}/overlays/changed").status_code == 200
    with runtime.db.session() as s:
        rows = s.scalars(select(LabelRevision).where(LabelRevision.stitch_id == stitch_id)).all()
        assert [r.number for r in rows] == [1]
        stored = rows[0].key
    # only the winner's blob is left under the stitch's reviews
    assert runtime.store.list(f"reviews/{stitch_id}/") == [stored]
    # the next save builds on the winner's revision
    r = put_review(client, stitch_id, marked(99), 1)
    assert r.status_code == 201 and r.json["revision"] == 2
    if then == "approve":
        r = client.post(f"/api/review/stitches/{stitch_id}/approve", json={"revision": 2})
        assert r.status_code == 200, r.data
        with runtime.db.session() as s:
            image = s.get(Image, s.get(Stitch, stitch_id).image_id)
            assert image.status == "approved"
            assert np.array_equal(labels_io.get_labels(runtime.store, image.labels_key), marked(99))
    else:
        crop_ids = [c["id"] for c in client.get(f"/api/review/stitches/{stitch_id}").json["crops"]]
        r = client.post(f"/api/review/stitches/{stitch_id}/reject",
                        json={"reason": "cell 3 is two cells", "crop_ids": crop_ids[:1]})
        assert r.status_code == 200, r.data


def race(app, n: int, request_of) -> list:
    """Send ``request_of(client, i)`` from ``n`` threads at once (one client each); the status
    codes (or the name of an exception the app raised) in thread order."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i: int) -> None:
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = basic_auth("reviewer", REVIEWER_PASSWORD)
        client.get("/api/review/queue")  # the login, before the race
        barrier.wait()
        try:
            results[i] = request_of(client, i).status_code
        except Exception as exc:
            results[i] = type(exc).__name__

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_concurrent_approvals_and_rejections_one_decision_wins(app, runtime, users):
    stitch_id = make_stitch(runtime)
    with runtime.db.session() as s:
        stitch = s.get(Stitch, stitch_id)
        crop_id = s.scalar(select(Crop.id).where(Crop.image_id == stitch.image_id).order_by(Crop.index))

    def decide(client, i):
        if i % 2:
            return client.post(f"/api/review/stitches/{stitch_id}/approve", json={"revision": 0})
        return client.post(f"/api/review/stitches/{stitch_id}/reject", json={"reason": "split cell 3",
                                                                            "crop_ids": [crop_id]})

    results = race(app, 12, decide)
    assert Counter(results) == {200: 1, 409: 11}, results
    winner = results.index(200)
    with runtime.db.session() as s:
        stitch = s.get(Stitch, stitch_id)
        assert stitch.status == ("approved" if winner % 2 else "rejected")
        assert len(s.scalars(select(Review).where(Review.stitch_id == stitch_id)).all()) == 1
        if not winner % 2:
            assert s.get(Crop, crop_id).generation == 1


def test_a_save_racing_an_approval_is_409_or_lands_before_it(app, runtime, users):
    stitch_id = make_stitch(runtime)

    def act(client, i):
        if i % 2:
            return client.post(f"/api/review/stitches/{stitch_id}/approve", json={"revision": 0})
        return put_review(client, stitch_id, marked(i), 0)

    results = race(app, 10, act)
    assert sorted(results) == [200] + [409] * 9 or sorted(results) == [201] + [409] * 9, results
    with runtime.db.session() as s:
        stitch = s.get(Stitch, stitch_id)
        image = s.get(Image, stitch.image_id)
        if 200 in results:  # the approval won: it approved revision 0 and no save landed
            assert (stitch.status, stitch.revision) == ("approved", 0)
            assert np.array_equal(labels_io.get_labels(runtime.store, image.labels_key), disks())
        else:
            assert (stitch.status, stitch.revision) == ("in_review", 1)


def test_the_sweep_removes_only_old_review_blobs_no_revision_names(app, runtime, users):
    stitch_id = make_stitch(runtime)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = basic_auth("reviewer", REVIEWER_PASSWORD)
    assert put_review(client, stitch_id, marked(1), 0).status_code == 201
    with runtime.db.session() as s:
        saved = s.scalar(select(LabelRevision.key).where(LabelRevision.stitch_id == stitch_id))
    now = time.time()
    # what a save killed between writing its labels and committing its row leaves behind
    orphan_old = labels_io.review_revision_key(stitch_id, 2, now - 7200, "dead01")
    orphan_young = labels_io.review_revision_key(stitch_id, 2, now - 60, "busy02")
    legacy = f"reviews/{stitch_id}/7.npz"  # a key from before keys were unique: no write time
    for key in (orphan_old, orphan_young, legacy):
        labels_io.put_labels(runtime.store, key, marked(2))
    with runtime.db.session() as s:
        assert review.sweep_orphan_review_blobs(s, runtime.store, now=now) == 1
    assert runtime.store.list(f"reviews/{stitch_id}/") == sorted([saved, orphan_young, legacy])
    with runtime.db.session() as s:  # hours later the saved revision is still kept
        assert review.sweep_orphan_review_blobs(s, runtime.store, now=now + 3 * 3600) == 1
    assert sorted(runtime.store.list(f"reviews/{stitch_id}/")) == sorted([saved, legacy])
    labels, revision = get_review_labels(client, stitch_id)
    assert revision == 1 and np.array_equal(labels, marked(1))


def test_review_keys_are_unique_per_save_and_carry_their_write_time():
    a = labels_io.review_revision_key(4, 2, 1_700_000_000.7, "ab12")
    b = labels_io.review_revision_key(4, 2, 1_700_000_000.7, "cd34")
    assert a != b and a.startswith("reviews/4/2.")
    assert labels_io.review_blob_written_at(a) == 1_700_000_000
    assert labels_io.review_blob_written_at("reviews/4/2.npz") is None
    assert labels_io.review_blob_written_at("stitches/4/r0/labels.npz") is None
    with pytest.raises(ValueError):
        labels_io.review_revision_key(4, 2, 0, "../x")


@pytest.mark.parametrize("value", ["\u00b2", "\u0661", " 0", "+0", "-1", "0x0", "99999999999999999999", ""])
def test_a_malformed_base_revision_is_400_naming_the_header(reviewer_client, runtime, value):
    stitch_id = make_stitch(runtime)
    r = put_review(reviewer_client, stitch_id, marked(1), value)
    assert r.status_code == 400, r.data
    assert r.json["field"] == "X-Base-Revision" and "X-Base-Revision" in r.json["error"]
    assert get_review_labels(reviewer_client, stitch_id)[1] == 0
    assert put_review(reviewer_client, stitch_id, marked(1), "0").status_code == 201


def test_malformed_integers_in_review_requests_are_400_naming_the_field(reviewer_client, runtime):
    stitch_id = make_stitch(runtime)
    url = f"/api/review/stitches/{stitch_id}"
    crop_id = reviewer_client.get(url).json["crops"][0]["id"]
    for body in ({"revision": 1e20}, {"revision": 10**20}, {"revision": "0"}, {"revision": True}, {"revision": -1}):
        r = reviewer_client.post(f"{url}/approve", json=body)
        assert r.status_code == 400 and r.json["field"] == "revision", (body, r.data)
    for body in ({"reason": "x", "crop_ids": [True]}, {"reason": "x", "crop_ids": [1e20]},
                 {"reason": 5, "crop_ids": [crop_id]}):
        r = reviewer_client.post(f"{url}/reject", json=body)
        assert r.status_code == 400 and r.json["field"] in ("crop_ids", "reason"), (body, r.data)
    assert reviewer_client.post(f"{url}/approve", json=[1]).status_code == 400
    r = reviewer_client.get("/api/review/queue?project_id=\u00b2")
    assert r.status_code == 400 and r.json["field"] == "project_id"
    assert reviewer_client.get("/api/review/queue?project_id=1").status_code == 200
    shape = reviewer_client.put(f"{url}/labels", data=b"", headers={"X-Base-Revision": "0", "X-Shape": "2,\u0661,1"})
    assert shape.status_code == 400 and shape.json["field"] == "X-Shape"
    r = reviewer_client.post(f"{url}/approve", json={"revision": 0})
    assert r.status_code == 200, r.data


def fuse_all(rt, stitch_id: int, labels: np.ndarray) -> None:
    """Every crop of the stitch's image fused (its current generation) to its window of ``labels``."""
    with rt.db.session() as s:
        image_id = s.get(Stitch, stitch_id).image_id
        for crop in s.scalars(select(Crop).where(Crop.image_id == image_id)):
            crop.fused_key = labels_io.fused_key(crop.id, crop.generation)
            labels_io.put_labels(rt.store, crop.fused_key, labels[:, crop.y0:crop.y1, crop.x0:crop.x1])
            crop.status = "fused"


def test_a_rejected_image_comes_back_as_a_new_revision_and_a_repeated_stitch_keeps_it_approved(
        reviewer_client, runtime):
    from backend.services.stitching import stitch_image

    stitch_id = make_stitch(runtime)
    url = f"/api/review/stitches/{stitch_id}"
    assert put_review(reviewer_client, stitch_id, marked(1), 0).status_code == 201
    crop_id = reviewer_client.get(url).json["crops"][0]["id"]
    r = reviewer_client.post(f"{url}/reject", json={"reason": "cell 2 is two cells", "crop_ids": [crop_id]})
    assert r.status_code == 200
    first_stitch = labels_io.stitch_keys(reviewer_client.get(url).json["image_id"], 0)[0]
    fuse_all(runtime, stitch_id, marked(2))
    with runtime.db.session() as s:
        image_id, round_id = s.get(Stitch, stitch_id).image_id, s.get(Stitch, stitch_id).round_id
        assert stitch_image(s, runtime.store, image_id, round_id).revision == 2
    labels, revision = get_review_labels(reviewer_client, stitch_id)
    assert revision == 2 and all(same_up_to_renumbering(labels[f], marked(2)[f]) for f in range(2))
    with runtime.db.session() as s:  # the earlier revisions keep their labels
        keys = dict(s.execute(select(LabelRevision.number, LabelRevision.key)
                              .where(LabelRevision.stitch_id == stitch_id)).all())
    assert np.array_equal(labels_io.get_labels(runtime.store, keys[1]), marked(1))
    assert np.array_equal(labels_io.get_labels(runtime.store, first_stitch), disks())
    assert reviewer_client.post(f"{url}/approve", json={"revision": 2}).status_code == 200
    with runtime.db.session() as s:  # the same job once more (a retry or a duplicate)
        again = stitch_image(s, runtime.store, image_id, round_id)
        assert (again.status, again.revision) == ("approved", 2)
    with runtime.db.session() as s:
        image = s.get(Image, image_id)
        assert image.status == "approved" and image.labels_key.startswith(f"images/{image_id}/approved_")


def test_the_review_payload_names_only_the_projects_features(reviewer_client, runtime):
    """Issue #14 bug 1: the review editor of a nuclear-only project offers the nuclear layer alone."""
    stitch_id = make_stitch(runtime)
    assert reviewer_client.get(f"/api/review/stitches/{stitch_id}").json["features"] == ["whole_cell", "nuclear"]
    with runtime.db.session() as s:
        s.get(Image, s.get(Stitch, stitch_id).image_id).project.features = ["nuclear"]
    assert reviewer_client.get(f"/api/review/stitches/{stitch_id}").json["features"] == ["nuclear"]
