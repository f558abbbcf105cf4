"""Behaviour of backend.storage, run against LocalStore and against S3Store over HTTP.

The S3 variant talks to a real moto server (``ThreadedMotoServer``) started once
per module on a free port; every test gets a fresh bucket. boto3 is never patched.
"""

import gzip
import io
import logging
import os
import threading
import time
import urllib.request
import uuid
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto.server import ThreadedMotoServer

from backend.storage import (
    BlobNotFoundError,
    BlobStore,
    InvalidKeyError,
    LocalStore,
    S3Store,
    StorageError,
    open_store,
)

S3_PREFIX = "looplabel/run"


def _fake_aws(monkeypatch, tmp_path):
    """Credentials for moto only: nothing from the real AWS configuration leaks in."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def s3_endpoint():
    """URL of an in-process moto S3 server on a free port, for the whole module."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def fake_aws(monkeypatch, tmp_path):
    _fake_aws(monkeypatch, tmp_path)


@pytest.fixture
def s3_store(s3_endpoint, fake_aws):
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    return S3Store(bucket, S3_PREFIX, endpoint_url=s3_endpoint, create_bucket=True)


@pytest.fixture
def raw_s3(s3_endpoint, fake_aws):
    """A plain boto3 client on the moto server, to look behind the store's back."""
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request, tmp_path) -> BlobStore:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    return request.getfixturevalue("s3_store")


def _all_objects(store, request, tmp_path):
    """Everything physically present: files under tmp_path, or every object in the bucket."""
    if isinstance(store, LocalStore):
        return sorted(
            str(Path(folder, name).relative_to(tmp_path))
            for folder, _, names in os.walk(tmp_path)
            for name in names
        )
    raw = request.getfixturevalue("raw_s3")
    response = raw.list_objects_v2(Bucket=store.bucket)
    return sorted(entry["Key"] for entry in response.get("Contents", []))


# --------------------------------------------------------------------- bytes


@pytest.mark.parametrize("size", [0, 1, 1000, 1 << 20])
def test_bytes_round_trip(store, size):
    data = np.random.default_rng(size).bytes(size)
    store.put_bytes("blobs/data.bin", data)
    assert store.get_bytes("blobs/data.bin") == data
    assert store.exists("blobs/data.bin")


def test_bytearray_and_memoryview_are_accepted_but_text_is_not(store):
    store.put_bytes("a", bytearray(b"from bytearray"))
    store.put_bytes("b", memoryview(b"from memoryview"))
    assert store.get_bytes("a") == b"from bytearray"
    assert store.get_bytes("b") == b"from memoryview"
    with pytest.raises(TypeError, match="bytes"):
        store.put_bytes("c", "text")
    assert not store.exists("c")


def test_overwrite_replaces_the_whole_content(store):
    store.put_bytes("k/v", b"a long first version " * 100)
    store.put_bytes("k/v", b"short")
    assert store.get_bytes("k/v") == b"short"
    assert store.list() == ["k/v"]


def test_missing_key_raises_blob_not_found_naming_the_key(store):
    for read in (store.get_bytes, store.get_array, store.get_arrays):
        with pytest.raises(BlobNotFoundError) as info:
            read("images/7/raw.npy")
        assert isinstance(info.value, KeyError)
        assert "'images/7/raw.npy'" in str(info.value)
        assert not str(info.value).startswith('"')  # a readable message, not a repr
    assert not store.exists("images/7/raw.npy")


# -------------------------------------------------------------------- arrays


