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
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import zipfile
from abc import ABC, abstractmethod
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit

import numpy as np

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

MAX_KEY_LENGTH = 1024
"""Longest accepted key, in characters (S3's limit for a whole object key)."""

_MAX_PART_LENGTH = 255  # longest file name on common file systems
_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9._/-]")
_CONTROL_CHAR = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# Temporary files carry '~', which no valid key part may contain, so they can
# never collide with a blob and are never listed.
_TEMP_MARK = ".~"


class StorageError(Exception):
    """A blob store operation failed; the message says what to do about it."""


class InvalidKeyError(StorageError, ValueError):
    """A key or prefix is malformed or tries to leave the store."""


class BlobNotFoundError(StorageError, KeyError):
    """No blob is stored under the requested key."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


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


class BlobStore(ABC):
    """Interface of a blob store: bytes and NumPy arrays under string keys.

    Attributes
    ----------
    url : str
        Where the store lives, e.g. ``"file:///srv/looplabel/storage"`` or
        ``"s3://bucket/prefix"``; :func:`open_store` accepts it back.
    """

    url: str

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Store ``data`` under ``key`` atomically, replacing any previous blob.

        Parameters
        ----------
        key : str
            Blob key (see :func:`validate_key`).
        data : bytes
            Content; ``bytearray`` and ``memoryview`` are accepted too.
        content_type : str, optional
            MIME type recorded where the store supports it (S3).
        """

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Return the content stored under ``key``.

        Raises
        ------
        BlobNotFoundError
            If nothing is stored under ``key``.
        """

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Return whether a blob is stored under ``key``."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete the blob under ``key``; a missing key is not an error."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Return the sorted keys that start with ``prefix``.

        Parameters
        ----------
        prefix : str
            See :func:`validate_prefix`; ``""`` lists the whole store.

        Returns
        -------
        list of str
            Keys in ascending (code point) order; temporary files and names
            that are not valid keys are never included.
        """

    @abstractmethod
    def presigned_url(self, key: str, expires_s: int = 3600) -> str | None:
        """Return a URL that downloads ``key`` without credentials, or None.

        Parameters
        ----------
        key : str
            Blob key.
        expires_s : int
            Lifetime of the URL in seconds (1 to 604800).

        Returns
        -------
        str or None
            None when the store cannot sign URLs (:class:`LocalStore`);
            the caller then streams :meth:`get_bytes` itself.
        """

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`StorageError` if the store is unreachable or unusable."""

    def delete_prefix(self, prefix: str) -> int:
        """Delete every blob whose key starts with ``prefix``.

        Parameters
        ----------
        prefix : str
            See :func:`validate_prefix`; ``""`` empties the whole store.

        Returns
        -------
        int
            Number of blobs deleted.
        """
        keys = self.list(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)

    def put_array(self, key: str, array: np.ndarray) -> None:
        """Store one array as ``.npy`` bytes (dtype, byte order and shape kept).

        Parameters
        ----------
        key : str
            Blob key, conventionally ending in ``.npy``.
        array : numpy.ndarray
            Any shape and numeric/bool/string dtype; object arrays are refused
            (they would need pickle).
        """
        validate_key(key)
        array = np.asarray(array)
        _refuse_object_dtype(key, array)
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        self.put_bytes(key, buffer.getvalue(), "application/octet-stream")

    def get_array(self, key: str) -> np.ndarray:
        """Load an array stored by :meth:`put_array`.

        Returns
        -------
        numpy.ndarray
            Same shape and dtype (including byte order) as stored.

        Raises
        ------
        BlobNotFoundError
            If ``key`` is missing.
        StorageError
            If the blob is not a ``.npy`` array (e.g. an ``.npz`` archive).
        """
        loaded = _load_numpy(key, self.get_bytes(key))
        if not isinstance(loaded, np.ndarray):
            loaded.close()
            raise StorageError(
                f"blob {key!r} is an .npz archive of several arrays; read it with get_arrays"
            )
        return loaded

    def put_arrays(self, key: str, **arrays: np.ndarray) -> None:
        """Store named arrays as one compressed ``.npz`` archive.

        Parameters
        ----------
        key : str
            Blob key, conventionally ending in ``.npz``.
        **arrays : numpy.ndarray
            Arrays by name, e.g. ``whole_cell=..., nuclear=...`` (int32
            label images of shape (H, W)). Object arrays are refused.
        """
        validate_key(key)
        arrays = {name: np.asarray(value) for name, value in arrays.items()}
        for value in arrays.values():
            _refuse_object_dtype(key, value)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        self.put_bytes(key, buffer.getvalue(), "application/zip")

    def get_arrays(self, key: str) -> dict[str, np.ndarray]:
        """Load the named arrays stored by :meth:`put_arrays`.

        Returns
        -------
        dict of str to numpy.ndarray
            Every array of the archive, dtype and shape as stored.

        Raises
        ------
        BlobNotFoundError
            If ``key`` is missing.
        StorageError
            If the blob is not an ``.npz`` archive.
        """
        loaded = _load_numpy(key, self.get_bytes(key))
        if isinstance(loaded, np.ndarray):
            raise StorageError(f"blob {key!r} is a single .npy array; read it with get_array")
        try:
            return {name: loaded[name] for name in loaded.files}
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise StorageError(f"blob {key!r} is a damaged .npz archive: {exc}") from exc
        finally:
            loaded.close()


def _refuse_object_dtype(key: str, array: np.ndarray) -> None:
    if array.dtype.hasobject:
        raise TypeError(
            f"cannot store an object array under {key!r}; convert it to a numeric dtype first"
        )


def _load_numpy(key: str, data: bytes):
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise StorageError(f"blob {key!r} is not a NumPy .npy/.npz file: {exc}") from exc


def _check_data(data: object) -> None:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"blob data must be bytes, not {type(data).__name__}")


def _check_expiry(expires_s: int) -> None:
    if not 1 <= int(expires_s) <= 604800:
        raise ValueError(f"expires_s={expires_s} is out of range; use 1 to 604800 seconds")


class LocalStore(BlobStore):
    """Blobs as files under a root directory.

    Parameters
    ----------
    root : str or pathlib.Path
        Directory holding the blobs; created (with parents) if missing.
        Key ``"a/b.npy"`` lives at ``root/a/b.npy``.

    Raises
    ------
    StorageError
        If the root cannot be created or is not a directory.
    """

    def __init__(self, root: str | Path):
        path = Path(root).expanduser()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create storage directory {str(path)!r}: {exc}") from exc
        self.root = path.resolve()
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        """Map a validated key to a path and make sure it stays inside root."""
        resolved = self.root.joinpath(*key.split("/")).resolve()
        if resolved == self.root or not resolved.is_relative_to(self.root):
            raise _reject(key, "resolves outside the storage directory (symbolic link?)")
        return resolved

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """See :meth:`BlobStore.put_bytes`; ``content_type`` is ignored."""
        path = self._path(validate_key(key))
        _check_data(data)
        for attempt in range(3):  # a concurrent delete may prune the directory
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._write_atomically(path, data)
                return
            except FileNotFoundError:
                if attempt == 2:
                    raise StorageError(f"cannot write {key!r}: its directory keeps vanishing")
            except OSError as exc:
                raise StorageError(
                    f"cannot write {key!r} in {self.url}: {exc.strerror or exc} "
                    "(does a blob block one of its folders, or is the disk full?)"
                ) from exc

    @staticmethod
    def _write_atomically(path: Path, data: bytes) -> None:
        fd, temp_name = tempfile.mkstemp(
            dir=path.parent, prefix=f"{_TEMP_MARK}{path.name[:64]}.", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "wb") as handle:
                if hasattr(os, "fchmod"):
                    os.fchmod(handle.fileno(), 0o644)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp_name, path)
        except BaseException:
            try:
                os.unlink(temp_name)
            except OSError:
                pass
            raise
        _fsync_directory(path.parent)

    def get_bytes(self, key: str) -> bytes:
        """See :meth:`BlobStore.get_bytes`."""
        path = self._path(validate_key(key))
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobNotFoundError(f"no blob {key!r} in {self.url}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {key!r} from {self.url}: {exc}") from exc

    def exists(self, key: str) -> bool:
        """See :meth:`BlobStore.exists`."""
        return self._path(validate_key(key)).is_file()

    def delete(self, key: str) -> None:
        """See :meth:`BlobStore.delete`; empty folders left behind are removed."""
        path = self._path(validate_key(key))
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        except IsADirectoryError:
            return  # a folder is not a blob
        except OSError as exc:
            raise StorageError(f"cannot delete {key!r} from {self.url}: {exc}") from exc
        folder = path.parent
        while folder != self.root and folder.is_relative_to(self.root):
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent

    def list(self, prefix: str = "") -> list[str]:
        """See :meth:`BlobStore.list`."""
        validate_prefix(prefix)
        folder_key = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self._path(folder_key) if folder_key else self.root
        keys = []
        for dirpath, _dirnames, filenames in os.walk(base):
            relative = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                key = name if relative == "." else f"{relative}/{name}"
                if key.startswith(prefix) and _is_valid_key(key):
                    keys.append(key)
        return sorted(keys)

    def presigned_url(self, key: str, expires_s: int = 3600) -> str | None:
        """See :meth:`BlobStore.presigned_url`; always None for files."""
        validate_key(key)
        _check_expiry(expires_s)
        return None

    def check(self) -> None:
        """Write and remove a probe file; raise :class:`StorageError` on failure."""
        try:
            fd, probe = tempfile.mkstemp(dir=self.root, prefix=f"{_TEMP_MARK}check.")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise StorageError(
                f"storage directory {str(self.root)!r} is not writable: {exc}"
            ) from exc


def _fsync_directory(folder: Path) -> None:
    """Persist a rename (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _is_valid_key(key: str) -> bool:
    try:
        validate_key(key)
    except InvalidKeyError:
        return False
    return True


class S3Store(BlobStore):
    """Blobs as objects in an S3 (or S3-compatible) bucket.

    Parameters
    ----------
    bucket : str
        Bucket name (3-63 lowercase letters, digits, '.', '-').
    prefix : str
        Folder inside the bucket; key ``"a/b"`` is object ``"<prefix>/a/b"``.
    endpoint_url : str, optional
        S3-compatible server, e.g. ``"http://minio:9000"``; None means AWS.
    region : str, optional
        Region name; None uses the AWS configuration (AWS_DEFAULT_REGION).
    create_bucket : bool
        Create the bucket if it does not exist (contacts the server).

    Raises
    ------
    StorageError
        If the bucket name or prefix is malformed, or creation fails.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        create_bucket: bool = False,
    ):
        import boto3
        from botocore.config import Config

        if not _BUCKET_NAME.fullmatch(bucket or "") or ".." in bucket:
            raise StorageError(
                f"invalid S3 bucket name {bucket!r}: use 3-63 lowercase letters, digits, '.', '-'"
            )
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        config = Config(
            signature_version="s3v4",
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path"} if endpoint_url else None,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=config
        )
        if create_bucket:
            self._create_bucket()

    def _object_key(self, key: str) -> str:
        validate_key(key)
        full = f"{self.prefix}/{key}" if self.prefix else key
        if len(full) > MAX_KEY_LENGTH:
            raise _reject(key, f"with the store prefix it exceeds {MAX_KEY_LENGTH} characters")
        return full

    def _where(self) -> str:
        return f"{self.url} at {self.endpoint_url}" if self.endpoint_url else self.url

    def _storage_error(
        self, exc: Exception, action: str, key: str | None, missing_is_blob: bool
    ) -> StorageError:
        """Turn a botocore exception into a StorageError a user can act on."""
        from botocore.exceptions import ClientError

        target = f"{key!r} in {self._where()}" if key is not None else self._where()
        if not isinstance(exc, ClientError):
            return StorageError(f"cannot {action} {target}: {exc}")
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if missing_is_blob and code in ("NoSuchKey", "404", "NotFound"):
            return BlobNotFoundError(f"no blob {key!r} in {self._where()}")
        if code in ("NoSuchBucket", "404", "NotFound"):
            return StorageError(
                f"S3 bucket {self.bucket!r} does not exist ({self._where()}); "
                "create it or open the store with create_bucket=True"
            )
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return StorageError(
                f"S3 refused to {action} {target} ({code}); check the AWS credentials "
                "and the bucket policy"
            )
        return StorageError(
            f"S3 could not {action} {target}: {code} {error.get('Message', '')}".rstrip()
        )

    @contextmanager
    def _translate_errors(
        self, action: str, key: str | None = None, *, missing_is_blob: bool = False
    ) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            error = self._storage_error(exc, action, key, missing_is_blob)
            raise error from (None if isinstance(error, BlobNotFoundError) else exc)

    def _create_bucket(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) not in ("404", "NoSuchBucket"):
                raise self._storage_error(exc, "open", None, False) from exc
        except BotoCoreError as exc:
            raise self._storage_error(exc, "reach", None, False) from exc
        region = self._client.meta.region_name
        arguments = {"Bucket": self.bucket}
        if region and region not in ("us-east-1", "aws-global"):
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._client.create_bucket(**arguments)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise self._storage_error(exc, "create bucket", None, False) from exc
        except BotoCoreError as exc:
            raise self._storage_error(exc, "create bucket", None, False) from exc

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """See :meth:`BlobStore.put_bytes`; S3 PUTs are atomic."""
        object_key = self._object_key(key)
        _check_data(data)
        with self._translate_errors("write", key):
            self._client.put_object(
                Bucket=self.bucket,
                Key=object_key,
                Body=bytes(data),
                ContentType=content_type or "application/octet-stream",
            )

    def get_bytes(self, key: str) -> bytes:
        """See :meth:`BlobStore.get_bytes`."""
        object_key = self._object_key(key)
        with self._translate_errors("read", key, missing_is_blob=True):
            response = self._client.get_object(Bucket=self.bucket, Key=object_key)
            return response["Body"].read()

    def exists(self, key: str) -> bool:
        """See :meth:`BlobStore.exists`; a missing bucket also reads as False."""
        try:
            with self._translate_errors("look up", key, missing_is_blob=True):
                self._client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except BlobNotFoundError:
            return False
        return True

    def delete(self, key: str) -> None:
        """See :meth:`BlobStore.delete`."""
        object_key = self._object_key(key)
        with self._translate_errors("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=object_key)

    def _list_object_keys(self, prefix: str) -> Iterator[str]:
        validate_prefix(prefix)
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self._client.get_paginator("list_objects_v2")
        with self._translate_errors(f"list prefix {prefix!r} of"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
                for entry in page.get("Contents", []):
                    yield entry["Key"][strip:]

    def list(self, prefix: str = "") -> list[str]:
        """See :meth:`BlobStore.list`; pages through every result."""
        return sorted(key for key in self._list_object_keys(prefix) if _is_valid_key(key))

    def delete_prefix(self, prefix: str) -> int:
        """See :meth:`BlobStore.delete_prefix`; deletes in batches of 1000."""
        keys = self.list(prefix)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._object_key(key)} for key in keys[start : start + 1000]]
            with self._translate_errors(f"delete prefix {prefix!r} of"):
                response = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                raise StorageError(
                    f"S3 could not delete {len(errors)} blobs under {prefix!r}, e.g. "
                    f"{first.get('Key')!r}: {first.get('Code')} {first.get('Message', '')}"
                )
        return len(keys)

    def presigned_url(self, key: str, expires_s: int = 3600) -> str | None:
        """See :meth:`BlobStore.presigned_url`; a signed GET URL."""
        object_key = self._object_key(key)
        _check_expiry(expires_s)
        with self._translate_errors("sign a URL for", key):
            return self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": object_key},
                ExpiresIn=int(expires_s),
            )

    def check(self) -> None:
        """HEAD the bucket; raise :class:`StorageError` if it fails."""
        with self._translate_errors("reach bucket"):
            self._client.head_bucket(Bucket=self.bucket)


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
