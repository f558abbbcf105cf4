"""Accounts for reviewers and admins (crowd annotators never log in).

Sessions are revocable: a session cookie carries the user's ``session_generation`` from when it
was issued, and :func:`end_sessions` (logout), :func:`change_password`, :func:`set_role` and
:func:`set_active` (block) bump it, which ends every session of that user at once.
"""

from __future__ import annotations

import functools
import re
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from backend.errors import ConflictError, NotFoundError, UserError
from backend.models import ROLES, User

MIN_PASSWORD_LENGTH = 8


def _checked_password(password: str | None) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password must have at least {MIN_PASSWORD_LENGTH} characters", field="password")
    return password


def create_user(session: Session, username: str, role: str, password: str | None = None) -> tuple[User, str]:
    """Create a user; returns the row and the password (generated when none is given)."""
    if not re.fullmatch(r"[A-Za-z0-9_.@\-]{1,80}", username or ""):
        raise UserError("username must be 1-80 letters, digits or _.@-", field="username")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}", field="role")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise ConflictError(f"a user named {username!r} already exists", field="username")
    password = _checked_password(password or secrets.token_urlsafe(12))
    user = User(username=username, role=role, password_hash=generate_password_hash(password))
    session.add(user)
    session.flush()
    return user, password


@functools.cache
def _unknown_user_hash() -> str:
    """A hash of a random password, made like real ones: checking it costs what a real check does."""
    return generate_password_hash(secrets.token_urlsafe(16))


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with this name and password, or None.

    A refusal takes as long for an unknown or blocked name as for a wrong password: a hash is
    checked either way, so the response time does not tell which user names exist.
    """
    user = session.scalar(select(User).where(User.username == username, User.active.is_(True)))
    if user is None:
        check_password_hash(_unknown_user_hash(), password)
        return None
    if not check_password_hash(user.password_hash, password):
        return None
    return user


def _get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"no user with id {user_id}")
    return user


def end_sessions(session: Session, user_id: int) -> None:
    """End every session (cookie) of the user; HTTP Basic credentials keep working."""
    session.execute(
        update(User).where(User.id == user_id).values(session_generation=User.session_generation + 1)
    )


def change_password(session: Session, user_id: int, password: str) -> User:
    """Set a new password; every session of the user ends (and cached Basic credentials lapse)."""
    user = _get_user(session, user_id)
    user.password_hash = generate_password_hash(_checked_password(password))
    session.flush()
    return user


def set_role(session: Session, user_id: int, role: str) -> User:
    """Change the user's role; every session of the user ends."""
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}", field="role")
    user = _get_user(session, user_id)
    user.role = role
    session.flush()
    return user


def set_active(session: Session, user_id: int, active: bool) -> User:
    """Block (``active=False``) or unblock a user; either ends every session of the user."""
    user = _get_user(session, user_id)
    user.active = bool(active)
    session.flush()
    return user
