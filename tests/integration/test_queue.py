"""Job queue: the in-process runner and RQ on the local Redis with a real worker process."""

import os
import subprocess
import sys
import uuid

import pytest

from backend.models import Job
from backend.queue import JobError
from backend.runtime import Runtime
from tests.conftest import REPO


def _job(runtime, job_id):
    with runtime.db.session() as s:
        return s.get(Job, job_id)


def test_inline_job_runs_and_records_progress(runtime):
    with runtime.db.session() as s:
        job_id = runtime.queue.enqueue(s, "tests.job_functions.write_marker", key="marks/a", value="hello").id
    runtime.queue.join()
    row = _job(runtime, job_id)
    assert row.status == "finished" and row.progress == 1.0
    assert row.result == {"key": "marks/a"}
    assert row.kind == "write_marker" and row.started_at and row.ended_at
    assert runtime.store.get_bytes("marks/a") == b"hello"


def test_inline_failure_records_traceback_and_keeps_data(runtime):
    runtime.store.put_bytes("marks/keep", b"before")
    with runtime.db.session() as s:
        job_id = runtime.queue.enqueue(s, "tests.job_functions.fail_after_progress", key="marks/keep").id
    runtime.queue.join()
    row = _job(runtime, job_id)
    assert row.status == "failed"
    assert "deliberate failure while processing marks/keep" in row.error
    assert "Traceback" in row.error and "fail_after_progress" in row.error
    assert runtime.store.get_bytes("marks/keep") == b"before"


def test_rolled_back_enqueue_pushes_nothing(runtime):
    with pytest.raises(RuntimeError):
        with runtime.db.session() as s:
            runtime.queue.enqueue(s, "tests.job_functions.write_marker", key="marks/never", value="x")
            raise RuntimeError("the request failed after enqueueing")
    runtime.queue.join()
    assert not runtime.store.exists("marks/never")
    with runtime.db.session() as s:
        assert s.query(Job).count() == 0


@pytest.mark.parametrize("name", ["tests.job_functions.not_a_job", "tests.job_functions.missing", "nodots"])
def test_only_marked_job_functions_can_be_enqueued(runtime, name):
    with runtime.db.session() as s:
        with pytest.raises(JobError):
            runtime.queue.enqueue(s, name)


@pytest.mark.postgres
@pytest.mark.redis
def test_rq_worker_process_runs_jobs_in_burst_mode(pg_url, redis_url, tmp_path, settings):
    prefix = f"test-{uuid.uuid4().hex[:8]}-"
    cfg = settings.with_overrides(database_url=pg_url, redis_url=redis_url, queue_prefix=prefix)
    rt = Runtime(cfg)
    try:
        with rt.db.session() as s:
            ok_id = rt.queue.enqueue(s, "tests.job_functions.write_marker", key="marks/rq", value="via-rq").id
            bad_id = rt.queue.enqueue(s, "tests.job_functions.fail_after_progress", key="marks/none").id
        assert rt.queue.depth("default") == 2
        env = {**os.environ, "DATABASE_URL": pg_url, "REDIS_URL": redis_url, "QUEUE_PREFIX": prefix,
               "STORAGE_URL": cfg.storage_url, "SECRET_KEY": "x", "LOOPLABEL_INSTANCE": str(tmp_path / "i")}
        proc = subprocess.run(
            [sys.executable, "-m", "backend.cli", "worker", "--queue", "default", "--burst"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        ok, bad = _job(rt, ok_id), _job(rt, bad_id)
        assert ok.status == "finished" and ok.progress == 1.0
        assert rt.store.get_bytes("marks/rq") == b"via-rq"
        assert bad.status == "failed" and "deliberate failure" in bad.error
        assert rt.queue.depth("default") == 0
    finally:
        for q in ("default", "gpu"):
            rt.queue.rq_queue(q).delete(delete_jobs=True)
        rt.close()
