"""Crowd abuse: lease rates per address and per platform, open leases per worker id, and a worker id
typed in another browser that must not take over a live task (backend.services.lease_limits,
tasks.lease_task's resume secret)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.integration.test_crowd_api import auth, get_labels, lease, make_project, put_labels


def lease_from(client, project_id, address, resume=None, forwarded=None, **params):
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return client.post(f"/api/crowd/{project_id}/lease", json={"params": params, "resume": resume},
                       headers=headers, environ_overrides={"REMOTE_ADDR": address})


def test_the_41st_lease_from_one_address_in_a_minute_is_429_with_retry_after(client, runtime):
    project_id, _ = make_project(runtime, k=20)
    for i in range(40):
        r = lease_from(client, project_id, "203.0.113.7", worker=f"made-up-{i}")
        assert r.status_code == 200, (i, r.json)
    r = lease_from(client, project_id, "203.0.113.7", worker="made-up-40")
    assert r.status_code == 429, r.json
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert "LEASES_PER_ADDRESS_PER_MIN" in r.json["error"] and "40" in r.json["error"]
    assert lease_from(client, project_id, "198.51.100.2", worker="someone-else").status_code == 200
    # a refused request is not counted, and the count is per address only
    assert lease_from(client, project_id, "203.0.113.7", worker="made-up-41").status_code == 429


def test_behind_a_trusted_proxy_the_forwarded_address_counts(client, runtime):
    runtime.settings = runtime.settings.with_overrides(trusted_proxy_hops=1, leases_per_address_per_min=2)
    project_id, _ = make_project(runtime, k=20)
    proxy = "10.0.0.5"
    for i in range(2):  # the client-supplied left part of X-Forwarded-For changes nothing
        r = lease_from(client, project_id, proxy, forwarded=f"1.2.3.{i}, 203.0.113.5", worker=f"w{i}")
        assert r.status_code == 200
    assert lease_from(client, project_id, proxy, forwarded="9.9.9.9, 203.0.113.5", worker="w2").status_code == 429
    assert lease_from(client, project_id, proxy, forwarded="203.0.113.9", worker="w3").status_code == 200  # another client


def test_leases_per_platform_are_limited_over_all_addresses(client, runtime):
    runtime.settings = runtime.settings.with_overrides(leases_per_platform_per_min=5)
    project_id, _ = make_project(runtime, k=20)
    for i in range(5):
        assert lease_from(client, project_id, f"198.51.100.{i}", worker=f"w{i}").status_code == 200
    r = lease_from(client, project_id, "198.51.100.99", worker="w99")
    assert r.status_code == 429 and "LEASES_PER_PLATFORM_PER_MIN" in r.json["error"] and r.headers["Retry-After"]


def test_one_worker_id_holds_at_most_the_open_lease_cap(client, runtime):
    runtime.settings = runtime.settings.with_overrides(max_open_leases_per_worker=2)
    project_id, crop_ids = make_project(runtime, platform="appen", k=2)
    for crop_id in crop_ids[:2]:  # per-crop links: one lease per row
        assert lease(client, project_id, worker_id="row", crop=str(crop_id)).status_code == 200
    r = lease(client, project_id, worker_id="row", crop=str(crop_ids[2]))
    assert r.status_code == 429 and "MAX_OPEN_LEASES_PER_WORKER" in r.json["error"]
    assert 3000 < int(r.headers["Retry-After"]) <= 3600  # until the oldest lease expires


def test_a_known_worker_id_in_a_new_browser_cannot_take_over_the_live_task(client, runtime):
    project_id, crop_ids = make_project(runtime, k=2)
    first = lease(client, project_id, worker="victim").json
    crop_id, token = first["task"]["crop_id"], first["token"]
    labels, rev = get_labels(client, crop_id, token)
    secret = labels.copy()
    secret[0, 5:9, 5:9] = 4242  # the victim's saved work
    assert put_labels(client, crop_id, token, secret, rev).status_code == 201

    other = lease(client, project_id, worker="victim")  # same worker id, no resume secret
    assert other.status_code == 200, other.json
    assert other.json["task"]["crop_id"] != crop_id and other.json["task"]["assignment_id"] != first["task"]["assignment_id"]
    assert other.json["resume"] != first["resume"]
    for suffix in ("", "/labels", "/channels"):  # the new browser's token reads nothing of the first task
        assert client.get(f"/api/crowd/crops/{crop_id}{suffix}", headers=auth(other.json["token"])).status_code == 403
    got, got_rev = get_labels(client, crop_id, token)  # the first browser's token still works
    assert got_rev == 1 and np.array_equal(got, secret)

    wrong = lease(client, project_id, worker="victim", resume="0" * 32)  # a guessed secret is no secret
    assert wrong.status_code in (200, 404, 429) and wrong.json.get("task", {}).get("crop_id") != crop_id

    again = lease(client, project_id, worker="victim", resume=first["resume"])  # the first browser reloads
    assert again.status_code == 200 and again.json["task"]["crop_id"] == crop_id
    assert again.json["task"]["revision"] == 1
    assert client.get(f"/api/crowd/crops/{crop_id}", headers=auth(token)).status_code == 401  # retired by the reload


def test_a_per_crop_link_opened_elsewhere_is_refused_clearly(client, runtime):
    project_id, crop_ids = make_project(runtime, platform="appen", k=2)
    first = lease(client, project_id, worker_id="row", crop=str(crop_ids[1])).json
    r = lease(client, project_id, worker_id="row", crop=str(crop_ids[1]))
    assert r.status_code == 409 and "another browser" in r.json["error"]
    back = lease(client, project_id, worker_id="row", crop=str(crop_ids[1]), resume=first["resume"])
    assert back.status_code == 200 and back.json["task"]["assignment_id"] == first["task"]["assignment_id"]


MTURK = {"hitId": "H1", "workerId": "W1", "turkSubmitTo": "https://workersandbox.mturk.com"}


def test_mturk_reload_of_the_same_assignment_gets_the_task_back(client, runtime):
    project_id, _ = make_project(runtime, platform="mturk", k=2)
    first = lease(client, project_id, assignmentId="A1", **MTURK).json
    reload = lease(client, project_id, resume=first["resume"], assignmentId="A1", **MTURK)
    assert reload.status_code == 200, reload.json
    assert reload.json["task"]["assignment_id"] == first["task"]["assignment_id"]
    stranger = lease(client, project_id, assignmentId="A1", **MTURK)  # the same ids from another browser
    assert stranger.status_code == 409 and "another browser" in stranger.json["error"]
    assert client.get(f"/api/crowd/crops/{first['task']['crop_id']}",
                      headers=auth(reload.json["token"])).status_code == 200  # the worker's token lives on
    # the same worker on a new HIT gets a new task, even with the old secret in this tab
    new_hit = lease(client, project_id, resume=first["resume"], assignmentId="A2", **{**MTURK, "hitId": "H2"})
    assert new_hit.status_code == 200 and new_hit.json["task"]["assignment_id"] != first["task"]["assignment_id"]
    r = client.post(f"/api/crowd/crops/{new_hit.json['task']['crop_id']}/submit", json={},
                    headers=auth(new_hit.json["token"]))
    assert r.json["completion"]["fields"]["assignmentId"] == "A2"


@pytest.mark.parametrize("resume", [7, ["x"], {"a": 1}])
def test_a_resume_that_is_not_text_is_400(client, runtime, resume):
    project_id, _ = make_project(runtime)
    r = client.post(f"/api/crowd/{project_id}/lease", json={"params": {"worker": "w"}, "resume": resume})
    assert r.status_code == 400 and r.json["field"] == "resume"
