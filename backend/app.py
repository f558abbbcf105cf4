"""Flask application factory (``backend.create_app``)."""

from __future__ import annotations

import logging
import math

from flask import Flask, jsonify, make_response, render_template, request
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from backend.config import Settings
from backend.core.imaging import ImageImportError
from backend.errors import UserError
from backend.runtime import Runtime
from backend.storage import InvalidKeyError

log = logging.getLogger(__name__)


def build_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    """Create the web app for ``settings`` (default: from the environment).

    The app owns a :class:`Runtime` (database, store, queue) at ``app.extensions["looplabel"]``.
    """
    settings = settings or (runtime.settings if runtime else Settings.from_env())
    runtime = runtime or Runtime(settings)
    app = Flask(
        __name__,
        static_folder=None,
        template_folder="templates",
    )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_upload_mb * 1024 * 1024,
        MAX_FORM_MEMORY_SIZE=settings.max_upload_mb * 1024 * 1024,
        JSON_SORT_KEYS=False,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        PERMANENT_SESSION_LIFETIME=12 * 3600,
    )
    app.extensions["looplabel"] = runtime

    from backend.api import admin, auth, body_limits, crowd, ops, pages, projects, review, review_pages, static
    from backend.observability import init_observability

    app.register_blueprint(ops.bp)
    app.register_blueprint(projects.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(crowd.bp)
    app.register_blueprint(static.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(review.bp)
    app.register_blueprint(review_pages.bp)
    app.register_blueprint(admin.bp)
    app.before_request(body_limits.enforce_body_limit)  # before any hook that reads a form
    app.before_request(auth.check_csrf)
    app.jinja_env.globals["csrf_token"] = auth.csrf_token
    app.jinja_env.globals["current_user"] = auth.current_user
    _register_error_handlers(app)
    init_observability(app)
    app.after_request(_default_security_headers)
    return app


DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self'"
)


def _default_security_headers(response):
    """Staff pages: scripts only from this origin, never framed (the crowd pages set their own CSP)."""
    response.headers.setdefault("Content-Security-Policy", DEFAULT_CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(UserError)
    def _user_error(exc: UserError):
        if _wants_json():
            response = jsonify(exc.as_dict())
        else:  # a page a person opened: an HTML page saying what is wrong
            response = _error_page(exc.status, exc.message)
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after is not None:
            response.headers["Retry-After"] = str(max(1, int(math.ceil(retry_after))))
        return response, exc.status

    @app.errorhandler(ImageImportError)
    def _import_error(exc: ImageImportError):
        return jsonify({"error": str(exc)}), getattr(exc, "status", 400)

    @app.errorhandler(InvalidKeyError)
    def _bad_key(exc: InvalidKeyError):
        return jsonify({"error": str(exc)}), 400

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc):
        from backend.api.body_limits import current_limit, too_large_message

        limit, setting = current_limit()  # reading a chunked body (no length) stopped at the limit
        return jsonify({"error": too_large_message(limit, setting, request.content_length)}), 413

    @app.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError):
        if not exc.connection_invalidated:
            raise exc  # a bug or an outage: the 500 handler logs it
        # The database restarted under a pooled connection (they are not pinged on checkout);
        # the pool has been renewed, so the same request succeeds when sent again.
        response = jsonify({"error": "the connection to the database was reset; please retry"})
        response.headers["Retry-After"] = "1"
        return response, 503

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if _wants_json():
            return jsonify({"error": exc.description or exc.name}), exc.code
        if exc.code is None or not 400 <= exc.code < 500 or exc.code == 405:
            return exc  # redirects, 405 (its Allow header) and server errors as werkzeug makes them
        return _error_page(exc.code, exc.description or exc.name)


def _error_page(status: int, message: str):
    """The console's HTML page for a 4xx answer to a page (the crowd page has its own: api/crowd.py)."""
    response = make_response(render_template("error.html", status=status, message=message))
    response.status_code = status
    return response
