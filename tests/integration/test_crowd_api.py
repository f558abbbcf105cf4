"""Crowd task API: leasing, revisions, submit, platforms, and token security (SQLite + PostgreSQL)."""

import io
import os
import time
import zlib
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import select

from backend.models import Assignment, Crop, Job, Round, utcnow
from backend.services import labels_io, tasks
from backend.services.images import Upload, import_images
from backend.services.projects import create_project
from backend.services.stitching import crop_image


def two_disks(h=100, w=100):
    """Whole-cell labels: two touching disks sharing id 7 (a merge to split), a third cell id 70001."""
    yy, xx = np.mgrid[:h, :w]
    labels = np.zeros((2, h, w), dtype=np.int32)
    labels[0][(yy - 20) ** 2 + (xx - 14) ** 2 <= 81] = 7
    labels[0][(yy - 20) ** 2 + (xx - 30) ** 2 <= 81] = 7
    labels[0][(yy - 70) ** 2 + (xx - 70) ** 2 <= 100] = 70001
    labels[1][(yy - 70) ** 2 + (xx - 70) ** 2 <= 16] = 70001
    return labels


def make_project(rt, *, k=2, gold_fraction=0.0, platform="generic", with_truth=False, prediction=None, **settings):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 1000, size=(100, 100, 2), dtype=np.uint16)
    buf = io.BytesIO()
    arrays = {"X": pixels}
    if with_truth:
        arrays["y"] = np.moveaxis(two_disks(), 0, -1)
    np.savez(buf, **arrays)
    with rt.db.session() as s:
        project = create_project(s, f"crowd-{platform}", ["DAPI", "membrane"], crop_size=64, overlap=8,
                                 annotators_per_crop=k, gold_fraction=gold_fraction, platform=platform,
                                 frame_ancestors=["https://host.example"], **settings)
        image = import_images(s, rt.store, project, [Upload("img.npz", buf.getvalue())])[0]
        rnd = Round(project_id=project.id, number=0)
        s.add(rnd)
        s.flush()
        labels_io.put_labels(rt.store, labels_io.prediction_key(image.id, 0),
                             two_disks() if prediction is None else prediction)
        crops = crop_image(s, rt.store, image.id, rnd.id)
        return project.id, [c.id for c in crops]


def lease(client, project_id, resume=None, **params):
    """Lease as the page does: the task link's parameters, and the resume secret of this tab's last
    lease (None: a new browser)."""
    return client.post(f"/api/crowd/{project_id}/lease", json={"params": params, "resume": resume})


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def get_labels(client, crop_id, token):
    r = client.get(f"/api/crowd/crops/{crop_id}/labels", headers=auth(token))
    assert r.status_code == 200, r.data
    shape = tuple(int(n) for n in r.headers["X-Shape"].split(","))
    return np.frombuffer(zlib.decompress(r.data), dtype="<i4").reshape(shape), int(r.headers["X-Revision"])


def put_labels(client, crop_id, token, labels, base, **headers):
    body = zlib.compress(np.ascontiguousarray(labels, dtype="<i4").tobytes())
    return client.put(f"/api/crowd/crops/{crop_id}/labels", data=body,
                      headers={**auth(token), "X-Base-Revision": str(base), "X-Dtype": "int32",
                               "X-Shape": ",".join(map(str, labels.shape)), **headers})


def test_lease_k_per_crop_no_repeats_and_reload(client, runtime):
    project_id, crop_ids = make_project(runtime, k=2)
    a = lease(client, project_id, worker="ann-a").json
    b = lease(client, project_id, worker="ann-b").json
    c = lease(client, project_id, worker="ann-c").json
    assert a["task"]["crop_id"] == b["task"]["crop_id"] == crop_ids[0]  # fill a crop before the next
    assert c["task"]["crop_id"] == crop_ids[1]
    # Reloading the task link returns the same lease with a new token; the old token is retired.
    a2 = lease(client, project_id, worker="ann-a", resume=a["resume"]).json
    assert a2["task"]["crop_id"] == crop_ids[0] and a2["token"] != a["token"]
    assert client.get(f"/api/crowd/crops/{crop_ids[0]}", headers=auth(a["token"])).status_code == 401
    assert client.get(f"/api/crowd/crops/{crop_ids[0]}", headers=auth(a2["token"])).status_code == 200
    r = client.post(f"/api/crowd/crops/{crop_ids[0]}/submit", json={"active_seconds": 12.5, "edit_count": 3},
                    headers=auth(a2["token"]))
    assert r.status_code == 200, r.json
    a3 = lease(client, project_id, worker="ann-a", resume=a2["resume"]).json
    assert a3["task"]["crop_id"] not in (crop_ids[0],)


