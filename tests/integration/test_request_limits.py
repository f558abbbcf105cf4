"""Memory bounds of requests: decompression bombs refused from their headers (MAX_DECODED_MB), and
per-route body limits answered 413 before the body is read (backend.api.body_limits)."""

from __future__ import annotations

import io
import json
import zlib

import numpy as np
import pytest

from backend.models import Image
from bench.memory import npz_bomb, tiff_bomb
from tests.integration.test_crowd_api import auth, get_labels, lease, make_project


class CountingStream(io.RawIOBase):
    """A request body of ``size`` bytes (``None``: endless) that records how much was read."""

    def __init__(self, size: int | None):
        self.size, self.read_bytes = size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = len(buffer) if self.size is None else min(len(buffer), self.size - self.read_bytes)
        buffer[:left] = b"{" * left
        self.read_bytes += left
        return left


def send(client, method: str, path: str, body: CountingStream, headers: dict | None = None):
    """``method path`` with ``body`` as the WSGI input: Content-Length ``body.size``, or none (a
    chunked body the server terminates) when the size is None."""
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    environ = EnvironBuilder(path=path, method=method, headers=headers or {}).get_environ()
    environ["wsgi.input"] = body
    environ.pop("CONTENT_LENGTH", None)
    if body.size is None:
        environ["wsgi.input_terminated"] = True
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    else:
        environ["CONTENT_LENGTH"] = str(body.size)
    return client.open(Request(environ))


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    """The 2.3 MB NPZ and 2.4 MB TIFF that declare 20000 x 20000 x 3 uint16 zeros (2,289 MB)."""
    folder = tmp_path_factory.mktemp("bombs")
    npz_bomb(folder / "bomb.npz")
    tiff_bomb(folder / "bomb.tif")
    return {"npz": (folder / "bomb.npz").read_bytes(), "tif": (folder / "bomb.tif").read_bytes()}


def upload(client, project_id, *files, **form):
    data = {"files": [(io.BytesIO(body), name) for name, body in files], **form}
    return client.post(f"/api/projects/{project_id}/images", data=data, content_type="multipart/form-data")


def new_project(client, channels=("c0", "c1", "c2")):
    r = client.post("/api/projects", json={"name": "limits", "channels": list(channels)})
    assert r.status_code == 201, r.data
    return r.json["id"]


# --- decoded size -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["npz", "tif"])
def test_a_bomb_is_413_from_its_header_and_nothing_is_stored(admin_client, runtime, bombs, kind):
    assert len(bombs[kind]) < 2.5 * 2**20  # a small file...
    project_id = new_project(admin_client)
    r = upload(admin_client, project_id, (f"bomb.{kind}", bombs[kind]))
    assert r.status_code == 413, r.data
    message = r.json["error"]  # names the file, what it declares, and the limit
    assert f"bomb.{kind}" in message and "20000x20000" in message and "3 channel" in message
    assert "2,289 MB" in message and "2,048 MB" in message and "MAX_DECODED_MB" in message
    with runtime.db.session() as s:
        assert s.query(Image).count() == 0
    images = runtime.store.root / "images"
    assert not images.exists() or not any(images.rglob("*"))


def test_the_files_of_one_upload_share_the_decoded_limit(admin_client, runtime):
    runtime.settings = runtime.settings.with_overrides(max_decoded_mb=1)  # 1 MB for this test
    project_id = new_project(admin_client, ("c0",))
    arrays = {}
    for name in ("a.npz", "b.npz"):  # 700 x 700 uint8 = 0.47 MB decoded each
        buf = io.BytesIO()
        np.savez_compressed(buf, X=np.zeros((700, 700, 1), np.uint8))
        arrays[name] = buf.getvalue()
    one = upload(admin_client, project_id, ("a.npz", arrays["a.npz"]))
    assert one.status_code == 201, one.data
    both = upload(admin_client, project_id, ("c.npz", arrays["a.npz"]), ("d.npz", arrays["b.npz"]), ("e.npz", arrays["b.npz"]))
    assert both.status_code == 413 and "e.npz" in both.json["error"] and "upload it on its own" in both.json["error"]
    with runtime.db.session() as s:
        assert [i.name for i in s.query(Image)] == ["a.npz"]  # all or nothing


# --- body limits ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path,headers", [
    ("/api/crowd/{project}/lease", {"Content-Type": "application/json"}),
    ("/login", {"Content-Type": "application/x-www-form-urlencoded"}),
    ("/api/crowd/crops/{crop}/submit", {"Content-Type": "application/json"}),
])
def test_a_body_over_the_crowd_or_login_limit_is_413_unread(client, runtime, path, headers):
    project_id, crop_ids = make_project(runtime)
    body = CountingStream(300 * 2**20)  # 300 MB announced
    r = send(client, "POST", path.format(project=project_id, crop=crop_ids[0]), body, headers)
    assert r.status_code == 413, r.data
    assert body.read_bytes == 0  # refused from Content-Length alone
    # the API answers in JSON; the login form, a page a person submitted, with the console's error page
    assert r.is_json == path.startswith("/api/")
    error = r.json["error"] if r.is_json else r.data.decode()
    assert "16 KB" in error and "MAX_CROWD_BODY_KB" in error
    ok = client.post(path.format(project=project_id, crop=crop_ids[0]), data=b"x" * 16 * 1024, headers=headers)
    assert ok.status_code != 413  # the limit itself is allowed (the body is just not valid here)


