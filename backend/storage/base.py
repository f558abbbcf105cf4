"""The :class:`BlobStore` interface, its exceptions and its array helpers.

A back end implements the byte-level methods (:meth:`BlobStore.put_bytes`,
:meth:`BlobStore.get_bytes`, ...); :class:`BlobStore` builds the NumPy
``.npy``/``.npz`` methods on top of them.
"""

from __future__ import annotations

import io
import zipfile
from abc import ABC, abstractmethod

import numpy as np

from backend.storage.errors import BlobNotFoundError, InvalidKeyError, StorageError
from backend.storage.keys import validate_key
from backend.storage.npz import npz_from_zlib

__all__ = ["StorageError", "InvalidKeyError", "BlobNotFoundError", "BlobStore"]


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

    def sweep_partial_writes(self, older_than_s: float = 3600.0) -> int:
        """Remove what writes interrupted by a killed process left behind (never a blob).

        Returns how many leftovers were removed; stores whose writes are atomic requests
        (S3) have none.
        """
        return 0

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

    def put_deflated_array(self, key: str, name: str, array: np.ndarray, zlib_stream: bytes) -> None:
        """Store ``array`` as the one member ``name`` of an ``.npz`` archive, compressed by
        ``zlib_stream`` (a complete zlib stream of its raw bytes) as it is, without compressing
        again (see :mod:`backend.storage.npz`). :meth:`get_arrays` reads it back.
        """
        validate_key(key)
        _refuse_object_dtype(key, array)
        self.put_bytes(key, npz_from_zlib(name, array, zlib_stream), "application/zip")

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