def test_expired_leases_return_the_crop_to_the_pool(runtime):
    project_id, crop_ids = make_project(runtime, k=1)
    ttl = 60
    with runtime.db.session() as s:
        from backend.models import Project

        project = s.get(Project, project_id)
        first = tasks.lease_task(s, project, {"worker": "slow"}, secret="k", ttl_s=ttl)
        assert first.crop.id == crop_ids[0]
        other = tasks.lease_task(s, project, {"worker": "fast"}, secret="k", ttl_s=ttl)
        assert other.crop.id == crop_ids[1]  # the first crop is taken while the lease lives
        later = utcnow() + timedelta(seconds=ttl + 1)
        again = tasks.lease_task(s, project, {"worker": "late"}, secret="k", ttl_s=ttl, now=later)
        assert again.crop.id == crop_ids[0]
        assert s.get(Assignment, first.assignment.id).status == "leased"  # leasing only reads the expiry
        assert tasks.expire_leases(s, later) == 2  # the scheduler's bookkeeping
        assert s.get(Assignment, first.assignment.id).status == "expired"
        assert s.get(Assignment, again.assignment.id).status == "leased"
        # the slow worker's lease has expired: it may take that crop again
        back = tasks.lease_task(s, project, {"worker": "slow"}, secret="k", ttl_s=ttl, now=later)
        assert back.crop.id in crop_ids and back.assignment.id != first.assignment.id


def test_a_lease_skips_a_crop_another_lease_is_taking(pg_runtime):
    from sqlalchemy import text

    from backend.errors import BusyError
    from backend.models import Project

    project_id, crop_ids = make_project(pg_runtime, k=2)
    with pg_runtime.db.session() as holder:  # a lease in flight holds the first crop's row
        holder.execute(select(Crop).where(Crop.id == crop_ids[0]).with_for_update()).all()
        with pg_runtime.db.session() as s:
            s.execute(text("SET LOCAL lock_timeout = '3s'"))  # waiting would fail, not hang
            first = tasks.lease_task(s, s.get(Project, project_id), {"worker": "a"}, secret="k", ttl_s=60)
            assert first.crop.id == crop_ids[1]
    with pg_runtime.db.session() as s:  # the lock is gone: the crop nearest completion comes first again
        second = tasks.lease_task(s, s.get(Project, project_id), {"worker": "b"}, secret="k", ttl_s=60)
        assert second.crop.id == crop_ids[1]
    with pg_runtime.db.session() as holder:  # every crop is being leased: try again, not "no task"
        holder.execute(select(Crop).where(Crop.id.in_(crop_ids)).with_for_update()).all()
        with pg_runtime.db.session() as s:
            s.execute(text("SET LOCAL lock_timeout = '3s'"))
            with pytest.raises(BusyError, match="try again") as busy:
                tasks.lease_task(s, s.get(Project, project_id), {"worker": "c"}, secret="k", ttl_s=60)
            assert busy.value.status == 503


def test_concurrent_leases_give_no_crop_more_than_k(pg_runtime):
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor

    from backend.models import Project

    project_id, crop_ids = make_project(pg_runtime, k=2)

    def take(i):
        with pg_runtime.db.session() as s:
            try:
                return tasks.lease_task(s, s.get(Project, project_id), {"worker": f"w{i}"}, secret="k", ttl_s=60).crop.id
            except tasks.NoTaskError:
                return None

    with ThreadPoolExecutor(12) as pool:
        got = list(pool.map(take, range(3 * len(crop_ids))))
    assert Counter(c for c in got if c is not None) == {c: 2 for c in crop_ids}
    assert got.count(None) == len(crop_ids)


