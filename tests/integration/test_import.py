"""Image import over the upload API: formats, channel maps, and every bad-input case.

Each rejected upload must leave the database and the storage exactly as they were.
"""

import io
import struct
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage
from sqlalchemy import func, select

from backend.models import Base, Image
from tests.conftest import basic_auth


@pytest.fixture
def client(admin_client):
    """Uploads and project settings are admin actions."""
    return admin_client


def _tiff(array, **kw) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, array, **kw)
    return buf.getvalue()


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height (a decompression bomb's first bytes)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)  # a sliver of the claimed pixels
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _state(runtime):
    """Everything a failed import must not change: every table's row count and every stored key."""
    with runtime.db.session() as s:
        counts = {t.name: s.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}
    return counts, runtime.store.list("")


@pytest.fixture
def project_id(client):
    r = client.post("/api/projects", json={"name": "tissue", "channels": ["DAPI", "membrane"]})
    assert r.status_code == 201, r.json
    return r.json["id"]


def upload(client, project_id, *files, **form):
    data = {"files": [(io.BytesIO(content), name) for name, content in files], **form}
    return client.post(f"/api/projects/{project_id}/images", data=data, content_type="multipart/form-data")


def test_upload_ome_tiff_png_and_npz(client, runtime, project_id):
    rng = np.random.default_rng(0)
    two = rng.integers(0, 4000, size=(2, 40, 50), dtype=np.uint16)
    ome = _tiff(two, ome=True, photometric="minisblack",
                metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "membrane"]}})
    y = np.zeros((2, 40, 50, 2), dtype=np.int32)
    y[:, 5:15, 5:15, 0] = 70000  # ids above uint16 survive
    y[:, 7:12, 7:12, 1] = 70000
    npz = _npz(X=rng.random((2, 40, 50, 2), dtype=np.float32), y=y)
    r = upload(client, project_id, ("a.ome.tif", ome), ("batch.npz", npz))
    assert r.status_code == 201, r.json
    images = r.json["images"]
    assert len(images) == 3
    first = images[0]
    assert (first["n_channels"], first["height"], first["width"], first["dtype"]) == (2, 40, 50, "uint16")
    assert first["channel_names"] == ["DAPI", "membrane"]
    with runtime.db.session() as s:
        row = s.get(Image, first["id"])
        assert np.array_equal(runtime.store.get_array(row.raw_key), two)
        lo, hi = np.asarray(row.display_range).T
        assert np.all(lo <= hi)
        gt_rows = [s.get(Image, i["id"]) for i in images[1:]]
        assert all(g.ground_truth_key for g in gt_rows)
        labels = runtime.store.get_arrays(gt_rows[0].ground_truth_key)["labels"]
        assert labels.dtype == np.int32 and labels.shape == (2, 40, 50) and labels.max() == 70000
    listed = client.get(f"/api/projects/{project_id}/images").json["images"]
    assert [i["id"] for i in listed] == [i["id"] for i in images]
    thumb = client.get(f"/api/projects/{project_id}/images/{first['id']}/thumbnail.png")
    assert thumb.status_code == 200 and thumb.data[:8] == b"\x89PNG\r\n\x1a\n"


def test_channel_map_selects_and_orders_channels(client, runtime, project_id):
    four = np.stack([np.full((20, 30), v, dtype=np.uint8) for v in (10, 20, 30, 40)])
    tif = _tiff(four, ome=True, photometric="minisblack",
                metadata={"axes": "CYX", "Channel": {"Name": ["CD3", "DAPI", "CD20", "NaK"]}})
    r = upload(client, project_id, ("four.tif", tif))
    assert r.status_code == 400 and "4 channel" in r.json["error"] and "channel map" in r.json["error"]
    r = upload(client, project_id, ("four.tif", tif), channels="DAPI,NaK")
    assert r.status_code == 201, r.json
    with runtime.db.session() as s:
        raw = runtime.store.get_array(s.get(Image, r.json["images"][0]["id"]).raw_key)
    assert raw[:, 0, 0].tolist() == [20, 40]


def test_duplicate_name_is_a_conflict(client, runtime, project_id):
    png = io.BytesIO()
    PILImage.fromarray(np.zeros((10, 10, 3), dtype=np.uint8)).save(png, format="PNG")
    rgb_project = client.post("/api/projects", json={"name": "rgb", "channels": ["r", "g", "b"]}).json["id"]
    assert upload(client, rgb_project, ("x.png", png.getvalue())).status_code == 201
    before = _state(runtime)
    r = upload(client, rgb_project, ("x.png", png.getvalue()))
    assert r.status_code == 409 and "x.png" in r.json["error"]
    assert _state(runtime) == before


