"""Accounts for reviewers and admins (crowd annotators never log in)."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from backend.errors import ConflictError, UserError
from backend.models import ROLES, User


def create_user(session: Session, username: str, role: str, password: str | None = None) -> tuple[User, str]:
    """Create a user; returns the row and the password (generated when none is given)."""
    if not re.fullmatch(r"[A-Za-z0-9_.@\-]{1,80}", username or ""):
        raise UserError("username must be 1-80 letters, digits or _.@-", field="username")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}", field="role")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise ConflictError(f"a user named {username!r} already exists", field="username")
    password = password or secrets.token_urlsafe(12)
    if len(password) < 8:
        raise UserError("password must have at least 8 characters", field="password")
    user = User(username=username, role=role, password_hash=generate_password_hash(password))
    session.add(user)
    session.flush()
    return user, password


def authenticate(session: Session, username: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.username == username, User.active.is_(True)))
    if user is None or not check_password_hash(user.password_hash, password):
        return None
    return user
