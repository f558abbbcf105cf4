"""Job functions used by the queue tests (importable by a real RQ worker process)."""

from backend.queue import job
from backend.storage import BlobNotFoundError


@job
def write_marker(ctx, key: str, value: str, steps: int = 3) -> dict:
    for i in range(steps):
        ctx.progress((i + 1) / steps, f"step {i + 1} of {steps}")
    ctx.store.put_bytes(key, value.encode())
    return {"key": key}


@job
def fail_after_progress(ctx, key: str) -> None:
    ctx.progress(0.5, "half way")
    try:
        ctx.store.get_bytes(key)
    except BlobNotFoundError:
        pass
    raise ValueError(f"deliberate failure while processing {key}")


def not_a_job(ctx) -> None:  # no @job: must not be runnable by name
    raise AssertionError("should never run")