def test_after_a_database_restart_a_save_is_503_then_succeeds_and_reads_just_work(pg_runtime, drop_pg_connections):
    from backend.app import build_app

    client = build_app(runtime=pg_runtime).test_client()
    project_id, _ = make_project(pg_runtime)
    t = lease(client, project_id, worker="restart").json
    crop_id, token = t["task"]["crop_id"], t["token"]
    labels, rev = get_labels(client, crop_id, token)
    assert drop_pg_connections(pg_runtime.settings.database_url) >= 2
    assert client.get(f"/api/crowd/crops/{crop_id}/channels", headers=auth(token)).status_code == 200
    first = put_labels(client, crop_id, token, labels, rev)
    assert first.status_code == 503 and first.headers["Retry-After"] == "1" and "retry" in first.json["error"]
    assert put_labels(client, crop_id, token, labels, rev).status_code == 201  # nothing half-saved


def test_the_scheduler_pass_marks_expired_leases_only(runtime):
    from backend.models import Project
    from worker.scheduler import run_once

    project_id, crop_ids = make_project(runtime, k=1)
    with runtime.db.session() as s:
        project = s.get(Project, project_id)
        old = tasks.lease_task(s, project, {"worker": "gone"}, secret="k", ttl_s=60,
                               now=utcnow() - timedelta(hours=1)).assignment.id
        live = tasks.lease_task(s, project, {"worker": "here"}, secret="k", ttl_s=600).assignment.id
    leftover = runtime.store.root / "crops" / ".~9.npz.x.tmp"  # a write killed mid-way, long ago
    leftover.write_bytes(b"half")
    os.utime(leftover, (time.time() - 86400, time.time() - 86400))
    assert run_once(runtime) == []  # nothing approved: no retraining either
    with runtime.db.session() as s:
        assert s.get(Assignment, old).status == "expired"
        assert s.get(Assignment, live).status == "leased"
    assert not leftover.exists() and runtime.store.exists(labels_io.crop_key(crop_ids[0]))


def test_new_workers_qualify_on_gold_first_and_gold_is_scored(client, runtime):
    project_id, crop_ids = make_project(runtime, k=1, gold_fraction=0.5, with_truth=True)
    with runtime.db.session() as s:
        gold_ids = set(s.scalars(select(Crop.id).where(Crop.is_gold.is_(True))))
    assert len(gold_ids) == 2 == tasks.QUALIFYING_GOLD  # round(0.5 * 4)

    def work(worker):
        r = lease(client, project_id, worker=worker)
        assert r.status_code == 200, r.json
        crop_id, token = r.json["task"]["crop_id"], r.json["token"]
        if crop_id in gold_ids:
            truth, base = get_labels(client, crop_id, token)  # the prediction equals the truth here
            assert put_labels(client, crop_id, token, truth, base).status_code == 201
        assert client.post(f"/api/crowd/crops/{crop_id}/submit", json={"active_seconds": 1},
                           headers=auth(token)).status_code == 200
        return crop_id

    for n in range(6):  # every new worker's first tasks are the gold crops
        assert {work(f"w{n}"), work(f"w{n}")} == gold_ids
    assert work("w0") not in gold_ids  # qualified, and no gold left for them: real work
    with runtime.db.session() as s:
        scored = s.scalars(select(Assignment).where(Assignment.crop_id.in_(gold_ids))).all()
        assert len(scored) == 12 and all(a.gold_score == pytest.approx(1.0) for a in scored)
        assert all(a.gold_gain is None for a in scored)  # the start was already right: says nothing
        fuse_jobs = s.scalars(select(Job).where(Job.kind == "fuse_crop")).all()
        assert all(j.args["crop_id"] not in gold_ids for j in fuse_jobs)  # gold never feeds the data


