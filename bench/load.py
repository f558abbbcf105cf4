"""Load on the crowd API: gunicorn on PostgreSQL + Redis + the configured storage, over loopback.

Starts ``gunicorn -c deploy/gunicorn.conf.py backend.wsgi:app`` (WEB_WORKERS x WEB_THREADS, the
production defaults 4 x 4, JSON access logs at LOG_LEVEL, Prometheus multi-process mode) on a
fresh PostgreSQL database (created and dropped here), a private Redis queue prefix and a storage
folder (STORAGE_URL when set, else a temporary folder), seeds a project of synthetic 1024 x 1024
3-channel images cut into 270-px crops, then:

1. **paced** — N simulated annotators (default 200, arriving evenly over 10 s), each on its own
   keep-alive connection, at a human pace (a think time drawn from 1-5 s before every action,
   the first included): lease a task -> fetch the crop's channels -> fetch its labels -> save
   10 revisions (a 12 x 12 px brush stroke each) -> one server tool (threshold on a cell's
   box) -> submit. Latency p50/p99 per endpoint.
2. **saturation** — the same flow with no think time, by closed-loop clients at rising
   concurrency (4, 8, 16, ...) for a few seconds each, until throughput stops growing.
3. **crop fetch vs static** — at the best concurrency, clients fetch crop channels for a few
   seconds, then a static file of the same byte size from ``/static/pages/`` (written into
   ``frontend/`` for the run and removed after), twice over: the ratio of the summed rates.

Afterwards every revision that got a 201 is read back from the database and the store and
compared with the bytes sent (``lost_revisions``: missing or different). Any unexpected status,
reset or timeout is an error.

Prints a human table, and as the last line one JSON object: requests_per_s (paced), p50_ms and
p99_ms per endpoint (paced), saturation_requests_per_s, errors, lost_revisions,
crop_fetch_vs_static (plus the figures behind them).

Needs PostgreSQL (TEST_PG_URL, default postgresql://postgres@127.0.0.1:5432/test) and Redis
(TEST_REDIS_URL, default redis://127.0.0.1:6379/0). Traffic goes to 127.0.0.1 only; the run
stops by itself (bounded counts and time: about 2 minutes with the defaults).

Usage: python bench/load.py [--annotators 200] [--think 1 5] [--ramp-s 10] [--revisions 10]
                            [--web-workers 4] [--web-threads 4] [--step-s 6]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a plain checkout

PG_ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ENDPOINTS = ("lease", "crop_fetch", "labels_fetch", "revision_save", "server_tool", "submit")
IDLE_REOPEN_S = 4.0  # gunicorn closes keep-alive connections idle for 5 s (deploy/gunicorn.conf.py)
REQUEST_TIMEOUT_S = 30.0
CROP_SIZE, OVERLAP = 270, 27


# --- HTTP over asyncio streams ----------------------------------------------------------------
@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float


class HttpConnection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:port, reopened when it idled too long.

    A request on a reused connection that the server closed before answering is sent once more
    on a fresh connection (what browsers do), except POST.
    """

    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0
        self.retries = 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method: str, path: str, headers: dict | None = None, body: bytes = b"") -> Reply:
        head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        for attempt in (0, 1):
            reused = self.writer is not None and time.monotonic() - self.last_used < IDLE_REOPEN_S
            if not reused:
                self.close()
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            started = time.perf_counter()
            try:
                self.writer.write(data)
                await self.writer.drain()
                status_line = await self.reader.readline()
                if not status_line:
                    raise ConnectionResetError("the server closed the connection before answering")
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if reused and attempt == 0 and method != "POST":
                    self.retries += 1
                    continue
                raise
            reply = await self._read_rest(status_line, started)
            self.last_used = time.monotonic()
            if reply.headers.get("connection", "").lower() == "close":
                self.close()
            return reply
        raise AssertionError("unreachable")

    async def _read_rest(self, status_line: bytes, started: float) -> Reply:
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                parts.append(await self.reader.readexactly(size + 2))
                if size == 0:
                    break
            body = b"".join(p[:-2] for p in parts)
        else:
            body = await self.reader.read()
            self.close()
        return Reply(status, headers, body, time.perf_counter() - started)


