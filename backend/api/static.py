"""The frontend's ES modules and styles, served as files (no build step).

Responses carry an ETag (content hash) and ``Cache-Control: no-cache`` so browsers revalidate
cheaply and never run a stale module after a deploy.
"""

from pathlib import Path

from flask import Blueprint, abort, send_from_directory

FRONTEND = Path(__file__).resolve().parent.parent.parent / "frontend"
bp = Blueprint("static", __name__)


@bp.get("/static/<path:filename>")
def frontend_file(filename: str):
    if filename.startswith(("test/", "test\\")):
        abort(404)
    response = send_from_directory(FRONTEND, filename, conditional=True, etag=True, max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    if filename.endswith(".js"):
        response.mimetype = "text/javascript"
    return response
