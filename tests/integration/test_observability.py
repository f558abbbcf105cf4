"""Observability of the web tier: /livez, /readyz, /metrics, request ids in JSON logs, gzip.

The request hooks and the ops blueprint are added to the test app when ``backend/app.py`` does
not register them yet (``test_the_app_factory_wires_ops_and_observability`` says whether it does).
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
import zlib
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Response
from prometheus_client.parser import text_string_to_metric_families

from backend.app import build_app
from backend.api import ops
from backend.models import Annotator, Assignment, Crop, Image, Job, Project, Round, utcnow
from backend.observability import (
    COMPRESS_MIN_BYTES,
    JOB_BUCKETS_S,
    configure_logging,
    init_observability,
    job_duration_family,
)
from backend.runtime import Runtime
from tests.conftest import basic_auth

REPO = Path(__file__).resolve().parents[2]
HEX_ID = re.compile(r"[0-9a-f]{32}")


def observed(app):
    """``app`` with the ops blueprint and the observability hooks (added if the factory lacks them)."""
    if "ops" not in app.blueprints:
        app.register_blueprint(ops.bp)
        init_observability(app)
    return app


@pytest.fixture
def obs_app(app):
    application = observed(app)

    @application.get("/test/log-inside")
    def _log_inside():
        logging.getLogger("looplabel.test").warning("inside the view")
        return {"ok": True}

    @application.get("/test/binary")
    def _binary():
        return Response(b"\x00\x01" * 4096, mimetype="application/octet-stream")

    @application.get("/test/boom")
    def _boom():
        raise RuntimeError("deliberate failure")

    return application


@pytest.fixture
def obs_client(obs_app, users):
    c = obs_app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = basic_auth("admin", users["admin"])
    return c


@pytest.fixture
def log_lines():
    """JSON log lines of this test (the root logger's handlers are restored afterwards)."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    yield lines
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved_handlers:
        root.addHandler(h)
    root.setLevel(saved_level)


def samples(client) -> dict[tuple[str, frozenset], float]:
    """``/metrics`` parsed: {(sample name, labels): value}."""
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.get_data(as_text=True)):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(metrics, name, **labels) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


def create_projects(client, n: int) -> list[int]:
    ids = []
    for i in range(n):
        r = client.post("/api/projects", json={"name": f"obs-{i}-{uuid.uuid4().hex[:6]}",
                                               "channels": ["DAPI", "CD45", "panCK"]})
        assert r.status_code == 201, r.get_json()
        ids.append(r.get_json()["id"])
    return ids


# --- wiring -------------------------------------------------------------------------------------------
def test_the_app_factory_wires_ops_and_observability(runtime):
    """Fails until backend/app.py registers ``ops.bp`` and calls ``init_observability(app)``."""
    app = build_app(runtime=runtime)
    assert "ops" in app.blueprints
    assert app.extensions.get("looplabel.observability")
    r = app.test_client().get("/livez", headers={"X-Request-ID": "wired-1"})
    assert r.headers["X-Request-ID"] == "wired-1"


# --- liveness and readiness -----------------------------------------------------------------------------
def test_livez_and_readyz_when_everything_is_up(obs_client):
    assert obs_client.get("/livez").json == {"status": "ok"}
    r = obs_client.get("/readyz")
    assert r.status_code == 200
    assert r.json == {"status": "ok", "database": "ok", "storage": "ok", "queue": "ok"}
    assert obs_client.get("/healthz").json == r.json


def test_readyz_is_503_naming_the_queue_when_redis_is_down(settings):
    rt = Runtime(settings.with_overrides(redis_url="redis://127.0.0.1:1/0"))
    try:
        client = observed(build_app(runtime=rt)).test_client()
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.json["status"] == "error"
        assert r.json["database"] == "ok" and r.json["storage"] == "ok"
        assert r.json["queue"].startswith("error:")
        assert client.get("/healthz").status_code == 503
        assert client.get("/livez").status_code == 200  # liveness does not depend on Redis
    finally:
        rt.close()


