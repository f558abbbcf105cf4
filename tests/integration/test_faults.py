"""Faults: kill -9 a gunicorn worker during revision saves, and an RQ worker during a stitch.

After the restart no accepted revision (HTTP 201) is lost or changed, no revision row names a
blob that is missing or damaged, and the killed stitch job, recovered when the next worker
starts (backend.services.recovery), completes exactly once. PostgreSQL (+ Redis for the jobs).

The kills are made deterministic where it matters: an upload is held half sent, or a request's
transaction is held on a row lock this test owns, and the worker process serving it is found
from /proc (the worker holding the connection's socket).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select, text

from backend.config import Settings
from backend.models import Crop, Job, LabelRevision, Round, Stitch
from backend.runtime import Runtime
from backend.services import labels_io
from backend.services.images import Upload, import_images
from backend.services.projects import create_project
from backend.services.recovery import recover_stale_jobs
from backend.services.stitching import crop_image
from tests.conftest import REPO, _free_port

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="finds worker processes through /proc")]


# --- processes ------------------------------------------------------------------------------------
def children(pid: int) -> set[int]:
    try:
        return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except FileNotFoundError:
        return set()


def holder_of_connection(pids: set[int], server_port: int, client_port: int) -> int | None:
    """The process among ``pids`` holding the server side of the TCP connection from
    ``client_port`` to ``server_port`` on 127.0.0.1 (from /proc/net/tcp and each /proc/<pid>/fd)."""
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return pid
            except OSError:
                continue
    return None


def wait_for(condition, timeout: float, what: str, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def service_env(pg_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": pg_url, "STORAGE_URL": f"file://{tmp_path / 'storage'}",
            "SECRET_KEY": "fault-secret", "LOOPLABEL_INSTANCE": str(tmp_path / "instance"),
            "LOG_LEVEL": "WARNING", **extra}


@contextmanager
def gunicorn(env: dict, tmp_path: Path, workers: int = 2, threads: int = 4):
    port = _free_port()
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
             "--workers", str(workers), "--threads", str(threads), "backend.wsgi:app"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        def up():
            if proc.poll() is not None:
                pytest.fail(f"gunicorn exited ({proc.returncode}): {log_path.read_text()[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/livez")
                return conn.getresponse().status == 200 and len(children(proc.pid)) == workers
            except OSError:
                return False

        wait_for(up, 60, "gunicorn to answer /livez", interval=0.2)
        yield proc, port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --- seeding --------------------------------------------------------------------------------------
def seeded_project(rt: Runtime, size: int = 100, crop: int = 64, k: int = 4) -> tuple[int, list[int]]:
    """A project with one synthetic 2-channel image cut into crops; its prediction: random disks."""
    rng = np.random.default_rng(7)
    buf = io.BytesIO()
    np.savez(buf, X=rng.integers(0, 1000, size=(size, size, 2), dtype=np.uint16))
    labels = np.zeros((2, size, size), np.int32)
    yy, xx = np.mgrid[:size, :size]
    for cell in range(1, 12):
        cy, cx = rng.integers(8, size - 8, 2)
        labels[0][(yy - cy) ** 2 + (xx - cx) ** 2 <= 36] = cell
    with rt.db.session() as s:
        project = create_project(s, f"faults-{uuid.uuid4().hex[:6]}", ["DAPI", "membrane"], crop_size=crop,
                                 overlap=8, annotators_per_crop=k)
        image = import_images(s, rt.store, project, [Upload("img.npz", buf.getvalue())])[0]
        rnd = Round(project_id=project.id, number=0)
        s.add(rnd)
        s.flush()
        labels_io.put_labels(rt.store, labels_io.prediction_key(image.id, 0), labels)
        return project.id, [c.id for c in crop_image(s, rt.store, image.id, rnd.id)]


@pytest.fixture
def web(pg_url, tmp_path):
    """A seeded project and gunicorn (2 workers) serving it; yields (runtime, project_id, master, port)."""
    env = service_env(pg_url, tmp_path)
    rt = Runtime(Settings.from_env(env))
    try:
        project_id, _ = seeded_project(rt)
        with gunicorn(env, tmp_path) as (proc, port):
            yield rt, project_id, proc, port
    finally:
        rt.close()


# --- crowd API over HTTP --------------------------------------------------------------------------
class Annotator:
    """One task leased over HTTP; saves revisions and remembers every one answered 201."""

    def __init__(self, port: int, project_id: int, name: str):
        self.port = port
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", f"/api/crowd/{project_id}/lease", json.dumps({"params": {"worker": name}}),
                     {"Content-Type": "application/json"})
        r = conn.getresponse()
        body = json.loads(r.read())
        assert r.status == 200, body
        conn.close()
        self.crop_id, self.assignment_id = body["task"]["crop_id"], body["task"]["assignment_id"]
        self.headers = {"Authorization": f"Bearer {body['token']}"}
        self.accepted: dict[int, str] = {}  # revision number -> sha1 of the int32 labels sent

    def current(self) -> tuple[np.ndarray, int]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", f"/api/crowd/crops/{self.crop_id}/labels", headers=self.headers)
        r = conn.getresponse()
        data = r.read()
        assert r.status == 200, data
        conn.close()
        shape = tuple(int(n) for n in r.headers["X-Shape"].split(","))
        return np.frombuffer(zlib.decompress(data), "<i4").reshape(shape).copy(), int(r.headers["X-Revision"])

    def request_bytes(self, labels: np.ndarray, base: int) -> bytes:
        body = zlib.compress(np.ascontiguousarray(labels, "<i4").tobytes(), 1)
        head = (f"PUT /api/crowd/crops/{self.crop_id}/labels HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: {self.headers['Authorization']}\r\nX-Base-Revision: {base}\r\n"
                f"X-Dtype: int32\r\nX-Shape: {','.join(map(str, labels.shape))}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        return head.encode() + body

    def save(self, labels: np.ndarray, base: int) -> int:
        """PUT a revision; returns its number (and remembers it) or raises on any failure."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        body = zlib.compress(np.ascontiguousarray(labels, "<i4").tobytes(), 1)
        conn.request("PUT", f"/api/crowd/crops/{self.crop_id}/labels", body,
                     {**self.headers, "X-Base-Revision": str(base), "X-Dtype": "int32",
                      "X-Shape": ",".join(map(str, labels.shape))})
        r = conn.getresponse()
        answer = r.read()
        conn.close()
        if r.status != 201:
            raise RuntimeError(f"HTTP {r.status}: {answer[:200]!r}")
        number = json.loads(answer)["revision"]
        self.accepted[number] = digest(labels)
        return number