def test_a_worker_who_fixes_nothing_on_gold_is_blocked_before_any_real_work(client, runtime):
    empty = np.zeros_like(two_disks())  # the prediction misses every cell: there is work to do
    project_id, crop_ids = make_project(runtime, k=1, gold_fraction=0.5, with_truth=True, prediction=empty)
    with runtime.db.session() as s:
        gold_ids = set(s.scalars(select(Crop.id).where(Crop.is_gold.is_(True))))
    truth = two_disks()

    def gold_task(worker, fix):
        r = lease(client, project_id, worker=worker)
        assert r.status_code == 200, r.json
        crop_id, token = r.json["task"]["crop_id"], r.json["token"]
        assert crop_id in gold_ids
        labels, base = get_labels(client, crop_id, token)
        if fix:  # the expert labels of this crop: its window of the image's truth
            with runtime.db.session() as s:
                crop = s.get(Crop, crop_id)
                window = truth[:, crop.y0:crop.y0 + labels.shape[1], crop.x0:crop.x0 + labels.shape[2]]
            assert put_labels(client, crop_id, token, window, base).status_code == 201
        assert client.post(f"/api/crowd/crops/{crop_id}/submit", json={"active_seconds": 1},
                           headers=auth(token)).status_code == 200

    for _ in range(2):
        gold_task("spammer", fix=False)
        gold_task("honest", fix=True)
    r = lease(client, project_id, worker="spammer")
    assert r.status_code == 403 and "no longer accepted" in r.json["error"]
    r = lease(client, project_id, worker="honest")
    assert r.status_code == 200 and r.json["task"]["crop_id"] not in gold_ids
    with runtime.db.session() as s:
        rows = s.execute(select(Assignment.external_worker_id, Assignment.gold_gain)
                         .where(Assignment.crop_id.in_(gold_ids))).all()
    gains = {}
    for worker, gain in rows:
        gains.setdefault(worker, []).append(gain)
    assert gains["spammer"] == [pytest.approx(0.0)] * 2
    assert gains["honest"] == [pytest.approx(1.0)] * 2


def test_revisions_conflicts_and_bad_bodies(client, runtime):
    project_id, crop_ids = make_project(runtime)
    t = lease(client, project_id, worker="rev").json
    crop_id, token = t["task"]["crop_id"], t["token"]
    labels, rev = get_labels(client, crop_id, token)
    assert rev == 0 and labels.shape == (2, 64, 64) and labels.dtype == np.int32
    edited = labels.copy()
    edited[0, 50:60, 50:60] = 123456
    r = put_labels(client, crop_id, token, edited, 0)
    assert r.status_code == 201 and r.json == {"revision": 1, "changed_pixels": 100}
    stored = labels_io.get_labels(runtime.store, labels_io.revision_key(t["task"]["assignment_id"], 1))
    assert stored.dtype == np.int32 and np.array_equal(stored, edited)  # the store, not only the cache
    stale = put_labels(client, crop_id, token, labels, 0)
    assert stale.status_code == 409 and "stale" in stale.json["error"]
    again, rev = get_labels(client, crop_id, token)
    assert rev == 1 and np.array_equal(again, edited)  # the stale save changed nothing
    wrong_shape = put_labels(client, crop_id, token, edited[:, :32], 1)
    assert wrong_shape.status_code == 400 and "shape" in wrong_shape.json["error"]
    body = zlib.compress(edited.astype(np.uint8).tobytes())
    wrong_dtype = client.put(f"/api/crowd/crops/{crop_id}/labels", data=body,
                             headers={**auth(token), "X-Base-Revision": "1", "X-Dtype": "uint8"})
    assert wrong_dtype.status_code == 400 and "int32" in wrong_dtype.json["error"]
    garbage = client.put(f"/api/crowd/crops/{crop_id}/labels", data=b"\x00not zlib",
                         headers={**auth(token), "X-Base-Revision": "1"})
    assert garbage.status_code == 400 and "deflate" in garbage.json["error"]
    short = client.put(f"/api/crowd/crops/{crop_id}/labels", data=zlib.compress(b"\x00" * 100),
                       headers={**auth(token), "X-Base-Revision": "1"})
    assert short.status_code == 400
    negative = edited.copy()
    negative[0, 0, 0] = -5
    assert put_labels(client, crop_id, token, negative, 1).status_code == 400
    no_base = client.put(f"/api/crowd/crops/{crop_id}/labels", data=zlib.compress(edited.tobytes()), headers=auth(token))
    assert no_base.status_code == 400 and "X-Base-Revision" in no_base.json["error"]
    _, rev = get_labels(client, crop_id, token)
    assert rev == 1