@pytest.mark.parametrize(
    "array",
    [
        np.arange(-5, 7, dtype=np.int32).reshape(3, 4),
        np.array([0, 1, 65535], dtype=np.uint16),
        np.linspace(0, 1, 24, dtype=np.float32).reshape(2, 3, 4),
        np.arange(6, dtype=">i4").reshape(2, 3),
        np.array([1.5, -2.25, np.inf], dtype=">f8"),
        np.array([True, False]),
        np.array(42, dtype=np.int64),
        np.zeros((0, 5), dtype=np.int32),
        np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4)),
        np.arange(20, dtype=np.int32)[::3],
    ],
    ids=["int32", "uint16", "float32", "int32-big-endian", "float64-big-endian", "bool",
         "0-d", "empty", "fortran", "strided"],
)
def test_array_round_trip_keeps_dtype_shape_and_values(store, array):
    store.put_array("arrays/a.npy", array)
    loaded = store.get_array("arrays/a.npy")
    assert loaded.dtype == array.dtype  # byte order included
    assert loaded.shape == array.shape
    np.testing.assert_array_equal(loaded, array)


def test_label_npz_round_trip(store):
    rng = np.random.default_rng(0)
    whole_cell = rng.integers(0, 70000, size=(64, 48), dtype=np.int32)  # > uint16 range
    nuclear = rng.integers(0, 500, size=(64, 48), dtype=np.int32)
    channels = rng.random((2, 64, 48), dtype=np.float32)
    store.put_arrays("labels/3/r1.npz", whole_cell=whole_cell, nuclear=nuclear, X=channels)
    loaded = store.get_arrays("labels/3/r1.npz")
    assert set(loaded) == {"whole_cell", "nuclear", "X"}
    for name, expected in (("whole_cell", whole_cell), ("nuclear", nuclear), ("X", channels)):
        assert loaded[name].dtype == expected.dtype
        np.testing.assert_array_equal(loaded[name], expected)


def test_npz_is_compressed(store):
    zeros = np.zeros((512, 512), dtype=np.int32)
    store.put_arrays("z.npz", labels=zeros)
    assert len(store.get_bytes("z.npz")) < zeros.nbytes // 50


@pytest.mark.parametrize("level", [0, 1, 6, 9])
@pytest.mark.parametrize("shape", [(2, 70, 53), (2, 0, 8), (3,)])
def test_a_deflated_array_is_stored_with_the_stream_as_sent(store, level, shape):
    labels = np.random.default_rng(level).integers(0, 70000, size=shape).astype("<i4")
    stream = zlib.compress(labels.tobytes(), level)
    store.put_deflated_array("revisions/4/2.npz", "labels", labels, stream)
    blob = store.get_bytes("revisions/4/2.npz")
    assert stream[2:-4] in blob  # the received deflate blocks, not compressed again
    assert len(blob) < len(stream) + 300
    assert zipfile.ZipFile(io.BytesIO(blob)).testzip() is None  # the member's CRC-32 checks out
    loaded = store.get_arrays("revisions/4/2.npz")
    assert set(loaded) == {"labels"} and loaded["labels"].dtype == labels.dtype
    np.testing.assert_array_equal(loaded["labels"], labels)


def test_a_deflated_array_needs_a_zlib_stream_and_stores_nothing_otherwise(store):
    labels = np.arange(12, dtype="<i4").reshape(3, 4)
    raw = labels.tobytes()
    raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    for bad in (gzip.compress(raw), raw_deflate.compress(raw) + raw_deflate.flush(), b"", b"x\x9c"):
        with pytest.raises(ValueError, match="zlib"):
            store.put_deflated_array("bad.npz", "labels", labels, bad)
    with pytest.raises(ValueError, match="contiguous"):
        store.put_deflated_array("bad.npz", "labels", labels.T, zlib.compress(labels.T.tobytes()))
    assert store.list() == []


def test_reading_the_wrong_kind_of_blob_is_a_storage_error(store):
    store.put_array("one.npy", np.ones(3, dtype=np.int32))
    store.put_arrays("many.npz", a=np.ones(3, dtype=np.int32))
    store.put_bytes("text.txt", b"not numpy at all")
    with pytest.raises(StorageError, match="get_arrays"):
        store.get_array("many.npz")
    with pytest.raises(StorageError, match="get_array"):
        store.get_arrays("one.npy")
    for read in (store.get_array, store.get_arrays):
        with pytest.raises(StorageError) as info:
            read("text.txt")
        assert not isinstance(info.value, BlobNotFoundError)