def digest(labels: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(labels, "<i4").tobytes()).hexdigest()


def stroke(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = labels.copy()
    y, x = rng.integers(0, labels.shape[1] - 6, 2)
    out[0, y:y + 6, x:x + 6] = int(out.max()) + 1
    return out


def assert_revisions_intact(rt: Runtime, annotators: list[Annotator]) -> None:
    """Every 201 is stored with identical pixels; every revision row's blob loads; numbers have no
    gaps; the store lists only complete blobs."""
    with rt.db.session() as s:
        rows = s.execute(select(LabelRevision.assignment_id, LabelRevision.number, LabelRevision.key)
                         .where(LabelRevision.assignment_id.is_not(None))).all()
    by_assignment: dict[int, dict[int, str]] = {}
    for assignment_id, number, key in rows:
        by_assignment.setdefault(assignment_id, {})[number] = key
    for ann in annotators:
        stored = by_assignment.get(ann.assignment_id, {})
        assert sorted(stored) == list(range(1, len(stored) + 1)), f"revision numbers with gaps: {sorted(stored)}"
        for number, sent in ann.accepted.items():
            assert number in stored, f"accepted revision {number} of assignment {ann.assignment_id} is lost"
            assert digest(labels_io.get_labels(rt.store, stored[number])) == sent, f"revision {number} changed"
    for assignment in by_assignment.values():
        for key in assignment.values():
            labels_io.get_labels(rt.store, key)  # raises on a missing or damaged blob
    for key in rt.store.list("revisions/"):
        assert key.endswith(".npz") and "~" not in key
        labels_io.get_labels(rt.store, key)


def lock_waiters(rt: Runtime) -> int:
    """Sessions of this database waiting for a lock (each call in its own transaction: the
    statistics views are frozen for the length of one)."""
    with rt.db.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM pg_stat_activity "
                                 "WHERE datname = current_database() AND wait_event_type = 'Lock'")).scalar()


