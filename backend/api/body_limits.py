"""Request body limits per route, enforced before a body is read.

Every route has a limit: image uploads take ``MAX_UPLOAD_MB``; the anonymous crowd's small JSON
requests and the login form take ``MAX_CROWD_BODY_KB``; a label save (crowd or reviewer) takes
what a deflate stream of its crop's or image's labels can hold (:func:`labels_body_bytes`,
checked once the token or session is verified, before the body is read); every other route
takes ``MAX_BODY_KB``.

A request whose ``Content-Length`` is over the limit is answered 413 before any byte of its body
is read; a chunked body (no length, the server terminates it) is read up to the limit and refused
with 413 as soon as it goes past it (:class:`CappedInput`).
"""

from __future__ import annotations

import io
from typing import Callable

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from backend.api import runtime
from backend.config import Settings
from backend.errors import PayloadTooLargeError

MAX_CROP_SIZE = 2048  # the largest crop_size a project accepts (services.projects)
DEFLATE_HEADROOM = 1024  # bytes a client's deflate stream may hold beyond zlib's compressBound


def deflate_bound(n_bytes: int) -> int:
    """The most bytes a zlib stream of ``n_bytes`` input takes (zlib's ``compressBound``: stored
    blocks of incompressible data), plus :data:`DEFLATE_HEADROOM` for other encoders."""
    return n_bytes + (n_bytes >> 12) + (n_bytes >> 14) + (n_bytes >> 25) + 13 + DEFLATE_HEADROOM


def labels_body_bytes(height: int, width: int, features: int = 2) -> int:
    """The largest body of a label save for an ``(features, height, width)`` int32 crop.

    A 270 x 270 crop: 584,414 bytes at most (real labels deflate to 10-40 KB; only random ids
    come near the bound).
    """
    return deflate_bound(features * height * width * 4)


def _upload(settings: Settings) -> tuple[int, str]:
    return settings.max_upload_mb * 1024 * 1024, "MAX_UPLOAD_MB"


def _crowd(settings: Settings) -> tuple[int, str]:
    return settings.max_crowd_body_kb * 1024, "MAX_CROWD_BODY_KB"


def _default(settings: Settings) -> tuple[int, str]:
    return settings.max_body_kb * 1024, "MAX_BODY_KB"


def _crowd_labels(settings: Settings) -> tuple[int, str]:
    return labels_body_bytes(MAX_CROP_SIZE, MAX_CROP_SIZE), ""  # then the crop's own (crowd.put_labels)


ROUTE_LIMITS: dict[str, Callable[[Settings], tuple[int, str]]] = {
    "projects.upload_images": _upload,
    "admin.upload_images_form": _upload,
    "review.save_labels": _upload,  # then the image's own deflate bound (review.save_labels)
    "crowd.lease": _crowd,
    "crowd.submit": _crowd,
    "auth.login": _crowd,
    "auth.logout": _crowd,
    "crowd.put_labels": _crowd_labels,
}


def route_limit(endpoint: str | None, settings: Settings) -> tuple[int, str]:
    """(largest body in bytes, the setting that sets it or "") for the route ``endpoint``."""
    return ROUTE_LIMITS.get(endpoint or "", _default)(settings)


def describe_bytes(n: int) -> str:
    """``"16 KB"``, ``"2048 MB"``, ``"584,414 bytes"``: a limit as its setting states it."""
    if n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MB"
    if n % 1024 == 0:
        return f"{n // 1024} KB"
    return f"{n:,} bytes"


def too_large_message(limit: int, setting: str, length: int | None = None) -> str:
    sent = f"the request body ({length:,} bytes)" if length is not None else "the request body"
    where = f" ({setting})" if setting else ""
    return f"{sent} is larger than the limit of {describe_bytes(limit)} for {request.method} {request.path}{where}"


class CappedInput(io.RawIOBase):
    """A request body without a length, read through: 413 once more than ``limit`` bytes came."""

    def __init__(self, stream, limit: int):
        self.stream, self.limit, self.count = stream, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        want = min(len(buffer), self.limit + 1 - self.count)  # one byte past the limit tells
        if want <= 0:
            raise RequestEntityTooLarge()
        data = self.stream.read(want)
        n = len(data)
        buffer[:n] = data
        self.count += n
        if self.count > self.limit:
            raise RequestEntityTooLarge()
        return n


def limit_body(limit: int, setting: str = "") -> None:
    """Apply ``limit`` (bytes) to the current request's body, before it is read: 413 now when its
    Content-Length is over it; a body without a length is refused once it goes past it. May only
    tighten the limit already applied."""
    applied = request.environ.get("looplabel.body_limit")
    if applied is not None and applied[0] <= limit:
        return
    request.environ["looplabel.body_limit"] = (limit, setting)
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLargeError(too_large_message(limit, setting, length))
    request.max_form_memory_size = min(limit, request.max_form_memory_size or limit)
    if length is None and request.environ.get("wsgi.input_terminated"):  # chunked
        stream = request.environ["wsgi.input"]
        if isinstance(stream, CappedInput):
            stream.limit = limit
        else:
            request.environ["wsgi.input"] = CappedInput(stream, limit)
        request.max_content_length = limit + 1  # werkzeug's cap, one past ours: ours answers
    else:
        request.max_content_length = limit


def enforce_body_limit() -> None:
    """Before every request (ahead of any hook that reads a form): the route's limit."""
    limit, setting = route_limit(request.endpoint, runtime().settings)
    limit_body(limit, setting)


def current_limit() -> tuple[int, str]:
    """The limit applied to this request (for the 413 of a chunked body that went over it)."""
    return request.environ.get("looplabel.body_limit") or (request.max_content_length or 0, "")