def test_object_arrays_are_refused_and_nothing_is_stored(store):
    with pytest.raises(TypeError, match="object"):
        store.put_array("obj.npy", np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(TypeError, match="object"):
        store.put_arrays("obj.npz", ok=np.ones(2), bad=np.array([None], dtype=object))
    assert store.list() == []


# ------------------------------------------------------------ list / delete

LAYOUT = [
    "images/1/raw.npy",
    "images/1/display.json",
    "images/10/raw.npy",
    "images/2/raw.npy",
    "labels/1/r0.npz",
    "labels/1/sub/deep/r1.npz",
]


def _fill(store, keys):
    for key in keys:
        store.put_bytes(key, key.encode())


def test_list_by_prefix(store):
    _fill(store, LAYOUT)
    assert store.list() == sorted(LAYOUT)
    assert store.list("") == sorted(LAYOUT)
    assert store.list("images/1/") == ["images/1/display.json", "images/1/raw.npy"]
    assert store.list("images/1") == ["images/1/display.json", "images/1/raw.npy",
                                      "images/10/raw.npy"]
    assert store.list("labels/") == ["labels/1/r0.npz", "labels/1/sub/deep/r1.npz"]
    assert store.list("labels/1/sub/deep/r1.npz") == ["labels/1/sub/deep/r1.npz"]
    assert store.list("nothing/") == []
    assert store.list("images/3/") == []


def test_delete_is_idempotent_and_exact(store):
    _fill(store, LAYOUT)
    store.delete("images/1/raw.npy")
    store.delete("images/1/raw.npy")  # already gone: fine
    store.delete("never/existed")
    store.delete("images")  # a folder-like prefix is not a blob
    assert not store.exists("images/1/raw.npy")
    assert store.list() == sorted(set(LAYOUT) - {"images/1/raw.npy"})


def test_delete_prefix_counts_and_spares_siblings(store):
    _fill(store, LAYOUT)
    assert store.delete_prefix("images/1/") == 2
    assert store.list() == ["images/10/raw.npy", "images/2/raw.npy", "labels/1/r0.npz",
                            "labels/1/sub/deep/r1.npz"]
    assert store.delete_prefix("labels/") == 2
    assert store.delete_prefix("labels/") == 0
    assert store.delete_prefix("") == 2
    assert store.list() == []


def test_a_deleted_folder_can_become_a_blob(store):
    store.put_bytes("crops/5/labels.npz", b"x")
    store.delete("crops/5/labels.npz")
    store.put_bytes("crops/5", b"now a blob")
    assert store.list("crops/") == ["crops/5"]


def test_list_and_delete_prefix_page_through_more_than_1000_keys(store):
    keys = [f"many/{i % 7}/{i:05d}.bin" for i in range(1010)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: store.put_bytes(key, b"."), keys))
    store.put_bytes("many-not/x", b".")
    store.put_bytes("other/y", b".")
    assert store.list("many/") == sorted(keys)
    assert len(store.list("")) == 1012
    assert store.delete_prefix("many/") == 1010
    assert store.list("many/") == []
    assert store.list() == ["many-not/x", "other/y"]


# ------------------------------------------------------------- hostile keys

WRITE_OPERATIONS = {
    "put_bytes": lambda store, key: store.put_bytes(key, b"pwned"),
    "put_array": lambda store, key: store.put_array(key, np.ones(2, dtype=np.int32)),
    "put_arrays": lambda store, key: store.put_arrays(key, a=np.ones(2, dtype=np.int32)),
    "delete": lambda store, key: store.delete(key),
}
READ_OPERATIONS = {
    "get_bytes": lambda store, key: store.get_bytes(key),
    "get_array": lambda store, key: store.get_array(key),
    "get_arrays": lambda store, key: store.get_arrays(key),
    "exists": lambda store, key: store.exists(key),
    "presigned_url": lambda store, key: store.presigned_url(key),
}
HOSTILE = ["../x", "a/../../b", "a//b", "C:\\x", "a\x00b", "", "..", "a/", "../../../../tmp/x"]


