"""Blob storage for images, labels, crops, datasets and models.

One interface, :class:`BlobStore`, with two back ends:

* :class:`LocalStore` keeps each blob as a file under a root directory
  (``file://`` URLs). Writes go to a temporary file in the same directory,
  are fsynced and then renamed over the target, so a reader sees either the
  old or the new content, never a partial file.
* :class:`S3Store` keeps each blob as an object in an S3 bucket under an
  optional prefix (``s3://bucket/prefix`` URLs); any S3-compatible server
  (MinIO, moto) works through ``endpoint_url``.

Keys are relative, ``/``-separated paths such as ``"images/12/raw.npy"``.
They are validated before any I/O (see :func:`validate_key`): a hostile key
such as ``"../x"`` raises :class:`InvalidKeyError` and never touches a file
outside the store.

The package is split into :mod:`~backend.storage.keys` (key validation),
:mod:`~backend.storage.errors` (exceptions), :mod:`~backend.storage.base`
(the interface), :mod:`~backend.storage.local` and :mod:`~backend.storage.s3`
(the back ends); everything public is re-exported here, together with
:func:`open_store`.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from backend.storage.base import BlobNotFoundError, BlobStore, InvalidKeyError, StorageError
from backend.storage.keys import MAX_KEY_LENGTH, validate_key, validate_prefix
from backend.storage.local import LocalStore
from backend.storage.s3 import S3Store

__all__ = [
    "StorageError",
    "InvalidKeyError",
    "BlobNotFoundError",
    "BlobStore",
    "LocalStore",
    "S3Store",
    "open_store",
    "validate_key",
    "validate_prefix",
    "MAX_KEY_LENGTH",
]


def open_store(
    url: str, *, s3_endpoint_url: str | None = None, create_bucket: bool = False
) -> BlobStore:
    """Open the blob store named by a STORAGE_URL setting.

    Parameters
    ----------
    url : str
        ``"file://./instance/storage"`` (relative to the current directory),
        ``"file:///abs/path"``, a plain path, or ``"s3://bucket/prefix"``.
    s3_endpoint_url : str, optional
        S3-compatible server for ``s3://`` URLs (S3_ENDPOINT_URL).
    create_bucket : bool
        For ``s3://`` URLs, create the bucket if it is missing.

    Returns
    -------
    BlobStore
        A :class:`LocalStore` or an :class:`S3Store`.

    Raises
    ------
    StorageError
        If the URL is empty, malformed or has an unsupported scheme.
    """
    if not isinstance(url, str) or not url.strip():
        raise StorageError(f"STORAGE_URL {url!r} is empty; use file://<path> or s3://<bucket>")
    if url.startswith("file://"):
        path = unquote(url[len("file://") :])
        if path.startswith("localhost/"):
            path = path[len("localhost") :]
        if not path:
            raise StorageError(f"STORAGE_URL {url!r} has no path; e.g. file://./instance/storage")
        return LocalStore(path)
    if url.startswith("s3://"):
        parts = urlsplit(url)
        if not parts.netloc or parts.query or parts.fragment:
            raise StorageError(
                f"STORAGE_URL {url!r} is not of the form s3://bucket or s3://bucket/prefix"
            )
        try:
            return S3Store(
                parts.netloc,
                parts.path.strip("/"),
                endpoint_url=s3_endpoint_url,
                create_bucket=create_bucket,
            )
        except InvalidKeyError as exc:
            raise StorageError(f"STORAGE_URL {url!r} has an invalid prefix: {exc}") from exc
    if "://" in url or url.startswith("file:"):
        raise StorageError(
            f"STORAGE_URL {url!r} has an unsupported scheme; use file://<path> or s3://<bucket>"
        )
    return LocalStore(url)