@dataclass
class Recorder:
    """Latencies by endpoint, errors with a few samples, completion times."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    done_at: list[float] = field(default_factory=list)
    errors: int = 0
    samples: list[str] = field(default_factory=list)

    async def call(self, conn: HttpConnection, endpoint: str, method: str, path: str, expect: int,
                   headers: dict | None = None, body: bytes = b"") -> Reply | None:
        try:
            reply = await asyncio.wait_for(conn.request(method, path, headers, body), REQUEST_TIMEOUT_S)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
            conn.close()
            return self._error(f"{endpoint}: {type(exc).__name__}: {exc}")
        if reply.status != expect:
            return self._error(f"{endpoint}: HTTP {reply.status}: {reply.body[:200]!r}")
        self.latencies.setdefault(endpoint, []).append(reply.seconds)
        self.done_at.append(time.monotonic())
        return reply

    def _error(self, message: str) -> None:
        self.errors += 1
        if len(self.samples) < 10:
            self.samples.append(message)
        return None


# --- seeding ------------------------------------------------------------------------------------
@dataclass
class CropWork:
    """What an annotator sends for one crop: revision bodies (deflate int32) + their digests, a tool."""

    shape: tuple[int, int]
    revisions: list[tuple[bytes, str]]
    tool_body: bytes


def label_digest(labels: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(labels, dtype="<i4").tobytes()).hexdigest()


def crop_work(channels: np.ndarray, labels: np.ndarray, n_revisions: int, seed: int) -> CropWork:
    """Brush strokes (new 12 x 12 px cells) on the predicted (2,h,w) int32 labels, and a threshold
    request on the box of one predicted cell that the server tool accepts."""
    from backend.api.wire import box_array, box_payload
    from backend.errors import UserError
    from backend.services.label_tools import run_tool

    rng = np.random.default_rng(seed)
    h, w = labels.shape[1:]
    current, next_id, revisions = labels.copy(), int(labels.max()) + 1, []
    for _ in range(n_revisions):
        y, x = int(rng.integers(0, h - 12)), int(rng.integers(0, w - 12))
        current[0, y:y + 12, x:x + 12] = next_id
        next_id += 1
        raw = np.ascontiguousarray(current, dtype="<i4").tobytes()
        revisions.append((zlib.compress(raw, 1), hashlib.sha1(raw).hexdigest()))
    for cell in rng.permutation(np.unique(labels[0][labels[0] > 0])):
        ys, xs = np.nonzero(labels[0] == cell)
        box = [max(int(ys.min()) - 4, 0), max(int(xs.min()) - 4, 0), min(int(ys.max()) + 5, h), min(int(xs.max()) + 5, w)]
        body = {"feature": 0, "bbox": box, "label": int(cell),
                "labels": box_payload(labels[0, box[0]:box[2], box[1]:box[3]])}
        try:
            run_tool("threshold", channels, (h, w), body, decode_box=box_array)
        except UserError:
            continue
        return CropWork((h, w), revisions, json.dumps(body).encode())
    raise RuntimeError("no cell of the crop suits the threshold tool")


def seed_project(rt, n_images: int, size: int, k: int, n_revisions: int) -> tuple[int, dict[int, CropWork]]:
    """A project of synthetic images (their truth as the round-0 prediction), cut into crops."""
    from backend.models import Round
    from backend.services import labels_io
    from backend.services.demo import synthetic_npz
    from backend.services.images import Upload, import_images
    from backend.services.projects import create_project
    from backend.services.stitching import crop_image

    uploads = [Upload(f"tissue{i}.npz", synthetic_npz(size, size, 3, seed=i)) for i in range(n_images)]
    with rt.db.session() as s:
        project = create_project(s, f"load-{uuid.uuid4().hex[:8]}", ["DAPI", "membrane", "CD3"],
                                 crop_size=CROP_SIZE, overlap=OVERLAP, annotators_per_crop=k, gold_fraction=0.0)
        images = import_images(s, rt.store, project, uploads)
        rnd = Round(project_id=project.id, number=0)
        s.add(rnd)
        s.flush()
        crops = []
        for image in images:
            truth = labels_io.get_labels(rt.store, image.ground_truth_key)
            labels_io.put_labels(rt.store, labels_io.prediction_key(image.id, 0), truth)
            crops += [(c.id, c.key) for c in crop_image(s, rt.store, image.id, rnd.id)]
        project_id = project.id
    work = {}
    for crop_id, key in crops:
        arrays = rt.store.get_arrays(key)
        work[crop_id] = crop_work(arrays["channels"], arrays["labels"], n_revisions, seed=crop_id)
    return project_id, work


# --- the simulated annotator ----------------------------------------------------------------------
@dataclass
class Site:
    port: int
    project_id: int
    work: dict[int, CropWork]


async def annotate(conn: HttpConnection, site: Site, worker: str, rec: Recorder, accepted: list,
                   n_revisions: int, think: tuple[float, float] | None, rng: random.Random) -> None:
    """lease -> channels -> labels -> n revisions -> threshold tool -> submit, pausing before each."""

    async def pause():
        if think:
            await asyncio.sleep(rng.uniform(*think))

    await pause()
    lease = {"params": {"worker": worker}}
    r = await rec.call(conn, "lease", "POST", f"/api/crowd/{site.project_id}/lease", 200,
                       {"Content-Type": "application/json"}, json.dumps(lease).encode())
    if r is None:
        return
    task = json.loads(r.body)
    crop_id, assignment_id = task["task"]["crop_id"], task["task"]["assignment_id"]
    auth = {"Authorization": f"Bearer {task['token']}"}
    work = site.work[crop_id]
    await pause()
    if await rec.call(conn, "crop_fetch", "GET", f"/api/crowd/crops/{crop_id}/channels", 200, auth) is None:
        return
    await pause()
    r = await rec.call(conn, "labels_fetch", "GET", f"/api/crowd/crops/{crop_id}/labels", 200, auth)
    if r is None:
        return
    revision = int(r.headers["x-revision"])
    put_headers = {**auth, "X-Dtype": "int32", "X-Shape": f"2,{work.shape[0]},{work.shape[1]}"}
    for i in range(n_revisions):
        await pause()
        body, digest = work.revisions[i % len(work.revisions)]
        r = await rec.call(conn, "revision_save", "PUT", f"/api/crowd/crops/{crop_id}/labels", 201,
                           {**put_headers, "X-Base-Revision": str(revision), "X-Edit-Count": str(i + 1)}, body)
        if r is None:
            return
        revision = json.loads(r.body)["revision"]
        accepted.append((assignment_id, revision, digest))
    json_auth = {**auth, "Content-Type": "application/json"}
    await pause()
    await rec.call(conn, "server_tool", "POST", f"/api/crowd/crops/{crop_id}/tools/threshold", 200,
                   json_auth, work.tool_body)
    await pause()
    await rec.call(conn, "submit", "POST", f"/api/crowd/crops/{crop_id}/submit", 200, json_auth,
                   json.dumps({"active_seconds": 60, "edit_count": n_revisions}).encode())


async def paced_phase(site: Site, n: int, n_revisions: int, think: tuple[float, float], ramp_s: float,
                      accepted: list, seed: int) -> tuple[Recorder, float, int]:
    """``n`` annotators arriving evenly over ``ramp_s`` seconds, each at the human pace ``think``;
    returns the recorder, the phase's duration and the resends on closed keep-alive connections."""
    rec = Recorder()

    async def one(i: int) -> int:
        await asyncio.sleep(ramp_s * i / max(n, 1))
        conn = HttpConnection(site.port)
        try:
            await annotate(conn, site, f"paced-{i}", rec, accepted, n_revisions, think, random.Random(seed + i))
        finally:
            conn.close()
        return conn.retries

    started = time.monotonic()
    retries = await asyncio.gather(*(one(i) for i in range(n)))
    return rec, time.monotonic() - started, sum(retries)


