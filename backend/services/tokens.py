"""Signed, short-lived crowd tokens bound to one assignment and its crop.

The token travels only as a bearer header; the server keeps a hash of the newest token on the
assignment, so issuing a new one (a refresh of the page) retires the old one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from backend.errors import UnauthorizedError

SALT = "looplabel-crowd-token-v1"
SCOPES = ("edit", "preview")


@dataclass(frozen=True)
class TokenClaims:
    assignment_id: int | None  # None for a read-only preview
    crop_id: int
    scope: str  # "edit" | "preview"


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=SALT)


def issue_token(secret: str, crop_id: int, assignment_id: int | None, scope: str = "edit") -> str:
    if scope not in SCOPES:
        raise ValueError(f"unknown token scope {scope!r}")
    # the nonce makes every issue distinct, so a re-issued token retires the previous one at once
    return _serializer(secret).dumps({"a": assignment_id, "c": crop_id, "s": scope, "n": secrets.token_urlsafe(6)})


def verify_token(secret: str, token: str, max_age_s: int) -> TokenClaims:
    """Check signature and age; raises UnauthorizedError (401) for a tampered or expired token."""
    if not token:
        raise UnauthorizedError("this request needs the task's bearer token (Authorization: Bearer …)")
    try:
        data = _serializer(secret).loads(token, max_age=max_age_s)
    except SignatureExpired:
        raise UnauthorizedError("the task's token has expired; open the task link again") from None
    except BadSignature:
        raise UnauthorizedError("the task's token is not valid") from None
    if not isinstance(data, dict) or data.get("s") not in SCOPES or not isinstance(data.get("c"), int):
        raise UnauthorizedError("the task's token is not valid")
    return TokenClaims(assignment_id=data.get("a"), crop_id=data["c"], scope=data["s"])


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


RESUME_SALT = b"looplabel-resume-v1:"


def resume_secret(secret: str, assignment_id: int) -> str:
    """The secret that lets the browser holding a lease open it again (a reload) with a new token.

    The lease answer carries it; the page keeps it in its tab's sessionStorage and sends it with
    the next lease. Without it, a lease by the same worker id (another browser, or someone who
    knows the id) never gets this task: the worker id alone proves nothing.
    """
    return hmac.new(secret.encode(), RESUME_SALT + str(int(assignment_id)).encode(), hashlib.sha256).hexdigest()[:32]


def resume_matches(secret: str, assignment_id: int, sent: object) -> bool:
    """Whether ``sent`` is the resume secret of ``assignment_id`` (constant-time)."""
    return isinstance(sent, str) and sent.isascii() and hmac.compare_digest(resume_secret(secret, assignment_id), sent)