@pytest.mark.parametrize("operation", sorted(WRITE_OPERATIONS))
def test_hostile_keys_never_write_outside_the_store(store, operation, tmp_path, request):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep.txt").write_bytes(b"precious")
    outside_abs = str(tmp_path / "outside" / "keep.txt")  # absolute key, safe to target
    store.put_bytes("inside/existing", b"ok")
    before = _all_objects(store, request, tmp_path)
    for key in HOSTILE + [outside_abs, "/" + S3_PREFIX + "/inside/existing"]:
        with pytest.raises(InvalidKeyError):
            WRITE_OPERATIONS[operation](store, key)
    assert _all_objects(store, request, tmp_path) == before
    assert (tmp_path / "outside" / "keep.txt").read_bytes() == b"precious"
    assert store.get_bytes("inside/existing") == b"ok"


@pytest.mark.parametrize("operation", sorted(READ_OPERATIONS))
def test_hostile_keys_are_rejected_before_reading(store, operation):
    for key in HOSTILE + ["/etc/passwd", "/etc/hostname"]:
        with pytest.raises(InvalidKeyError):
            READ_OPERATIONS[operation](store, key)


@pytest.mark.parametrize("prefix", ["../", "/", "/etc/", "a//", "../images/", "a/../", "C:\\"])
def test_hostile_prefixes_are_rejected(store, prefix):
    store.put_bytes("images/1/raw.npy", b"x")
    with pytest.raises(InvalidKeyError):
        store.list(prefix)
    with pytest.raises(InvalidKeyError):
        store.delete_prefix(prefix)
    assert store.list() == ["images/1/raw.npy"]


# ---------------------------------------------------------------- atomicity


def test_concurrent_reader_only_sees_complete_versions(store):
    size = 2 << 20
    versions = 12
    store.put_bytes("big/blob.bin", bytes([0]) * size)
    done = threading.Event()
    problems, seen = [], set()

    def write():
        try:
            for version in range(1, versions + 1):
                store.put_bytes("big/blob.bin", bytes([version]) * size)
        finally:
            done.set()

    def read():
        while not done.is_set():
            try:
                data = store.get_bytes("big/blob.bin")
            except Exception as exc:  # a missing or broken blob is a failure too
                problems.append(repr(exc))
                continue
            if len(data) != size or data.count(data[:1]) != size:
                problems.append(f"read {len(data)} bytes, not one complete version")
                continue
            seen.add(data[0])

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert problems == []
    assert seen and seen <= set(range(versions + 1))
    assert store.get_bytes("big/blob.bin") == bytes([versions]) * size


def test_local_temp_and_foreign_files_are_never_listed(tmp_path):
    store = LocalStore(tmp_path)
    store.put_bytes("images/1/raw.npy", b"x")
    (tmp_path / "images" / "1" / ".~raw.npy.abc123.tmp").write_bytes(b"half")
    (tmp_path / "images" / "1" / "bad name.npy").write_bytes(b"?")
    assert store.list() == ["images/1/raw.npy"]
    assert store.list("images/1/") == ["images/1/raw.npy"]


def test_local_writes_leave_no_temp_files(tmp_path):
    store = LocalStore(tmp_path)
    for i in range(20):
        store.put_bytes(f"a/{i % 3}.bin", bytes(i))
    names = [name for _, _, files in os.walk(tmp_path) for name in files]
    assert sorted(names) == ["0.bin", "1.bin", "2.bin"]