async def closed_loop(site: Site, clients: int, seconds: float, n_revisions: int, accepted: list,
                      tag: str) -> tuple[Recorder, float]:
    """``clients`` annotators with no think time, each starting new tasks until the time is up;
    returns the recorder and the request rate over the window."""
    rec = Recorder()
    deadline = time.monotonic() + seconds
    started = time.monotonic()

    async def one(c: int) -> None:
        flow = 0
        while time.monotonic() < deadline:  # each flow is another annotator: a new connection
            conn = HttpConnection(site.port)
            try:
                await annotate(conn, site, f"{tag}-{c}-{flow}", rec, accepted, n_revisions, None, random.Random())
            finally:
                conn.close()
            flow += 1

    await asyncio.gather(*(one(c) for c in range(clients)))
    in_window = sum(1 for t in rec.done_at if t <= deadline)
    return rec, in_window / (deadline - started)


async def fetch_rate(site: Site, clients: int, seconds: float, target) -> tuple[float, Recorder]:
    """Requests/s of ``clients`` connections each looping ``target(conn, rec)`` for ``seconds``."""
    rec = Recorder()
    conns = [HttpConnection(site.port) for _ in range(clients)]
    for c in conns:  # open the connections outside the window, one by one as browsers arrive
        await c.request("GET", "/livez")
        await asyncio.sleep(0.05)
    deadline = time.monotonic() + seconds
    started = time.monotonic()

    async def loop(conn):
        while time.monotonic() < deadline:
            await target(conn, rec)

    await asyncio.gather(*(loop(c) for c in conns))
    for c in conns:
        c.close()
    return sum(1 for t in rec.done_at if t <= deadline) / (deadline - started), rec