def test_an_upload_racing_another_of_the_same_name_is_a_conflict_not_a_500(client, runtime, project_id):
    import threading
    import time

    from backend.services.images import Upload, import_images
    from backend.services.projects import get_project

    content = _npz(X=np.ones((12, 12, 2), dtype=np.uint16))
    answer = {}
    other = threading.Thread(target=lambda: answer.update(r=upload(client, project_id, ("same.npz", content))))
    with runtime.db.session() as s:  # the first import has its row, not yet committed
        first = import_images(s, runtime.store, get_project(s, project_id), [Upload("same.npz", content)])[0]
        other.start()
        time.sleep(3)  # the second passed the name check and now waits on the first's row
    other.join(60)
    r = answer["r"]
    assert r.status_code == 409 and r.json["field"] == "files" and "same time" in r.json["error"], r.data
    with runtime.db.session() as s:
        assert s.scalars(select(Image.id).where(Image.project_id == project_id)).all() == [first.id]
    assert runtime.store.list("images/") == [first.raw_key]  # the loser removed only its own blob


BAD_INPUTS = {
    "zero_bytes": (("empty.tif", b""), {}, 400, "empty"),
    "truncated_tiff": (("cut.tif", None), {}, 400, "cut.tif"),
    "text_named_tif": (("notes.tif", b"these are my notes, not an image\n" * 10), {}, 400, "notes.tif"),
    "five_d": (("five.npy", None), {}, 400, "dimension"),
    "nan": (("nan.npz", None), {}, 400, "nan"),
    "inf": (("inf.npz", None), {}, 400, "inf"),
    "too_many_pixels_header": (("bomb.png", _png_header_only(30000, 30000)), {}, 413, "pixel"),
    "too_many_channels": (("wide.npz", None), {}, 400, "channels"),
    "path_traversal": (("../../etc/passwd.tif", None), {}, 400, "file name"),
    "unknown_extension": (("virus.exe", b"MZ\x90\x00"), {}, 400, "virus.exe"),
}


def _bad_content(case):
    if case == "truncated_tiff":
        return _tiff(np.zeros((2, 64, 64), dtype=np.uint16))[:300]
    if case == "five_d":
        buf = io.BytesIO()
        np.save(buf, np.zeros((1, 2, 3, 4, 5), dtype=np.float32))
        return buf.getvalue()
    if case == "nan":
        x = np.zeros((16, 16, 2), dtype=np.float32)
        x[3, 3, 0] = np.nan
        return _npz(X=x)
    if case == "inf":
        x = np.zeros((16, 16, 2), dtype=np.float32)
        x[3, 3, 1] = np.inf
        return _npz(X=x)
    if case == "too_many_channels":
        return _npz(X=np.zeros((8, 8, 65), dtype=np.uint8))
    if case == "path_traversal":
        return _tiff(np.zeros((2, 8, 8), dtype=np.uint8))
    raise KeyError(case)


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_rejected_and_nothing_changes(client, runtime, project_id, case):
    (name, content), form, status, needle = BAD_INPUTS[case]
    if content is None:
        content = _bad_content(case)
    good = _tiff(np.ones((2, 16, 16), dtype=np.uint8))
    before = _state(runtime)
    # The bad file travels with a good one: all or nothing, so the good one is not kept either.
    r = upload(client, project_id, ("good.tif", good), (name, content), **form)
    assert r.status_code == status, (case, r.json)
    assert needle.lower() in r.json["error"].lower(), r.json["error"]
    assert _state(runtime) == before


def test_pixel_limit_comes_from_settings(client, runtime, project_id, app):
    runtime.settings = runtime.settings.with_overrides(max_image_pixels=100)
    before = _state(runtime)
    r = upload(client, project_id, ("big.tif", _tiff(np.zeros((2, 20, 20), dtype=np.uint8))))
    assert r.status_code == 413 and "pixel" in r.json["error"].lower()
    assert _state(runtime) == before