def test_sweeping_removes_only_old_leftovers_of_interrupted_writes(store, tmp_path):
    store.put_bytes("revisions/1/1.npz", b"kept")
    if isinstance(store, LocalStore):  # what a kill -9 between mkstemp and rename leaves
        folder = store.root / "revisions" / "1"
        old, fresh = folder / ".~2.npz.abc.tmp", folder / ".~3.npz.def.tmp"
        old.write_bytes(b"half")
        fresh.write_bytes(b"being written")
        os.utime(old, (time.time() - 7200, time.time() - 7200))
        assert store.sweep_partial_writes(older_than_s=3600) == 1
        assert not old.exists() and fresh.exists()  # a young one may be a write in progress
    else:
        assert store.sweep_partial_writes() == 0
    assert store.list() == ["revisions/1/1.npz"] and store.get_bytes("revisions/1/1.npz") == b"kept"


def test_local_failed_write_keeps_the_previous_version(tmp_path, monkeypatch):
    store = LocalStore(tmp_path)
    store.put_bytes("labels/1.npz", b"version 1")

    def broken_replace(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(StorageError, match="No space left"):
        store.put_bytes("labels/1.npz", b"version 2")
    monkeypatch.undo()
    assert store.get_bytes("labels/1.npz") == b"version 1"
    assert os.listdir(tmp_path / "labels") == ["1.npz"]


def test_local_symlink_out_of_the_root_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    store = LocalStore(tmp_path / "store")
    (tmp_path / "store" / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidKeyError, match="outside"):
        store.get_bytes("link/secret")
    with pytest.raises(InvalidKeyError):
        store.put_bytes("link/new", b"x")
    with pytest.raises(InvalidKeyError):
        store.delete("link/secret")
    with pytest.raises(InvalidKeyError):
        store.list("link/")
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_bytes() == b"secret"
    assert store.list() == []


def test_local_key_blocked_by_a_blob_gives_a_clear_error(tmp_path):
    store = LocalStore(tmp_path)
    store.put_bytes("a", b"file")
    with pytest.raises(StorageError, match="'a/b'"):
        store.put_bytes("a/b", b"x")


# ------------------------------------------------- presigned URLs and health


def test_presigned_url(store):
    store.put_bytes("exports/data.npz", b"payload bytes")
    url = store.presigned_url("exports/data.npz", expires_s=60)
    if isinstance(store, LocalStore):
        assert url is None
    else:
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read() == b"payload bytes"
    for bad in (0, -1, 7 * 24 * 3600 + 1):
        with pytest.raises(ValueError, match="expires_s"):
            store.presigned_url("exports/data.npz", expires_s=bad)


def test_check_passes_on_a_working_store(store):
    store.check()


def test_local_check_fails_when_the_root_is_gone(tmp_path):
    store = LocalStore(tmp_path / "store")
    (tmp_path / "store").rmdir()
    (tmp_path / "store").write_bytes(b"not a folder")
    with pytest.raises(StorageError, match="not writable"):
        store.check()


def test_local_root_that_is_a_file_is_a_storage_error(tmp_path):
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(StorageError, match="cannot create"):
        LocalStore(tmp_path / "file")


# ------------------------------------------------------------- S3 specifics


@pytest.mark.s3
def test_s3_keys_live_under_the_prefix(s3_store, raw_s3, s3_endpoint):
    s3_store.put_bytes("images/1/raw.npy", b"x", content_type="application/x-npy")
    listed = raw_s3.list_objects_v2(Bucket=s3_store.bucket)["Contents"]
    assert [entry["Key"] for entry in listed] == [f"{S3_PREFIX}/images/1/raw.npy"]
    head = raw_s3.head_object(Bucket=s3_store.bucket, Key=f"{S3_PREFIX}/images/1/raw.npy")
    assert head["ContentType"] == "application/x-npy"
    whole_bucket = S3Store(s3_store.bucket, endpoint_url=s3_endpoint)
    assert whole_bucket.list() == [f"{S3_PREFIX}/images/1/raw.npy"]
    sibling = S3Store(s3_store.bucket, S3_PREFIX + "-other", endpoint_url=s3_endpoint)
    assert sibling.list() == []
    assert sibling.delete_prefix("") == 0
    assert s3_store.exists("images/1/raw.npy")


@pytest.mark.s3
def test_s3_missing_bucket_is_a_storage_error_naming_it(s3_endpoint, fake_aws):
    store = S3Store("no-such-bucket", endpoint_url=s3_endpoint)
    for action in (store.check, lambda: store.get_bytes("x"), lambda: store.list(),
                   lambda: store.put_bytes("x", b"x")):
        with pytest.raises(StorageError, match="no-such-bucket") as info:
            action()
        assert not isinstance(info.value, BlobNotFoundError)


@pytest.mark.s3
def test_s3_unreachable_endpoint_fails_check(fake_aws):
    store = S3Store("bucket", endpoint_url="http://127.0.0.1:9")  # discard port: refused
    with pytest.raises(StorageError, match="127.0.0.1:9"):
        store.check()


@pytest.mark.s3
def test_s3_create_bucket_is_idempotent(s3_store, s3_endpoint):
    again = S3Store(s3_store.bucket, S3_PREFIX, endpoint_url=s3_endpoint, create_bucket=True)
    s3_store.put_bytes("k", b"v")
    assert again.get_bytes("k") == b"v"


@pytest.mark.parametrize("bucket", ["", "ab", "Bad_Bucket", "-start", "a" * 64, "a..b"])
def test_s3_bad_bucket_names_are_refused(bucket):
    with pytest.raises(StorageError, match="bucket name"):
        S3Store(bucket)


# ----------------------------------------------------------------- open_store


def test_open_store_relative_file_url_is_relative_to_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = open_store("file://./instance/storage")
    assert isinstance(store, LocalStore)
    assert store.root == (tmp_path / "instance" / "storage").resolve()
    assert store.root.is_dir()
    assert store.url == store.root.as_uri()


def test_open_store_absolute_file_url_and_plain_path(tmp_path):
    by_url = open_store((tmp_path / "with space").as_uri())
    assert by_url.root == (tmp_path / "with space").resolve()
    by_path = open_store(str(tmp_path / "plain"))
    assert isinstance(by_path, LocalStore)
    assert by_path.root == (tmp_path / "plain").resolve()
    by_url.put_bytes("k", b"v")
    assert open_store(by_url.url).get_bytes("k") == b"v"


def test_open_store_s3_url_parsing(fake_aws):
    store = open_store("s3://my-bucket/some/prefix/", s3_endpoint_url="http://127.0.0.1:9")
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix, store.url) == ("my-bucket", "some/prefix",
                                                       "s3://my-bucket/some/prefix")
    bare = open_store("s3://my-bucket")
    assert (bare.bucket, bare.prefix, bare.url) == ("my-bucket", "", "s3://my-bucket")


@pytest.mark.s3
def test_open_store_s3_url_round_trip_over_http(s3_endpoint, fake_aws):
    bucket = f"open-{uuid.uuid4().hex[:12]}"
    store = open_store(f"s3://{bucket}/p", s3_endpoint_url=s3_endpoint, create_bucket=True)
    store.put_arrays("labels/1/r0.npz", whole_cell=np.arange(4, dtype=np.int32))
    again = open_store(store.url, s3_endpoint_url=s3_endpoint)
    np.testing.assert_array_equal(again.get_arrays("labels/1/r0.npz")["whole_cell"],
                                  np.arange(4, dtype=np.int32))


@pytest.mark.parametrize(
    "url",
    ["", "   ", "gs://bucket/x", "http://host/path", "ftp://x", "s3://", "s3:///prefix",
     "s3://Bad_Bucket/x", "s3://bucket/../x", "s3://bucket/p?versionId=1", "file://",
     "file:relative"],
)
def test_open_store_rejects_other_urls_naming_them(url):
    with pytest.raises(StorageError) as info:
        open_store(url)
    assert repr(url) in str(info.value) or "bucket name" in str(info.value)