@pytest.mark.parametrize("header,value", [
    ("X-Base-Revision", "\u00b2"),  # str.isdigit() says yes, int() says no
    ("X-Base-Revision", "\u0661"),  # ARABIC-INDIC DIGIT ONE: int() reads 1
    ("X-Base-Revision", " 0"), ("X-Base-Revision", "+0"), ("X-Base-Revision", "-1"),
    ("X-Base-Revision", "99999999999999999999"),
    ("X-Edit-Count", "100000000000000000000"),  # overflows the INTEGER column
    ("X-Edit-Count", "\u00b2"), ("X-Edit-Count", "1.5"), ("X-Edit-Count", "-3"),
    ("X-Shape", "2,64,\u0666\u0664"),
])
def test_malformed_integer_headers_are_400_naming_the_header(client, runtime, header, value):
    project_id, _ = make_project(runtime)
    t = lease(client, project_id, worker="ints").json
    crop_id, token = t["task"]["crop_id"], t["token"]
    labels, _ = get_labels(client, crop_id, token)
    r = put_labels(client, crop_id, token, labels, 0, **{header: value})
    assert r.status_code == 400, r.data
    assert r.json["field"] == header and header in r.json["error"]
    _, rev = get_labels(client, crop_id, token)
    assert rev == 0  # nothing was saved
    ok = put_labels(client, crop_id, token, labels, 0, **{"X-Edit-Count": "2147483647"})
    assert ok.status_code == 201
    with runtime.db.session() as s:
        assert s.get(Assignment, t["task"]["assignment_id"]).edit_count == 2147483647


@pytest.mark.parametrize("edit_count", [1e20, 10**20, 3.5, 3.0, "7", True, -1, [1]])
def test_a_submit_with_an_edit_count_that_is_no_integer_in_range_is_400(client, runtime, edit_count):
    project_id, _ = make_project(runtime, k=1)
    t = lease(client, project_id, worker="count").json
    crop_id, token = t["task"]["crop_id"], t["token"]
    r = client.post(f"/api/crowd/crops/{crop_id}/submit", json={"active_seconds": 5, "edit_count": edit_count},
                    headers=auth(token))
    assert r.status_code == 400 and r.json["field"] == "edit_count", r.data
    ok = client.post(f"/api/crowd/crops/{crop_id}/submit", json={"active_seconds": 5, "edit_count": 12},
                     headers=auth(token))
    assert ok.status_code == 200
    with runtime.db.session() as s:
        assert s.get(Assignment, ok.json["assignment_id"]).edit_count == 12


def test_a_revision_body_with_bytes_after_its_stream_is_stored_re_encoded(client, runtime):
    project_id, _ = make_project(runtime)
    t = lease(client, project_id, worker="tail").json
    crop_id, token = t["task"]["crop_id"], t["token"]
    labels = get_labels(client, crop_id, token)[0].copy()
    labels[1, :5, :5] = 77
    body = zlib.compress(np.ascontiguousarray(labels, dtype="<i4").tobytes()) + b"trailing bytes"
    r = client.put(f"/api/crowd/crops/{crop_id}/labels", data=body,
                   headers={**auth(token), "X-Base-Revision": "0", "X-Shape": "2,64,64"})
    assert r.status_code == 201
    key = labels_io.revision_key(t["task"]["assignment_id"], 1)
    assert b"trailing bytes" not in runtime.store.get_bytes(key)
    assert np.array_equal(labels_io.get_labels(runtime.store, key), labels)


def test_channels_are_uint8_deflate_with_shape(client, runtime):
    project_id, _ = make_project(runtime)
    t = lease(client, project_id, worker="ch").json
    r = client.get(f"/api/crowd/crops/{t['task']['crop_id']}/channels", headers=auth(t["token"]))
    assert r.status_code == 200 and r.headers["X-Dtype"] == "uint8" and r.headers["X-Shape"] == "2,64,64"
    assert len(zlib.decompress(r.data)) == 2 * 64 * 64


