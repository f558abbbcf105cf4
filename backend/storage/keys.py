"""Validation of blob keys and listing prefixes.

Keys are relative, ``/``-separated paths such as ``"images/12/raw.npy"``.
They are validated before any I/O (see :func:`validate_key`): a hostile key
such as ``"../x"`` raises :class:`InvalidKeyError` and never touches a file
outside the store.
"""

from __future__ import annotations

import re

from backend.storage.errors import InvalidKeyError

__all__ = ["MAX_KEY_LENGTH", "validate_key", "validate_prefix"]

MAX_KEY_LENGTH = 1024
"""Longest accepted key, in characters (S3's limit for a whole object key)."""

_MAX_PART_LENGTH = 255  # longest file name on common file systems
_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9._/-]")
_CONTROL_CHAR = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")


def _reject(key: object, reason: str) -> InvalidKeyError:
    shown = repr(key) if len(repr(key)) <= 80 else repr(key)[:77] + "..."
    return InvalidKeyError(f"invalid storage key {shown}: {reason}")


def validate_key(key: str) -> str:
    """Check that ``key`` is a safe, relative blob key and return it.

    Parameters
    ----------
    key : str
        ``/``-separated relative path, e.g. ``"labels/3/r1.npz"``. At most
        :data:`MAX_KEY_LENGTH` characters; each part non-empty, at most 255
        characters, not ``.`` or ``..``; only letters, digits, ``.``, ``_``,
        ``-`` and ``/``.

    Returns
    -------
    str
        ``key`` unchanged.

    Raises
    ------
    InvalidKeyError
        With the reason, for anything else (empty, absolute, drive letter,
        backslash, control character, ``..`` part, ``//``, trailing ``/``).
    """
    if not isinstance(key, str):
        raise _reject(key, f"keys are strings, not {type(key).__name__}")
    if not key:
        raise _reject(key, "the key is empty")
    if len(key) > MAX_KEY_LENGTH:
        raise _reject(key, f"{len(key)} characters; the limit is {MAX_KEY_LENGTH}")
    if _CONTROL_CHAR.search(key):
        raise _reject(key, "contains a control or NUL character")
    if "\\" in key:
        raise _reject(key, "contains a backslash; separate parts with '/'")
    if _DRIVE.match(key):
        raise _reject(key, "looks like a Windows drive path; keys are relative")
    if key.startswith("/"):
        raise _reject(key, "starts with '/'; keys are relative to the store")
    bad = _UNSAFE_CHAR.search(key)
    if bad:
        raise _reject(
            key, f"contains {bad.group()!r}; use only letters, digits, '.', '_', '-' and '/'"
        )
    for part in key.split("/"):
        if not part:
            raise _reject(key, "has an empty part ('//' or a trailing '/')")
        if part in (".", ".."):
            raise _reject(key, f"has a {part!r} part; keys cannot navigate directories")
        if len(part) > _MAX_PART_LENGTH:
            raise _reject(key, f"a part is longer than {_MAX_PART_LENGTH} characters")
    return key


def validate_prefix(prefix: str) -> str:
    """Check a listing prefix and return it.

    Parameters
    ----------
    prefix : str
        ``""`` (everything), a directory-style prefix ending in ``/``
        (``"images/1/"``) or a plain string prefix (``"images/1"`` also
        matches ``"images/10/..."``). Apart from the optional trailing ``/``
        it follows the rules of :func:`validate_key`.

    Returns
    -------
    str
        ``prefix`` unchanged.

    Raises
    ------
    InvalidKeyError
        If the prefix is malformed or hostile.
    """
    if prefix == "":
        return prefix
    if isinstance(prefix, str) and prefix.endswith("/"):
        validate_key(prefix[:-1])
    else:
        validate_key(prefix)
    return prefix


def _is_valid_key(key: str) -> bool:
    try:
        validate_key(key)
    except InvalidKeyError:
        return False
    return True
