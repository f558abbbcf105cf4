"""Operations endpoints: liveness, readiness and Prometheus metrics.

| path | answers | use |
|---|---|---|
| ``GET /livez`` | ``{"status": "ok"}`` 200 as long as the process serves requests; touches nothing else | Kubernetes liveness probe |
| ``GET /readyz`` | ``{"status", "database", "storage", "queue"}``: 200 when every part is ``ok``, else 503 naming the part's error | readiness probe, load balancers |
| ``GET /healthz`` | the same as ``/readyz`` (kept for scripts and the README's check) | humans, compose healthcheck |
| ``GET /metrics`` | Prometheus text exposition (see :mod:`backend.observability`) | Prometheus scrape |

Liveness never checks the database, storage or queue: restarting a web pod does not bring a
database back, and a probe that failed with it would restart every pod at once.
"""

from flask import Blueprint, Response, jsonify

from backend.api import runtime
from backend.observability import render_metrics

bp = Blueprint("ops", __name__)
NO_STORE = {"Cache-Control": "no-store"}


@bp.get("/livez")
def livez():
    """``{"status": "ok"}``: the process answers (cheap; no database, storage or queue)."""
    return jsonify({"status": "ok"}), 200, NO_STORE


@bp.get("/readyz")
def readyz():
    """Each part (database, storage, queue) ``ok`` or its error; 503 when one is down."""
    parts = runtime().health()
    ok = all(value == "ok" for value in parts.values())
    return jsonify({"status": "ok" if ok else "error", **parts}), 200 if ok else 503, NO_STORE


@bp.get("/healthz")
def healthz():
    """The readiness report under its historic name (same body and status as ``/readyz``)."""
    return readyz()


@bp.get("/metrics")
def metrics():
    """Prometheus exposition: request latency by route, jobs, queue depth, active leases."""
    body, content_type = render_metrics(runtime())
    return Response(body, content_type=content_type, headers=NO_STORE)
