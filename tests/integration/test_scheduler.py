"""The scheduler pass: leftovers of interrupted review saves are swept, recent ones are kept."""

from __future__ import annotations

import time

from backend.services import labels_io
from worker.scheduler import run_once


def test_a_scheduler_pass_removes_old_orphan_review_blobs_only(runtime):
    old = labels_io.review_revision_key(7, 3, time.time() - 7200, "dead")
    fresh = labels_io.review_revision_key(7, 4, time.time(), "live")
    for key in (old, fresh):
        runtime.store.put_bytes(key, b"labels of a save that never wrote its row")
    run_once(runtime)
    assert not runtime.store.exists(old)
    assert runtime.store.exists(fresh)  # may belong to a save in progress