def test_a_chunked_body_without_a_length_is_cut_at_the_limit(client, runtime):
    project_id, _ = make_project(runtime)
    body = CountingStream(None)  # endless, no Content-Length (a chunked upload)
    r = send(client, "POST", f"/api/crowd/{project_id}/lease", body, {"Content-Type": "application/json"})
    assert r.status_code == 413, r.data
    assert 16 * 1024 <= body.read_bytes <= 16 * 1024 + 64 * 1024  # stopped at the limit, not at the end


def test_other_routes_have_the_default_limit_and_uploads_the_large_one(admin_client, runtime):
    runtime.settings = runtime.settings.with_overrides(max_body_kb=4, max_upload_mb=1)
    project_id = new_project(admin_client)
    body = CountingStream(5 * 1024)
    r = send(admin_client, "PATCH", f"/api/projects/{project_id}", body, {"Content-Type": "application/json"})
    assert r.status_code == 413 and body.read_bytes == 0 and "MAX_BODY_KB" in r.json["error"]
    big = CountingStream(2 * 2**20)
    r = send(admin_client, "POST", f"/api/projects/{project_id}/images", big,
             {"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413 and big.read_bytes == 0 and "1 MB" in r.json["error"] and "MAX_UPLOAD_MB" in r.json["error"]
    small = admin_client.patch(f"/api/projects/{project_id}", json={"instructions": "x" * 3000})
    assert small.status_code == 200, small.data


def test_a_label_save_over_its_crops_deflate_bound_is_413_unread(client, runtime):
    project_id, _ = make_project(runtime)
    t = lease(client, project_id, worker="big").json
    crop_id, token = t["task"]["crop_id"], t["token"]
    labels, rev = get_labels(client, crop_id, token)  # a 64 x 64 crop: (2, 64, 64) int32, 32 KB raw
    bound = 2 * 64 * 64 * 4 + 13 + 1024 + (32768 >> 12) + (32768 >> 14)
    body = CountingStream(bound + 1)
    r = send(client, "PUT", f"/api/crowd/crops/{crop_id}/labels", body, {**auth(token), "X-Base-Revision": str(rev)})
    assert r.status_code == 413 and body.read_bytes == 0 and "(2, 64, 64)" in r.json["error"]
    # incompressible labels (random ids) at the bound still save
    noisy = np.random.default_rng(0).integers(1, 2**31 - 1, size=(2, 64, 64), dtype=np.int32)
    stream = zlib.compress(noisy.astype("<i4").tobytes(), 0)  # stored blocks: the largest valid stream
    assert len(stream) <= bound
    r = client.put(f"/api/crowd/crops/{crop_id}/labels", data=stream,
                   headers={**auth(token), "X-Base-Revision": str(rev), "X-Shape": "2,64,64"})
    assert r.status_code == 201, r.data
    # without a valid token, a large body is not read either
    body = CountingStream(10 * 2**20)
    r = send(client, "PUT", f"/api/crowd/crops/{crop_id}/labels", body, {"Authorization": "Bearer nope", "X-Base-Revision": "1"})
    assert r.status_code == 401 and body.read_bytes == 0


def test_a_body_at_the_lease_limit_is_answered(client, runtime):
    """Realistic lease bodies are a few hundred bytes; padded to just under 16 KB it still works."""
    project_id, _ = make_project(runtime)
    params = {"worker": "pad", "utm_source": "x" * (16 * 1024 - 200)}
    body = json.dumps({"params": params, "resume": None}).encode()
    assert len(body) < 16 * 1024
    r = client.post(f"/api/crowd/{project_id}/lease", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.data


def test_every_route_limit_names_a_route_and_every_body_route_has_a_limit(app):
    from backend.api.body_limits import ROUTE_LIMITS, route_limit

    endpoints = {rule.endpoint: rule.methods for rule in app.url_map.iter_rules()}
    assert set(ROUTE_LIMITS) <= set(endpoints)  # a renamed view would silently fall back to the default
    settings = app.extensions["looplabel"].settings
    for endpoint, methods in endpoints.items():
        if methods & {"POST", "PUT", "PATCH"}:
            limit, _ = route_limit(endpoint, settings)
            assert 0 < limit <= settings.max_upload_mb * 2**20, endpoint
    assert route_limit("crowd.lease", settings) == (16 * 1024, "MAX_CROWD_BODY_KB")
    assert route_limit("auth.login", settings) == (16 * 1024, "MAX_CROWD_BODY_KB")
    assert route_limit("review.tool", settings) == (1024 * 1024, "MAX_BODY_KB")
