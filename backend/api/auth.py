"""Reviewer and admin accounts: session-cookie login, HTTP Basic for scripts, roles, CSRF.

Crowd routes never use any of this (they carry a bearer token and set no cookie). Every
state-changing request authenticated by the session cookie must carry the session's CSRF token
(form field ``csrf_token`` or header ``X-CSRF-Token``).

Sessions are revocable: the cookie holds the user's ``session_generation`` at login, and a
cookie whose generation is no longer the user's is ignored (logout, a new password, a role
change or a block bump it; see :mod:`backend.services.users`). Failed logins, form and HTTP
Basic alike, are throttled per user name and per client address
(:mod:`backend.services.login_throttle`). The cookie is ``Secure`` whenever the request came
over HTTPS (or ``SECURE_COOKIES`` is set).
"""

from __future__ import annotations

import base64
import functools
import hmac
import secrets
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, g, jsonify, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import select
from werkzeug.exceptions import TooManyRequests

from backend.api import runtime
from backend.errors import ForbiddenError, UnauthorizedError
from backend.models import User
from backend.services.login_throttle import LoginThrottle, TooManyLoginFailuresError, build_login_throttle
from backend.services.users import authenticate, end_sessions

bp = Blueprint("auth", __name__)
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
CROWD_PREFIXES = ("/api/crowd/", "/annotate/")
THROTTLE_EXTENSION = "looplabel_login_throttle"


class SchemeAwareSessionInterface(SecureCookieSessionInterface):
    """The signed-cookie session, marked ``Secure`` when the request came over HTTPS."""

    def get_cookie_secure(self, app) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request_is_https()


@bp.record_once
def _install(state) -> None:
    """Registering the blueprint gives the app its session cookie, login throttle and 429 page."""
    app = state.app
    app.session_interface = SchemeAwareSessionInterface()
    app.extensions[THROTTLE_EXTENSION] = build_login_throttle(app.extensions["looplabel"].settings)


def _login_throttle() -> LoginThrottle:
    return current_app.extensions[THROTTLE_EXTENSION]


def client_address() -> str:
    """The client's IP address: the peer's, or with ``TRUSTED_PROXY_HOPS`` = n behind n reverse
    proxies, the n-th address from the right of X-Forwarded-For (the one our first proxy saw).
    Login throttling and the crowd's lease limits both count by it.
    """
    hops = runtime().settings.trusted_proxy_hops
    forwarded = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",") if a.strip()]
    if hops and forwarded:
        return forwarded[-min(hops, len(forwarded))]
    return request.remote_addr or "unknown"


def request_is_https() -> bool:
    """Whether the request came over HTTPS: directly, through gunicorn trusting the proxy's
    X-Forwarded-Proto (FORWARDED_ALLOW_IPS), or from a trusted proxy (TRUSTED_PROXY_HOPS) saying so."""
    if request.is_secure:
        return True
    hops = runtime().settings.trusted_proxy_hops
    protos = [p.strip().lower() for p in request.headers.get("X-Forwarded-Proto", "").split(",") if p.strip()]
    return bool(hops and protos) and protos[-min(hops, len(protos))] == "https"


def checked_login(username: str, password: str) -> User | None:
    """The user with these credentials, or None; raises 429 while the name or address is throttled.

    Only failures are counted. The returned user is detached from any database session.
    """
    throttle, address = _login_throttle(), client_address()
    throttle.check(username, address)
    with runtime().db.session() as s:
        user = authenticate(s, username, password)
        if user is not None:
            s.expunge(user)
    if user is None:
        throttle.record_failure(username, address)
    return user


@bp.app_errorhandler(TooManyLoginFailuresError)
def _too_many_login_failures(exc: TooManyLoginFailuresError):
    if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
        response = jsonify(exc.as_dict())
        response.status_code = 429
    else:
        response = TooManyRequests(exc.message).get_response()
    response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(24)
    return token


_BASIC_CACHE: dict[tuple[str, str], tuple[str, float]] = {}
_BASIC_TTL_S = 60.0