def test_malformed_requests(client, runtime, project_id):
    before = _state(runtime)
    assert client.post(f"/api/projects/{project_id}/images").status_code == 400
    assert client.post("/api/projects/999/images", data={"files": [(io.BytesIO(b"x"), "a.tif")]},
                       content_type="multipart/form-data").status_code == 404
    r = client.post("/api/projects", data="not json", content_type="application/json")
    assert r.status_code == 400 and "JSON object" in r.json["error"]
    r = client.post("/api/projects", json={"name": "x", "channels": ["a"], "overlap": 300})
    assert r.status_code == 400 and r.json["field"] == "overlap"
    r = client.post("/api/projects", json={"name": "y", "channels": ["a"], "annotators_per_crop": 2, "quorum": 3})
    assert r.status_code == 400 and r.json["field"] == "quorum"
    assert _state(runtime) == before


@pytest.mark.s3
def test_upload_to_s3_storage_over_http(settings, moto_endpoint, s3_bucket, users):
    """The same upload path with STORAGE_URL=s3://… against moto_server: arrays land in the bucket."""
    import boto3

    from backend.app import build_app
    from backend.runtime import Runtime

    rt = Runtime(settings.with_overrides(storage_url=f"s3://{s3_bucket}/ll", s3_endpoint_url=moto_endpoint))
    try:
        client = build_app(runtime=rt).test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = basic_auth("admin", users["admin"])
        assert client.get("/healthz").json["storage"] == "ok"
        pid = client.post("/api/projects", json={"name": "s3", "channels": ["DAPI", "membrane"]}).json["id"]
        pixels = np.arange(2 * 30 * 40, dtype=np.uint16).reshape(2, 30, 40)
        r = upload(client, pid, ("s3.tif", _tiff(pixels)))
        assert r.status_code == 201, r.json
        image_id = r.json["images"][0]["id"]
        keys = [o["Key"] for o in boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
                .list_objects_v2(Bucket=s3_bucket)["Contents"]]
        assert f"ll/images/{image_id}/raw.npy" in keys
        with rt.db.session() as s:
            assert np.array_equal(rt.store.get_array(s.get(Image, image_id).raw_key), pixels)
        before = _state(rt)
        bad = upload(client, pid, ("ok.tif", _tiff(pixels)), ("bad.tif", b"not a tiff"))
        assert bad.status_code == 400 and _state(rt) == before
    finally:
        rt.close()


def test_pixel_size_is_read_from_the_file_and_the_project_fills_in(client, runtime, project_id):
    two = np.random.default_rng(3).integers(0, 4000, size=(2, 30, 40), dtype=np.uint16)
    ome = _tiff(two, ome=True, metadata={"axes": "CYX", "PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65})
    nm = _tiff(two, ome=True, metadata={"axes": "CYX", "PhysicalSizeX": 325, "PhysicalSizeXUnit": "nm",
                                        "PhysicalSizeY": 325, "PhysicalSizeYUnit": "nm"})
    screen = _tiff(two, photometric="minisblack", resolution=(72, 72), resolutionunit=2)
    per_cm = _tiff(two, photometric="minisblack", resolution=(20000, 20000), resolutionunit=3)
    r = upload(client, project_id, ("a.ome.tif", ome), ("b.ome.tif", nm), ("screen.tif", screen),
               ("cm.tif", per_cm), ("x.npz", _npz(X=np.ones((30, 40, 2), dtype=np.uint8))))
    assert r.status_code == 201, r.json
    sizes = {i["name"]: (i["pixel_size_um"], i["effective_pixel_size_um"], i["pixel_size_source"])
             for i in r.json["images"]}
    assert sizes == {"a.ome.tif": (0.65, 0.65, "image"), "b.ome.tif": (0.325, 0.325, "image"),
                     "screen.tif": (None, None, "unknown"), "cm.tif": (0.5, 0.5, "image"),
                     "x.npz": (None, None, "unknown")}
    with runtime.db.session() as s:
        by_name = {i.name: i.pixel_size_um for i in s.scalars(select(Image))}
    assert by_name == {name: size[0] for name, size in sizes.items()}
    assert client.patch(f"/api/projects/{project_id}", json={"pixel_size_um": 0.4}).status_code == 200
    listed = {i["name"]: i for i in client.get(f"/api/projects/{project_id}/images").json["images"]}
    assert (listed["screen.tif"]["effective_pixel_size_um"], listed["screen.tif"]["pixel_size_source"]) == (
        0.4, "project")
    assert listed["a.ome.tif"]["effective_pixel_size_um"] == 0.65  # the file's size wins
