"""Blob store on the local file system (``file://`` URLs).

Each blob is a file under a root directory. Writes go to a temporary file in
the same directory, are fsynced and then renamed over the target, so a reader
sees either the old or the new content, never a partial file.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from backend.storage.base import (
    BlobNotFoundError,
    BlobStore,
    StorageError,
    _check_data,
    _check_expiry,
)
from backend.storage.keys import _is_valid_key, _reject, validate_key, validate_prefix

__all__ = ["LocalStore"]

# Temporary files carry '~', which no valid key part may contain, so they can
# never collide with a blob and are never listed.
_TEMP_MARK = ".~"


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

    def sweep_partial_writes(self, older_than_s: float = 3600.0) -> int:
        """Remove temporary files (never listed, never read) that a process killed in the middle
        of a write left behind, once they are ``older_than_s`` old (younger ones may belong to
        a write in progress)."""
        cutoff, removed = time.time() - older_than_s, 0
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for name in filenames:
                if not name.startswith(_TEMP_MARK):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    if os.lstat(path).st_mtime < cutoff:
                        os.unlink(path)
                        removed += 1
                except FileNotFoundError:
                    continue  # its write finished (renamed) or another sweep took it
        return removed

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
