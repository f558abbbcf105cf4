"""Liveness and readiness."""

from flask import Blueprint, jsonify

from backend.api import runtime

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Each part (database, storage, queue) ``ok`` or its error; 503 when one is down."""
    parts = runtime().health()
    ok = all(v == "ok" for v in parts.values())
    return jsonify({"status": "ok" if ok else "error", **parts}), 200 if ok else 503
