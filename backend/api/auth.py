"""Reviewer and admin accounts: session-cookie login, HTTP Basic for scripts, roles, CSRF.

Crowd routes never use any of this (they carry a bearer token and set no cookie). Every
state-changing request authenticated by the session cookie must carry the session's CSRF token
(form field ``csrf_token`` or header ``X-CSRF-Token``).
"""

from __future__ import annotations

import base64
import functools
import hmac
import secrets
from urllib.parse import urlsplit

from flask import Blueprint, abort, g, jsonify, redirect, render_template, request, session, url_for

from backend.api import runtime
from backend.errors import ForbiddenError, UnauthorizedError
from sqlalchemy import select

from backend.models import User
from backend.services.users import authenticate

bp = Blueprint("auth", __name__)
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
CROWD_PREFIXES = ("/api/crowd/", "/annotate/")


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
    minute — as long as the stored hash is unchanged (a password change invalidates it at once).
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
    with runtime().db.session() as s:
        cached = _BASIC_CACHE.get(key)
        if cached is not None and cached[1] > time.monotonic():
            user = s.scalar(select(User).where(User.username == username, User.active.is_(True)))
            if user is not None and user.password_hash == cached[0]:
                s.expunge(user)
                return user
        user = authenticate(s, username, password)
        if user is None:
            _BASIC_CACHE.pop(key, None)
            raise UnauthorizedError("wrong username or password")
        if len(_BASIC_CACHE) > 1024:
            _BASIC_CACHE.clear()
        _BASIC_CACHE[key] = (user.password_hash, time.monotonic() + _BASIC_TTL_S)
        s.expunge(user)
        return user


def current_user() -> User | None:
    """The logged-in user (session cookie or HTTP Basic), or None."""
    if "user" in g:
        return g.user
    user = _basic_user()
    if user is None and session.get("user_id"):
        with runtime().db.session() as s:
            user = s.get(User, session["user_id"])
            if user is not None and user.active:
                s.expunge(user)
            else:
                user = None
                session.pop("user_id", None)
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
    if request.method == "POST":
        with runtime().db.session() as s:
            user = authenticate(s, request.form.get("username", ""), request.form.get("password", ""))
            if user is not None:
                session.clear()
                session["user_id"] = user.id
                session["csrf"] = secrets.token_urlsafe(24)
                session.permanent = True
                return redirect(_safe_next(request.args.get("next")))
        error = "Wrong username or password."
    return render_template("login.html", error=error), (401 if error else 200)


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("auth.login"))


@bp.get("/api/me")
def me():
    user = current_user()
    if user is None:
        raise UnauthorizedError("not logged in")
    return jsonify({"id": user.id, "username": user.username, "role": user.role, "csrf_token": csrf_token()})
