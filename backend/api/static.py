"""The frontend's ES modules and styles, served as files (no build step).

Responses carry an ETag (content hash) and ``Cache-Control: no-cache`` so browsers revalidate
cheaply and never run a stale module after a deploy. Only files meant for the browser are
served: ``.js`` and ``.css`` under ``editor/`` and ``pages/`` — never the editor's tests
(``test/``), ``package.json`` files, or anything a ``.``/``..`` segment would reach. The site's
icon (``pages/favicon.svg``) is also served at ``/favicon.svg`` and ``/favicon.ico``.
"""

import posixpath
from pathlib import Path

from flask import Blueprint, abort, send_from_directory

FRONTEND = Path(__file__).resolve().parent.parent.parent / "frontend"
SERVED_FOLDERS = ("editor", "pages")
SERVED_SUFFIXES = (".js", ".css")
FAVICON = "pages/favicon.svg"
bp = Blueprint("static", __name__)


def browser_path(filename: str) -> str | None:
    """The normalised path (relative to ``frontend/``) of a file the browser may load, or None.

    The path is resolved before it is judged: ``./test/x.js`` and ``editor/../test/x.js`` are
    ``test/x.js``, which is not served.
    """
    if "\\" in filename or "\x00" in filename or filename.startswith("/"):
        return None
    path = posixpath.normpath(filename)
    parts = path.split("/")
    if parts[0] not in SERVED_FOLDERS or len(parts) < 2 or not path.endswith(SERVED_SUFFIXES):
        return None
    if any(part.startswith(".") for part in parts):  # hidden files, and ".." left by normpath
        return None
    resolved = (FRONTEND / path).resolve()
    if not resolved.is_relative_to((FRONTEND / parts[0]).resolve()) or not resolved.is_file():
        return None  # a link out of the served folder, or nothing there
    return path


@bp.get("/static/<path:filename>")
def frontend_file(filename: str):
    path = browser_path(filename)
    if path is None:
        abort(404)
    response = send_from_directory(FRONTEND, path, conditional=True, etag=True, max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    if path.endswith(".js"):
        response.mimetype = "text/javascript"
    return response


@bp.get("/favicon.svg")
@bp.get("/favicon.ico")  # browsers ask for it on pages that link no icon; an SVG answers for every size
def favicon():
    response = send_from_directory(FRONTEND, FAVICON, conditional=True, etag=True, max_age=86400)
    response.mimetype = "image/svg+xml"
    return response