async def crop_vs_static(site: Site, clients: int, seconds: float, static_dir: Path) -> dict:
    """Crop-channel fetches/s against static-file fetches/s of the same byte size."""
    rec, tokens = Recorder(), []
    conn = HttpConnection(site.port)
    for i in range(clients):
        r = await rec.call(conn, "lease", "POST", f"/api/crowd/{site.project_id}/lease", 200,
                           {"Content-Type": "application/json"},
                           json.dumps({"params": {"worker": f"fetcher-{i}"}}).encode())
        if r is not None:
            task = json.loads(r.body)
            tokens.append((task["task"]["crop_id"], {"Authorization": f"Bearer {task['token']}"}))
    if not tokens:
        raise RuntimeError(f"no task could be leased for the fetch comparison: {rec.samples}")
    probe = await conn.request("GET", f"/api/crowd/crops/{tokens[0][0]}/channels", tokens[0][1])
    conn.close()
    # a .js under pages/: the only kind of file the static route serves
    static_name = f"bench-load-{uuid.uuid4().hex[:8]}.js"
    static_path = static_dir / static_name
    static_path.write_bytes(os.urandom(len(probe.body)))
    try:
        turn = itertools.count()

        async def crop(conn, rec):
            crop_id, auth = tokens[next(turn) % len(tokens)]
            await rec.call(conn, "crop_fetch", "GET", f"/api/crowd/crops/{crop_id}/channels", 200, auth)

        async def static(conn, rec):
            await rec.call(conn, "static", "GET", f"/static/pages/{static_name}", 200)

        rates = {"crop": [], "static": []}
        for _ in range(2):  # alternate, so a change in the machine's load hits both alike
            for kind, target in (("crop", crop), ("static", static)):
                rate, run = await fetch_rate(site, clients, seconds / 2, target)
                rates[kind].append(rate)
                rec.errors += run.errors
                rec.samples += run.samples
    finally:
        static_path.unlink(missing_ok=True)
    return {"bytes": len(probe.body), "crop_fetch_per_s": float(np.mean(rates["crop"])),
            "static_per_s": float(np.mean(rates["static"])), "errors": rec.errors, "samples": rec.samples}


# --- server lifecycle -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_database() -> tuple[str, callable]:
    """A fresh PostgreSQL database; returns its URL and a function that drops it."""
    import psycopg2
    from sqlalchemy.engine import make_url

    admin = make_url(PG_ADMIN_URL)
    conn = psycopg2.connect(host=admin.host, port=admin.port or 5432, user=admin.username,
                            dbname=admin.database, password=admin.password, connect_timeout=5)
    conn.autocommit = True
    name = f"looplabel_load_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.close()

    return admin.set(database=name).render_as_string(hide_password=False), drop


def start_gunicorn(env: dict, port: int, workers: int, threads: int, log_path: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
           "--workers", str(workers), "--threads", str(threads), "backend.wsgi:app"]
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    stop_gunicorn(proc)
    raise RuntimeError(f"gunicorn did not answer /livez within 60 s: {log_path.read_text()[-2000:]}")