def test_submit_freezes_and_enqueues_fusion(client, runtime):
    project_id, crop_ids = make_project(runtime, k=1)
    t = lease(client, project_id, worker="sub").json
    crop_id, token = t["task"]["crop_id"], t["token"]
    r = client.post(f"/api/crowd/crops/{crop_id}/submit", json={"active_seconds": 42, "edit_count": 7},
                    headers=auth(token))
    assert r.status_code == 200
    completion = r.json["completion"]
    assert completion["kind"] == "post_message" and len(completion["code"]) == 12
    runtime.queue.join()
    with runtime.db.session() as s:
        a = s.get(Assignment, r.json["assignment_id"])
        assert (a.status, a.active_seconds, a.edit_count, a.completion_code) == ("submitted", 42, 7, completion["code"])
        assert s.get(Crop, crop_id).status == "fused"  # k = 1: fused right away
    labels, rev = get_labels(client, crop_id, token)
    after = put_labels(client, crop_id, token, labels, rev)
    assert after.status_code == 409 and "submitted" in after.json["error"]
    twice = client.post(f"/api/crowd/crops/{crop_id}/submit", json={}, headers=auth(token))
    assert twice.status_code == 409
    bad = lease(client, project_id, worker="sub2").json
    r = client.post(f"/api/crowd/crops/{bad['task']['crop_id']}/submit", json={"active_seconds": "lots"},
                    headers=auth(bad["token"]))
    assert r.status_code == 400


def test_tokens_are_bound_to_their_crop(client, runtime):
    project_id, crop_ids = make_project(runtime, k=1)
    a = lease(client, project_id, worker="a").json
    b = lease(client, project_id, worker="b").json
    assert a["task"]["crop_id"] != b["task"]["crop_id"]
    other = b["task"]["crop_id"]
    assert client.get(f"/api/crowd/crops/{other}/labels", headers=auth(a["token"])).status_code == 403
    labels = np.zeros((2, 64, 64), dtype=np.int32)
    assert put_labels(client, other, a["token"], labels, 0).status_code == 403
    tampered = a["token"][:-3] + ("AAA" if not a["token"].endswith("AAA") else "BBB")
    assert client.get(f"/api/crowd/crops/{a['task']['crop_id']}", headers=auth(tampered)).status_code == 401
    assert client.get(f"/api/crowd/crops/{a['task']['crop_id']}").status_code == 401
    forged = tasks.issue_token("another-secret", a["task"]["crop_id"], a["task"]["assignment_id"])
    assert client.get(f"/api/crowd/crops/{a['task']['crop_id']}", headers=auth(forged)).status_code == 401


@pytest.mark.parametrize("suffix", ["", "/channels", "/labels"])
def test_every_read_endpoint_applies_the_token_rules(client, runtime, suffix):
    project_id, _ = make_project(runtime, k=1)
    first = lease(client, project_id, worker="a").json
    other = lease(client, project_id, worker="b").json["task"]["crop_id"]
    current = lease(client, project_id, worker="a", resume=first["resume"]).json  # a reload retires the first token
    crop_id = current["task"]["crop_id"]
    url = f"/api/crowd/crops/{{}}{suffix}"
    assert client.get(url.format(crop_id), headers=auth(current["token"])).status_code == 200
    retired = client.get(url.format(crop_id), headers=auth(first["token"]))
    assert retired.status_code == 401 and "newer" in retired.json["error"]
    assert client.get(url.format(other), headers=auth(current["token"])).status_code == 403
    assert client.get(url.format(crop_id)).status_code == 401
    forged = tasks.issue_token("another-secret", crop_id, current["task"]["assignment_id"])
    assert client.get(url.format(crop_id), headers=auth(forged)).status_code == 401
    wrong_task = tasks.issue_token("test-secret", crop_id, current["task"]["assignment_id"] + 100)
    assert client.get(url.format(crop_id), headers=auth(wrong_task)).status_code == 403


def test_expired_token_is_401(client, runtime):
    project_id, _ = make_project(runtime)
    t = lease(client, project_id, worker="exp").json
    runtime.settings = runtime.settings.with_overrides(assignment_ttl_s=1)
    time.sleep(2.1)
    r = client.get(f"/api/crowd/crops/{t['task']['crop_id']}", headers=auth(t["token"]))
    assert r.status_code == 401 and "expired" in r.json["error"]