def _basic_user():
    """The user named by HTTP Basic credentials, or None when the header is absent.

    Checking a password hash (scrypt) takes tens of milliseconds by design; a script making many
    calls would pay it on every request, so a verified (user, password digest) is remembered for a
    minute — as long as the user is active and its stored hash is unchanged (a password change or
    a block ends it at once; the role is read afresh each time). Wrong credentials are counted by
    the login throttle like failed form logins.
    """
    import hashlib
    import time

    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        username, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except Exception:
        raise UnauthorizedError("malformed Basic authorization header") from None
    key = (username, hashlib.sha256(password.encode()).hexdigest())
    cached = _BASIC_CACHE.get(key)
    if cached is not None and cached[1] > time.monotonic():
        with runtime().db.session() as s:
            user = s.scalar(select(User).where(User.username == username, User.active.is_(True)))
            if user is not None and user.password_hash == cached[0]:
                s.expunge(user)
                return user
    user = checked_login(username, password)
    if user is None:
        _BASIC_CACHE.pop(key, None)
        raise UnauthorizedError("wrong username or password")
    if len(_BASIC_CACHE) > 1024:
        _BASIC_CACHE.clear()
    _BASIC_CACHE[key] = (user.password_hash, time.monotonic() + _BASIC_TTL_S)
    return user


def _session_user() -> User | None:
    """The user of the session cookie, or None when it names none or its session has ended."""
    user_id = session.get("user_id")
    if not user_id:
        return None
    with runtime().db.session() as s:
        user = s.get(User, user_id)
        if user is not None and user.active and session.get("generation") == user.session_generation:
            s.expunge(user)
            return user
    session.clear()  # logged out elsewhere, new password or role, blocked, or deleted
    return None


def current_user() -> User | None:
    """The logged-in user (session cookie or HTTP Basic), or None."""
    if "user" in g:
        return g.user
    user = _basic_user()
    if user is None:
        user = _session_user()
    g.user = user
    return user


def _is_api() -> bool:
    return request.path.startswith("/api/")


def require_role(*roles: str):
    """Only users whose role is in ``roles`` (admins may always act as reviewers)."""
    allowed = set(roles) | {"admin"}

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user = current_user()
            if user is None:
                if _is_api():
                    raise UnauthorizedError("log in first (session cookie or HTTP Basic)")
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if user.role not in allowed:
                if _is_api():
                    raise ForbiddenError(f"this needs the {' or '.join(sorted(roles))} role")
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorator


def check_csrf() -> None:
    """Before every request: unsafe methods with a session cookie need the CSRF token."""
    if request.method not in UNSAFE or request.path.startswith(CROWD_PREFIXES):
        return
    if request.headers.get("Authorization", "").lower().startswith("basic "):
        return  # not cookie-authenticated: a cross-site page cannot forge Basic credentials
    if "user_id" not in session and request.endpoint != "auth.login":
        return  # anonymous: the view itself answers 401 (or redirects to the login page)
    expected = session.get("csrf")
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        if _is_api():
            raise ForbiddenError("missing or wrong CSRF token (send the X-CSRF-Token header from /api/me)")
        abort(403, description="missing or wrong CSRF token; reload the page and try again")


def _safe_next(target: str | None) -> str:
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    username = request.form.get("username", "") if request.method == "POST" else ""
    if request.method == "POST":
        try:
            user = checked_login(username, request.form.get("password", ""))
        except TooManyLoginFailuresError as exc:
            page = render_template("login.html", username=username,
                                   error=f"Too many failed logins; try again in {exc.retry_after_s} s.")
            return page, 429, {"Retry-After": str(exc.retry_after_s)}
        if user is not None:
            session.clear()
            session["user_id"] = user.id
            session["generation"] = user.session_generation
            session["csrf"] = secrets.token_urlsafe(24)
            session.permanent = True
            return redirect(_safe_next(request.args.get("next")))
        error = "Wrong username or password."
    return render_template("login.html", error=error, username=username), (401 if error else 200)


@bp.post("/logout")
def logout():
    """End the session: this cookie and every other session of the same user."""
    user = _session_user()
    if user is not None:
        with runtime().db.session() as s:
            end_sessions(s, user.id)
    session.clear()
    return redirect(url_for("auth.login"))


@bp.get("/api/me")
def me():
    user = current_user()
    if user is None:
        raise UnauthorizedError("not logged in")
    return jsonify({"id": user.id, "username": user.username, "role": user.role, "csrf_token": csrf_token()})