def test_readyz_names_the_database_and_livez_stays_up_when_it_is_down(settings):
    rt = Runtime(settings.with_overrides(database_url="postgresql://nobody@127.0.0.1:1/none"))
    try:
        client = observed(build_app(runtime=rt)).test_client()
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.json["database"].startswith("error:") and r.json["queue"] == "ok"
        live = client.get("/livez")
        assert live.status_code == 200 and live.json == {"status": "ok"}
        scraped = samples(client)  # a scrape survives a dead database
        assert value(scraped, "looplabel_metrics_source_up", source="database") == 0
        assert value(scraped, "looplabel_metrics_source_up", source="queue") == 1
    finally:
        rt.close()


# --- metrics ----------------------------------------------------------------------------------------------
def test_metrics_count_requests_by_route_template(obs_client):
    before = samples(obs_client)
    ids = create_projects(obs_client, 2)
    for pid in ids:
        assert obs_client.get(f"/api/projects/{pid}").status_code == 200
    obs_client.get("/no/such/page")
    after = samples(obs_client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    one_project = next(
        dict(labels)["route"] for name, labels in after
        if name == "looplabel_http_request_duration_seconds_count"
        and dict(labels).get("route", "").startswith("/api/projects/<")
        and dict(labels)["route"].count("/") == 3
    )
    assert delta("looplabel_http_request_duration_seconds_count", method="GET", route=one_project) == 2
    assert delta("looplabel_http_request_duration_seconds_count", method="POST", route="/api/projects") == 2
    assert delta("looplabel_http_requests_total", method="POST", route="/api/projects", status="201") == 2
    assert delta("looplabel_http_requests_total", method="GET", route="<unmatched>", status="404") == 1
    assert not any(str(pid) in dict(labels).get("route", "") for _, labels in after for pid in ids)
    # +Inf bucket equals the count: every observation landed in some bucket.
    assert value(after, "looplabel_http_request_duration_seconds_bucket", method="GET", route=one_project, le="+Inf") \
        == value(after, "looplabel_http_request_duration_seconds_count", method="GET", route=one_project)


def _loop_rows(session):
    project = Project(name=f"metrics-{uuid.uuid4().hex[:6]}", channels=[{"name": "DAPI", "color": "#0000ff"}])
    session.add(project)
    session.flush()
    image = Image(project_id=project.id, name="a.tif", height=300, width=300, n_channels=1, dtype="uint16",
                  raw_key="images/1/raw.npy")
    rnd = Round(project_id=project.id, number=1)
    session.add_all([image, rnd])
    session.flush()
    crop = Crop(image_id=image.id, round_id=rnd.id, index=0, y0=0, x0=0, y1=270, x1=270, key="crops/1.npz")
    session.add(crop)
    session.flush()
    return project, crop


def test_metrics_report_jobs_durations_and_active_leases(obs_client, runtime):
    now = utcnow()
    with runtime.db.session() as s:
        project, crop = _loop_rows(s)
        for i, (status, expires) in enumerate([("leased", now + timedelta(minutes=30)),
                                               ("leased", now + timedelta(minutes=5)),
                                               ("leased", now - timedelta(minutes=1)),   # expired lease
                                               ("submitted", now + timedelta(minutes=30))]):
            annotator = Annotator(project_id=project.id, platform="generic", worker_id=f"w{i}")
            s.add(annotator)
            s.flush()
            s.add(Assignment(crop_id=crop.id, annotator_id=annotator.id, platform="generic",
                             external_worker_id=f"w{i}", lease_expires_at=expires, status=status))
        start = now - timedelta(hours=1)
        s.add_all([
            Job(kind="stitch_image", func="worker.jobs.stitch_image", status="finished",
                started_at=start, ended_at=start + timedelta(seconds=10)),
            Job(kind="stitch_image", func="worker.jobs.stitch_image", status="finished",
                started_at=start, ended_at=start + timedelta(seconds=400)),
            Job(kind="stitch_image", func="worker.jobs.stitch_image", status="failed",
                started_at=start, ended_at=start + timedelta(seconds=2)),
            Job(kind="train_model", func="worker.jobs.train_model", status="running", started_at=start),
            Job(kind="train_model", func="worker.jobs.train_model", status="queued"),
        ])
    m = samples(obs_client)
    assert value(m, "looplabel_active_leases") == 2
    assert value(m, "looplabel_jobs", kind="stitch_image", status="finished") == 2
    assert value(m, "looplabel_jobs", kind="stitch_image", status="failed") == 1
    assert value(m, "looplabel_jobs", kind="train_model", status="running") == 1
    assert value(m, "looplabel_jobs", kind="train_model", status="queued") == 1
    finished = dict(kind="stitch_image", status="finished")
    assert value(m, "looplabel_job_duration_seconds_count", **finished) == 2
    assert value(m, "looplabel_job_duration_seconds_sum", **finished) == pytest.approx(410)
    assert value(m, "looplabel_job_duration_seconds_bucket", le="5.0", **finished) == 0
    assert value(m, "looplabel_job_duration_seconds_bucket", le="15.0", **finished) == 1
    assert value(m, "looplabel_job_duration_seconds_bucket", le="300.0", **finished) == 1
    assert value(m, "looplabel_job_duration_seconds_bucket", le="600.0", **finished) == 2
    assert value(m, "looplabel_job_duration_seconds_count", kind="stitch_image", status="failed") == 1
    # Unfinished jobs have no duration yet.
    assert value(m, "looplabel_job_duration_seconds_count", kind="train_model", status="running") == 0
    assert value(m, "looplabel_queue_depth", queue="default") == 0
    assert value(m, "looplabel_metrics_source_up", source="database") == 1


def test_job_duration_buckets_are_cumulative_and_clamp_negative_times():
    family = job_duration_family([("crop", "finished", s) for s in (-3.0, 0.5, 30.0, 1e6)])
    by_le = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    counts = [by_le[k] for k in [*(str(float(b)) for b in JOB_BUCKETS_S), "+Inf"]]
    assert counts == sorted(counts), "bucket counts must not decrease"
    assert by_le["1.0"] == 2 and by_le["30.0"] == 3 and by_le["86400.0"] == 3 and by_le["+Inf"] == 4
    total = next(s.value for s in family.samples if s.name.endswith("_sum"))
    assert total == pytest.approx(0.5 + 30.0 + 1e6)


@pytest.mark.redis
def test_metrics_report_rq_queue_depth(settings, redis_url):
    prefix = f"test-{uuid.uuid4().hex[:8]}-"
    rt = Runtime(settings.with_overrides(redis_url=redis_url, queue_prefix=prefix))
    try:
        with rt.db.session() as s:
            for i in range(3):
                rt.queue.enqueue(s, "tests.job_functions.write_marker", key=f"m/{i}", value="x")
            rt.queue.enqueue(s, "tests.job_functions.write_marker", queue="gpu", key="m/g", value="x")
        m = samples(observed(build_app(runtime=rt)).test_client())
        assert value(m, "looplabel_queue_depth", queue="default") == 3
        assert value(m, "looplabel_queue_depth", queue="gpu") == 1
        assert value(m, "looplabel_jobs", kind="write_marker", status="queued") == 4
    finally:
        for name in ("default", "gpu"):
            rt.queue.rq_queue(name).empty()
        rt.close()


# --- request ids and logs ---------------------------------------------------------------------------------
def test_incoming_request_id_is_echoed_and_logged(obs_client, log_lines):
    r = obs_client.get("/api/projects", headers={"X-Request-ID": "lab-42.retry_1"})
    assert r.status_code == 200
    assert r.headers["X-Request-ID"] == "lab-42.retry_1"
    access = [line for line in log_lines() if line["logger"] == "looplabel.access"]
    assert len(access) == 1
    line = access[0]
    assert line["request_id"] == "lab-42.retry_1"
    assert (line["method"], line["path"], line["status"], line["level"]) == ("GET", "/api/projects", 200, "INFO")
    assert isinstance(line["duration_ms"], (int, float)) and line["duration_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])


@pytest.mark.parametrize("bad", ["x" * 65, "two words", "semi;colon", "a/b", "caf\u00e9", ""])
def test_invalid_request_ids_are_replaced_by_a_generated_one(obs_client, log_lines, bad):
    r = obs_client.get("/livez", headers={"X-Request-ID": bad})
    generated = r.headers["X-Request-ID"]
    assert generated != bad and HEX_ID.fullmatch(generated)
    assert [line["request_id"] for line in log_lines() if line["logger"] == "looplabel.access"] == [generated]


def test_each_request_without_an_id_gets_its_own(obs_client):
    ids = {obs_client.get("/livez").headers["X-Request-ID"] for _ in range(3)}
    assert len(ids) == 3 and all(HEX_ID.fullmatch(i) for i in ids)


def test_log_lines_inside_a_request_carry_its_id(obs_client, log_lines):
    obs_client.get("/test/log-inside", headers={"X-Request-ID": "inner-1"})
    inner = [line for line in log_lines() if line["logger"] == "looplabel.test"]
    assert inner == [{**inner[0], "message": "inside the view", "level": "WARNING", "request_id": "inner-1"}]
    logging.getLogger("looplabel.test").warning("outside")
    assert log_lines()[-1]["request_id"] is None


def test_a_failing_view_is_logged_with_its_traceback_and_the_500_carries_the_id(obs_app, log_lines):
    obs_app.config["PROPAGATE_EXCEPTIONS"] = False
    r = obs_app.test_client().get("/test/boom", headers={"X-Request-ID": "boom-1"})
    assert r.status_code == 500 and r.headers["X-Request-ID"] == "boom-1"
    lines = log_lines()
    errors = [line for line in lines if "exception" in line]
    assert errors and "deliberate failure" in errors[0]["exception"] and errors[0]["request_id"] == "boom-1"
    access = [line for line in lines if line["logger"] == "looplabel.access"]
    assert access[-1]["status"] == 500 and access[-1]["request_id"] == "boom-1"


def test_probe_requests_are_logged_at_debug_only(obs_client, log_lines):
    obs_client.get("/livez")
    obs_client.get("/api/projects")
    levels = {line["path"]: line["level"] for line in log_lines() if line["logger"] == "looplabel.access"}
    assert levels == {"/livez": "DEBUG", "/api/projects": "INFO"}


def test_configure_logging_rejects_an_unknown_level_and_can_write_text(log_lines):
    with pytest.raises(ValueError, match="LOG_LEVEL"):
        configure_logging("LOUD")
    stream = io.StringIO()
    configure_logging("info", json=False, stream=stream)
    logging.getLogger("looplabel.test").info("plain %s", "text")
    assert stream.getvalue().rstrip().endswith("INFO looplabel.test [None]: plain text")


# --- compression ---------------------------------------------------------------------------------------------
def test_large_json_is_gzipped_only_when_the_client_accepts_it(obs_client, runtime):
    with runtime.db.session() as s:
        s.add_all([Project(name=f"gzip-{i}", channels=[{"name": "DAPI", "color": "#0000ff"}]) for i in range(12)])
    plain = obs_client.get("/api/projects")
    assert "Content-Encoding" not in plain.headers
    assert len(plain.data) > COMPRESS_MIN_BYTES, "the test needs a body over the threshold"
    assert "Accept-Encoding" in plain.headers.get("Vary", "")

    zipped = obs_client.get("/api/projects", headers={"Accept-Encoding": "br, gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert int(zipped.headers["Content-Length"]) == len(zipped.data) < len(plain.data)
    assert json.loads(gzip.decompress(zipped.data)) == plain.json
    assert "Accept-Encoding" in zipped.headers["Vary"]

    deflated = obs_client.get("/api/projects", headers={"Accept-Encoding": "gzip;q=0, deflate"})
    assert deflated.headers["Content-Encoding"] == "deflate"
    assert json.loads(zlib.decompress(deflated.data)) == plain.json

    refused = obs_client.get("/api/projects", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in refused.headers and refused.data == plain.data


def test_small_json_and_binary_arrays_are_never_compressed(obs_client):
    small = obs_client.get("/livez", headers={"Accept-Encoding": "gzip"})
    assert len(small.data) <= COMPRESS_MIN_BYTES and "Content-Encoding" not in small.headers
    binary = obs_client.get("/test/binary", headers={"Accept-Encoding": "gzip"})
    assert binary.mimetype == "application/octet-stream"
    assert "Content-Encoding" not in binary.headers and binary.data == b"\x00\x01" * 4096


# --- several processes -----------------------------------------------------------------------------------------
REQUESTER = textwrap.dedent("""
    import sys
    from backend.app import build_app
    from backend.api import ops
    from backend.observability import init_observability
    app = build_app()
    if "ops" not in app.blueprints:
        app.register_blueprint(ops.bp)
        init_observability(app)
    client = app.test_client()
    n = int(sys.argv[1])
    for _ in range(n):
        assert client.get("/livez").status_code == 200
    if len(sys.argv) > 2:
        sys.stdout.write(client.get("/metrics").get_data(as_text=True))
""")


def _sqlite_env(tmp_path: Path) -> dict:
    from backend.db import Database

    url = f"sqlite:///{tmp_path / 'mp.db'}"
    db = Database(url)
    db.upgrade()
    db.dispose()
    return {**os.environ, "DATABASE_URL": url, "STORAGE_URL": f"file://{tmp_path / 'storage'}",
            "LOOPLABEL_INSTANCE": str(tmp_path / "instance"), "SECRET_KEY": "mp-secret",
            "PYTHONPATH": str(REPO), "REDIS_URL": ""}


def _livez_count(exposition: str) -> float:
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            if s.name == "looplabel_http_requests_total" and s.labels.get("route") == "/livez":
                return s.value
    return 0.0


@pytest.mark.slow
def test_multiprocess_mode_adds_up_the_requests_of_every_process(tmp_path):
    env = {**_sqlite_env(tmp_path), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    (tmp_path / "metrics").mkdir()
    subprocess.run([sys.executable, "-c", REQUESTER, "3"], env=env, check=True, timeout=120)
    out = subprocess.run([sys.executable, "-c", REQUESTER, "4", "scrape"], env=env, check=True,
                         timeout=120, capture_output=True, text=True).stdout
    assert _livez_count(out) == 3 + 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_gunicorn_with_the_deploy_config_logs_json_and_aggregates_workers(tmp_path):
    pytest.importorskip("gunicorn")
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")  # left by a previous run
    (tmp_path / "wsgi_shim.py").write_text(REQUESTER.split("client = ")[0])
    env = {**_sqlite_env(tmp_path), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
           "GUNICORN_CMD_ARGS": f"--config {REPO / 'deploy' / 'gunicorn.conf.py'}",
           "PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}", "LOG_LEVEL": "INFO"}
    port = _free_port()
    log_file = (tmp_path / "gunicorn.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "2",
         "--access-logfile", "-", "wsgi_shim:app"],
        env=env, cwd=tmp_path, stdout=log_file, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):  # wait for the workers (on another route: timed-out tries may still count)
            try:
                urllib.request.urlopen(base + "/readyz", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.2)
        else:
            pytest.fail("gunicorn did not answer within 30 s")
        if proc.poll() is not None:
            log_file.flush()
            pytest.fail(f"gunicorn exited ({proc.returncode}): {(tmp_path / 'gunicorn.log').read_text()[-2000:]}")
        for _ in range(12):
            urllib.request.urlopen(base + "/livez", timeout=5)
        request = urllib.request.Request(base + "/api/projects", headers={"X-Request-ID": "gunicorn-1"})
        with urllib.request.urlopen(request, timeout=5) as r:
            assert r.headers["X-Request-ID"] == "gunicorn-1"
        scraped = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
        assert _livez_count(scraped) == 12
        assert not (metrics_dir / "counter_999999.db").exists(), "on_starting must empty the directory"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log_file.close()
    lines = (tmp_path / "gunicorn.log").read_text().splitlines()
    parsed = [json.loads(line) for line in lines]  # every line is JSON, gunicorn's own included
    assert any(p["logger"] == "gunicorn.error" and "Booting worker" in p["message"] for p in parsed)
    ours = [p for p in parsed if p["logger"] == "looplabel.access" and p["request_id"] == "gunicorn-1"]
    assert len(ours) == 1 and ours[0]["path"] == "/api/projects"
    assert not any(p["logger"] == "gunicorn.access" for p in parsed), "gunicorn's access lines are dropped"