def test_security_headers_and_no_cookies(client, runtime):
    project_id, _ = make_project(runtime)
    responses = [lease(client, project_id, worker="hdr")]
    token, crop_id = responses[0].json["token"], responses[0].json["task"]["crop_id"]
    responses += [
        client.get(f"/api/crowd/crops/{crop_id}/labels", headers=auth(token)),
        client.get(f"/api/crowd/crops/{crop_id}/channels", headers=auth(token)),
        client.get(f"/api/crowd/crops/{crop_id + 999}", headers=auth(token)),
        client.get(f"/annotate/{project_id}?worker=hdr"),
    ]
    for r in responses:
        assert "frame-ancestors 'self' https://host.example" in r.headers["Content-Security-Policy"]
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert "Set-Cookie" not in r.headers


def test_mturk_preview_is_read_only_and_submit_is_a_form_post(client, runtime):
    project_id, _ = make_project(runtime, platform="mturk")
    p = lease(client, project_id, assignmentId="ASSIGNMENT_ID_NOT_AVAILABLE", hitId="H1").json
    assert p["preview"] is True and p["task"]["read_only"] is True
    crop_id = p["task"]["crop_id"]
    labels, rev = get_labels(client, crop_id, p["token"])
    assert put_labels(client, crop_id, p["token"], labels, rev).status_code == 403
    assert client.post(f"/api/crowd/crops/{crop_id}/submit", json={}, headers=auth(p["token"])).status_code == 403
    hostile = lease(client, project_id, assignmentId="A1", hitId="H1", workerId="W1",
                    turkSubmitTo="https://evil.example")
    assert hostile.status_code == 400 and "turkSubmitTo" in hostile.json["error"]
    t = lease(client, project_id, assignmentId="A1", hitId="H1", workerId="W1",
              turkSubmitTo="https://workersandbox.mturk.com").json
    r = client.post(f"/api/crowd/crops/{t['task']['crop_id']}/submit", json={}, headers=auth(t["token"]))
    c = r.json["completion"]
    assert c["kind"] == "form_post" and c["url"] == "https://workersandbox.mturk.com/mturk/externalSubmit"
    assert c["fields"]["assignmentId"] == "A1"


def test_prolific_redirects_with_the_study_completion_code(client, runtime):
    project_id, _ = make_project(runtime, platform="prolific", platform_settings={"completion_code": "C0DE42"})
    missing = lease(client, project_id, STUDY_ID="S", SESSION_ID="X")
    assert missing.status_code == 400 and "PROLIFIC_PID" in missing.json["error"]
    t = lease(client, project_id, PROLIFIC_PID="p1", STUDY_ID="S", SESSION_ID="X").json
    r = client.post(f"/api/crowd/crops/{t['task']['crop_id']}/submit", json={}, headers=auth(t["token"]))
    c = r.json["completion"]
    assert c["kind"] == "redirect" and c["url"].endswith("?cc=C0DE42")


def test_per_crop_urls_and_blocked_workers(client, runtime):
    project_id, crop_ids = make_project(runtime, platform="appen", k=1)
    t = lease(client, project_id, worker_id="row", crop=str(crop_ids[2])).json
    assert t["task"]["crop_id"] == crop_ids[2]
    client.post(f"/api/crowd/crops/{crop_ids[2]}/submit", json={}, headers=auth(t["token"]))
    full = lease(client, project_id, worker_id="row2", crop=str(crop_ids[2]))
    assert full.status_code == 404  # k = 1 reached
    assert lease(client, project_id, worker_id="row3", crop="999999").status_code == 404
    with runtime.db.session() as s:
        from backend.models import Annotator

        s.scalar(select(Annotator).where(Annotator.worker_id == "row")).blocked = True
    assert lease(client, project_id, worker_id="row").status_code == 403
    assert lease(client, project_id).status_code == 400
    assert client.post(f"/api/crowd/{project_id}/lease", json={"params": {"worker_id": ["x"]}}).status_code == 400
    assert lease(client, project_id, worker_id="../../etc").status_code == 400


def test_the_task_names_only_the_projects_features(client, runtime):
    """Issue #14 bug 1: a nuclear-only project's task offers the nuclear layer alone (the labels
    still travel as both layers, so a save keeps the untouched one)."""
    project_id, crop_ids = make_project(runtime, k=1, features=["nuclear"])
    r = lease(client, project_id, worker="nuc-1")
    assert r.status_code == 200, r.json
    assert r.json["task"]["features"] == ["nuclear"]
    labels, _ = get_labels(client, crop_ids[0], r.json["token"])
    assert labels.shape[0] == 2