def worker_cpu_s(master_pid: int) -> dict[int, float]:
    """CPU seconds (user + system) used so far by each gunicorn worker (Linux /proc; else {})."""
    try:
        pids = [int(p) for p in Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()]
        tick = os.sysconf("SC_CLK_TCK")
        used = {}
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            used[pid] = (int(fields[11]) + int(fields[12])) / tick
        return used
    except (OSError, ValueError):
        return {}


def stop_gunicorn(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=35)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def lost_revisions(rt, accepted: list) -> int:
    """Accepted (assignment, number, digest) whose revision row or stored labels are missing or differ."""
    from sqlalchemy import select

    from backend.models import LabelRevision
    from backend.services import labels_io
    from backend.storage import StorageError

    lost = 0
    with rt.db.session() as s:
        keys = {(a, n): k for a, n, k in s.execute(
            select(LabelRevision.assignment_id, LabelRevision.number, LabelRevision.key)
            .where(LabelRevision.assignment_id.is_not(None)))}
    for assignment_id, number, digest in accepted:
        key = keys.get((assignment_id, number))
        try:
            ok = key is not None and label_digest(labels_io.get_labels(rt.store, key)) == digest
        except StorageError:
            ok = False
        lost += not ok
    return lost


# --- report ---------------------------------------------------------------------------------------
def percentiles_ms(values: list[float]) -> tuple[float, float, float]:
    a = np.asarray(values) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 99)), float(a.max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--annotators", type=int, default=200)
    ap.add_argument("--think", type=float, nargs=2, default=(1.0, 5.0), metavar=("MIN_S", "MAX_S"))
    ap.add_argument("--ramp-s", type=float, default=10.0, help="annotators arrive evenly over this many seconds")
    ap.add_argument("--revisions", type=int, default=10)
    ap.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_WORKERS", 4)))
    ap.add_argument("--web-threads", type=int, default=int(os.environ.get("WEB_THREADS", 4)))
    ap.add_argument("--images", type=int, default=4, help="synthetic 1024 x 1024 images (25 crops each)")
    ap.add_argument("--step-s", type=float, default=6.0, help="seconds per saturation step and per fetch run")
    ap.add_argument("--max-concurrency", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from backend.config import Settings
    from backend.runtime import Runtime

    tmp = Path(tempfile.mkdtemp(prefix="looplabel-load-"))
    storage_url = os.environ.get("STORAGE_URL") or f"file://{tmp / 'storage'}"
    db_url, drop_database = create_database()
    prefix = f"load-{uuid.uuid4().hex[:8]}-"
    env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": REDIS_URL, "QUEUE_PREFIX": prefix,
           "STORAGE_URL": storage_url, "SECRET_KEY": uuid.uuid4().hex, "LOOPLABEL_INSTANCE": str(tmp / "instance"),
           "WEB_WORKERS": str(args.web_workers), "WEB_THREADS": str(args.web_threads),
           "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"), "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
           # every simulated annotator comes from 127.0.0.1: the crowd's per-address and per-platform
           # lease limits (40 and 600 a minute by default) are lifted for this run
           "LEASES_PER_ADDRESS_PER_MIN": "1000000", "LEASES_PER_PLATFORM_PER_MIN": "1000000"}
    rt = proc = None
    try:
        subprocess.run([sys.executable, "-m", "backend.cli", "db", "upgrade"], cwd=REPO, env=env, check=True,
                       capture_output=True)
        rt = Runtime(Settings.from_env(env))
        t0 = time.monotonic()
        project_id, work = seed_project(rt, args.images, 1024, k=20, n_revisions=args.revisions)
        seed_s = time.monotonic() - t0
        port = free_port()
        proc = start_gunicorn(env, port, args.web_workers, args.web_threads, tmp / "gunicorn.log")
        site = Site(port, project_id, work)
        accepted: list = []
        load_at_start = os.getloadavg()[0]
        print(f"load: {platform.node()} {os.cpu_count()} cpus, load avg {load_at_start:.2f}; gunicorn "
              f"{args.web_workers} workers x {args.web_threads} threads; {len(work)} crops x 20 annotators "
              f"(seeded in {seed_s:.1f} s); storage {storage_url.split('://')[0]}")

        cpu_before = worker_cpu_s(proc.pid)
        paced, paced_s, retries = asyncio.run(paced_phase(site, args.annotators, args.revisions,
                                                          tuple(args.think), args.ramp_s, accepted, args.seed))
        cpu_after = worker_cpu_s(proc.pid)
        worker_cpu = [round(cpu_after[pid] - cpu_before.get(pid, 0.0), 1) for pid in sorted(cpu_after)]
        paced_requests = sum(len(v) for v in paced.latencies.values())
        print(f"\npaced: {args.annotators} annotators arriving over {args.ramp_s:g} s, "
              f"think {args.think[0]:g}-{args.think[1]:g} s, "
              f"{paced_requests} requests in {paced_s:.1f} s = {paced_requests / paced_s:.1f} req/s, "
              f"{paced.errors} errors, {retries} resends on closed keep-alive connections; "
              f"gunicorn workers used {worker_cpu} CPU s")
        print(f"{'endpoint':<14} {'count':>6} {'p50_ms':>8} {'p99_ms':>8} {'max_ms':>8}")
        p50, p99 = {}, {}
        for name in ENDPOINTS:
            values = paced.latencies.get(name, [])
            if values:
                p50[name], p99[name], worst = percentiles_ms(values)
                print(f"{name:<14} {len(values):>6} {p50[name]:>8.1f} {p99[name]:>8.1f} {worst:>8.1f}")

        print(f"\nsaturation: full flows, no think time, {args.step_s:g} s per step")
        print(f"{'clients':>7} {'req/s':>8} {'errors':>6} {'p50_ms':>8} {'p99_ms':>8}")
        best_rate, best_clients, sat_errors, samples = 0.0, 0, 0, list(paced.samples)
        clients = 4
        while clients <= args.max_concurrency:
            rec, rate = asyncio.run(closed_loop(site, clients, args.step_s, args.revisions, accepted, f"sat{clients}"))
            everything = [v for vs in rec.latencies.values() for v in vs]
            q50, q99, _ = percentiles_ms(everything) if everything else (0, 0, 0)
            print(f"{clients:>7} {rate:>8.1f} {rec.errors:>6} {q50:>8.1f} {q99:>8.1f}")
            sat_errors += rec.errors
            samples += rec.samples
            grew = rate > best_rate * 1.05
            if rate > best_rate:
                best_rate, best_clients = rate, clients
            if not grew:
                break
            clients *= 2

        fetch = asyncio.run(crop_vs_static(site, max(best_clients, 4), args.step_s, REPO / "frontend" / "pages"))
        ratio = fetch["crop_fetch_per_s"] / max(fetch["static_per_s"], 1e-9)
        samples += fetch["samples"]
        print(f"\nfetch, {max(best_clients, 4)} clients, {fetch['bytes']} bytes each: crop channels "
              f"{fetch['crop_fetch_per_s']:.1f}/s, static file {fetch['static_per_s']:.1f}/s, ratio {ratio:.2f}")

        stop_gunicorn(proc)
        proc = None
        lost = lost_revisions(rt, accepted)
        errors = paced.errors + sat_errors + fetch["errors"]
        print(f"\nrevisions accepted {len(accepted)}, lost {lost}; errors {errors}")
        for line in samples[:10]:
            print(f"  error: {line}")
        summary = {
            "annotators": args.annotators, "web_workers": args.web_workers, "web_threads": args.web_threads,
            "load_avg_1m": [round(load_at_start, 2), round(os.getloadavg()[0], 2)],
            "requests_per_s": round(paced_requests / paced_s, 1), "paced_worker_cpu_s": worker_cpu,
            "p50_ms": {k: round(v, 1) for k, v in p50.items()},
            "p99_ms": {k: round(v, 1) for k, v in p99.items()},
            "saturation_requests_per_s": round(best_rate, 1), "saturation_clients": best_clients,
            "errors": errors, "lost_revisions": lost, "revisions_checked": len(accepted),
            "crop_fetch_per_s": round(fetch["crop_fetch_per_s"], 1), "static_per_s": round(fetch["static_per_s"], 1),
            "crop_fetch_vs_static": round(ratio, 3),
        }
    finally:
        if proc is not None:
            stop_gunicorn(proc)
        if rt is not None:
            from backend.queue import QUEUE_NAMES

            for q in QUEUE_NAMES:
                rt.queue.rq_queue(q).delete(delete_jobs=True)
            rt.close()
        drop_database()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