def kill_and_wait_for_replacement(master: subprocess.Popen, victim: int, n_workers: int = 2) -> None:
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in children(master.pid) and len(children(master.pid)) == n_workers,
             60, "gunicorn to replace the killed worker", interval=0.1)


# --- gunicorn -------------------------------------------------------------------------------------
def test_worker_killed_while_receiving_an_upload(web):
    rt, project_id, master, port = web
    ann = Annotator(port, project_id, "upload-kill")
    labels, base = ann.current()
    rng = np.random.default_rng(1)
    first = stroke(labels, rng)
    assert ann.save(first, base) == base + 1
    # A second save sent half-way, then its worker is killed while it waits for the rest.
    payload = ann.request_bytes(stroke(first, rng), base + 1)
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        sock.sendall(payload[: len(payload) // 2])
        victim = wait_for(lambda: holder_of_connection(children(master.pid), port, sock.getsockname()[1]),
                          10, "the worker serving the upload")
        kill_and_wait_for_replacement(master, victim)
        try:
            sock.sendall(payload[len(payload) // 2:])
            answer = sock.recv(100)
        except OSError:
            answer = b""
        assert not answer.startswith(b"HTTP/1.1 201"), "a killed worker cannot have accepted the upload"
    finally:
        sock.close()
    again, revision = ann.current()
    assert revision == base + 1 and digest(again) == digest(first)
    assert ann.save(stroke(first, rng), revision) == revision + 1  # the new worker carries on
    assert_revisions_intact(rt, [ann])


def test_worker_killed_while_its_save_waits_in_the_database(web):
    rt, project_id, master, port = web
    ann = Annotator(port, project_id, "db-kill")
    labels, base = ann.current()
    rng = np.random.default_rng(2)
    first = stroke(labels, rng)
    ann.save(first, base)
    lock_holder = rt.db.engine.connect()
    sock = None
    try:
        # Hold the assignment row: the save blocks when it inserts its revision row.
        lock_holder.execute(text("SELECT id FROM assignments WHERE id = :id FOR UPDATE"), {"id": ann.assignment_id})
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(ann.request_bytes(stroke(first, rng), base + 1))
        wait_for(lambda: lock_waiters(rt), 20, "the save to wait on the row lock")
        victim = holder_of_connection(children(master.pid), port, sock.getsockname()[1])
        assert victim is not None
        kill_and_wait_for_replacement(master, victim)
    finally:
        lock_holder.rollback()
        lock_holder.close()
        if sock is not None:
            sock.close()
    again, revision = ann.current()
    assert revision == base + 1 and digest(again) == digest(first)
    assert not rt.store.exists(labels_io.revision_key(ann.assignment_id, base + 2)), \
        "a save that never committed must leave no blob behind"
    assert ann.save(stroke(first, rng), revision) == revision + 1
    assert_revisions_intact(rt, [ann])


def test_workers_killed_at_random_under_concurrent_saves(web):
    rt, project_id, master, port = web
    annotators = [Annotator(port, project_id, f"busy-{i}") for i in range(4)]
    stop = threading.Event()
    failures: list[str] = []

    def keep_saving(ann: Annotator, seed: int) -> None:
        rng = np.random.default_rng(seed)
        while not stop.is_set():
            try:
                labels, base = ann.current()
                for _ in range(5):
                    labels = stroke(labels, rng)
                    base = ann.save(labels, base)
            except (OSError, http.client.HTTPException, RuntimeError) as exc:
                failures.append(str(exc))  # a killed request: start again from what the server has
                time.sleep(0.05)

    threads = [threading.Thread(target=keep_saving, args=(a, i), daemon=True) for i, a in enumerate(annotators)]
    for t in threads:
        t.start()
    try:
        chooser = random.Random(3)
        for _ in range(4):
            time.sleep(0.8)
            kill_and_wait_for_replacement(master, chooser.choice(sorted(children(master.pid))))
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert sum(len(a.accepted) for a in annotators) >= 10, failures[-5:]
    assert all(("HTTP 409" not in f and "HTTP 5" not in f) for f in failures), failures
    assert_revisions_intact(rt, annotators)


# --- RQ worker ------------------------------------------------------------------------------------
@pytest.fixture
def rq_env(pg_url, redis_url, tmp_path):
    """Settings for PostgreSQL + Redis (a private queue prefix) + a storage folder; queues removed after."""
    env = service_env(pg_url, tmp_path, REDIS_URL=redis_url, QUEUE_PREFIX=f"faults-{uuid.uuid4().hex[:8]}-")
    rt = Runtime(Settings.from_env(env))
    try:
        yield env, rt
    finally:
        from backend.queue import QUEUE_NAMES

        for q in QUEUE_NAMES:
            rt.queue.rq_queue(q).delete(delete_jobs=True)
        keys = rt.queue.connection.keys(f"{rt.settings.queue_prefix}looplabel:*")
        if keys:
            rt.queue.connection.delete(*keys)
        rt.close()


def fused_image(rt: Runtime) -> tuple[int, int]:
    """An image whose crops are all fused (to the prediction), ready to stitch."""
    project_id, crop_ids = seeded_project(rt, size=300, crop=64, k=1)
    with rt.db.session() as s:
        for crop in s.scalars(select(Crop).where(Crop.id.in_(crop_ids))):
            key = labels_io.fused_key(crop.id, crop.generation)
            labels_io.put_labels(rt.store, key, labels_io.get_labels(rt.store, crop.key))
            crop.fused_key, crop.status = key, "fused"
        crop = s.get(Crop, crop_ids[0])
        return crop.image_id, crop.round_id


def start_worker(env: dict, tmp_path: Path, name: str) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "backend.cli", "worker", "--queue", "default", "--burst"],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


@pytest.mark.redis
def test_rq_worker_killed_mid_stitch_is_recovered_and_completes_once(rq_env, tmp_path):
    env, rt = rq_env
    image_id, round_id = fused_image(rt)
    with rt.db.session() as s:
        job_id = rt.queue.enqueue(s, "worker.jobs.stitch_image", image_id=image_id, round_id=round_id).id
    lock_holder = rt.db.engine.connect()
    worker = None
    try:
        # Hold the image row: the stitch stops when it writes its Stitch row, after its blobs.
        lock_holder.execute(text("SELECT id FROM images WHERE id = :id FOR UPDATE"), {"id": image_id})
        worker, log = start_worker(env, tmp_path, "worker-1")
        wait_for(lambda: lock_waiters(rt), 60, f"the stitch to block on the image row ({log})", interval=0.1)
        with rt.db.session() as s:
            assert s.get(Job, job_id).status == "running"
        assert recover_stale_jobs(rt, min_age_s=0) == []  # its worker is alive: not touched
        for pid in children(worker.pid) | {worker.pid}:  # the worker and its work horse, as a crash would
            os.kill(pid, signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        lock_holder.rollback()
        lock_holder.close()
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
    with rt.db.session() as s:
        assert s.get(Job, job_id).status == "running"  # nobody recorded the death
        assert s.scalar(select(func.count()).select_from(Stitch)) == 0
    # The killed run may have left complete blobs (written atomically); none is partial.
    for key in rt.store.list("stitches/"):
        assert rt.store.get_arrays(key)  # raises on a damaged archive

    restarted, log = start_worker(env, tmp_path, "worker-2")
    assert restarted.wait(timeout=120) == 0, log.read_text()[-3000:]
    assert f"re-queued 1 job(s) whose worker had died: {job_id}" in log.read_text()
    with rt.db.session() as s:
        job = s.get(Job, job_id)
        assert job.status == "finished", (job.status, job.message, job.error)
        assert job.message.startswith("done")
        stitches = s.scalars(select(Stitch)).all()
        assert len(stitches) == 1 and job.result["stitch_id"] == stitches[0].id
        stitch = stitches[0]
        jobs = s.scalar(select(func.count()).select_from(Job))
    labels = labels_io.get_labels(rt.store, stitch.key)
    assert labels.dtype == np.int32 and labels.shape == (2, 300, 300) and stitch.n_cells > 0
    assert rt.store.get_arrays(stitch.conflicts_key)["conflicts"].shape == (2, 300, 300)
    assert jobs == 1  # recovery pushed the same row again; no duplicate job
    # Nothing left for RQ's own clean-up to mistake for an abandoned run.
    from rq.registry import FailedJobRegistry, StartedJobRegistry

    name = rt.queue.rq_queue("default").name
    assert StartedJobRegistry(name, connection=rt.queue.connection).get_job_ids(cleanup=False) == []
    assert FailedJobRegistry(name, connection=rt.queue.connection).get_job_ids(cleanup=False) == []
    # A later worker start finds nothing to recover.
    third, log = start_worker(env, tmp_path, "worker-3")
    assert third.wait(timeout=120) == 0 and "re-queued" not in log.read_text()


def _enqueue_marker(rt: Runtime) -> int:
    with rt.db.session() as s:
        return rt.queue.enqueue(s, "tests.job_functions.write_marker", key="marks/r", value="x").id


@pytest.mark.redis
def test_recovery_pushes_a_job_lost_from_redis_once_old_enough(rq_env):
    _, rt = rq_env
    job_id = _enqueue_marker(rt)
    assert recover_stale_jobs(rt, min_age_s=0) == []  # queued in RQ: alive
    rt.queue.rq_queue("default").delete(delete_jobs=True)  # e.g. Redis lost its data
    assert recover_stale_jobs(rt, min_age_s=3600) == []  # too young: its push may be on the way
    assert recover_stale_jobs(rt, min_age_s=0) == [job_id]
    assert rt.queue.depth("default") == 1
    with rt.db.session() as s:
        row = s.get(Job, job_id)
        assert row.status == "queued" and "missing" in row.message
    assert recover_stale_jobs(rt, min_age_s=0) == []  # pushed once, not twice


@pytest.mark.redis
def test_recovery_gives_up_after_max_attempts(rq_env):
    _, rt = rq_env
    job_id = _enqueue_marker(rt)
    for attempt in range(3):
        rt.queue.rq_queue("default").delete(delete_jobs=True)
        pushed = recover_stale_jobs(rt, min_age_s=0, max_attempts=2)
        assert pushed == ([job_id] if attempt < 2 else [])
    with rt.db.session() as s:
        row = s.get(Job, job_id)
        assert row.status == "failed" and "pushed again 2 times" in row.message and row.ended_at


@pytest.mark.redis
def test_recovery_runs_in_one_process_at_a_time(rq_env):
    _, rt = rq_env
    _enqueue_marker(rt)
    rt.queue.rq_queue("default").delete(delete_jobs=True)
    lock = rt.queue.connection.lock(f"{rt.settings.queue_prefix}looplabel:recovery-lock", timeout=30)
    assert lock.acquire(blocking=False)
    try:
        assert recover_stale_jobs(rt, min_age_s=0) == []
    finally:
        lock.release()
    assert len(recover_stale_jobs(rt, min_age_s=0)) == 1


def test_recovery_is_a_no_op_without_redis(tmp_path, pg_url):
    rt = Runtime(Settings.from_env(service_env(pg_url, tmp_path)))
    try:
        with rt.db.session() as s:
            s.add(Job(func="tests.job_functions.write_marker", kind="write_marker", args={}, status="running"))
        assert recover_stale_jobs(rt, min_age_s=0) == []
    finally:
        rt.close()
