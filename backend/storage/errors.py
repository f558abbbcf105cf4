"""Exceptions raised by the blob stores of :mod:`backend.storage`.

They live in their own module so that :mod:`backend.storage.keys` and
:mod:`backend.storage.base` can both use them without importing each other;
:mod:`backend.storage.base` and :mod:`backend.storage` re-export them.
"""

from __future__ import annotations

__all__ = ["StorageError", "InvalidKeyError", "BlobNotFoundError"]


class StorageError(Exception):
    """A blob store operation failed; the message says what to do about it."""


class InvalidKeyError(StorageError, ValueError):
    """A key or prefix is malformed or tries to leave the store."""


class BlobNotFoundError(StorageError, KeyError):
    """No blob is stored under the requested key."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""
