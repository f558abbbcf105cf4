"""An ``.npz`` archive of one array whose compressed bytes are an existing zlib stream.

The crowd editor sends each revision as one zlib stream of the label stack's raw bytes (the
wire format, :mod:`backend.api.wire`). Compressing those labels again into an ``.npz`` cost
more than the rest of a revision save together; this module wraps the stream as it is.

A deflate stream may be continued by more deflate blocks once it is byte-aligned, so the zip
member is: the ``.npy`` header deflated and ended with a sync flush (a non-final, byte-aligned
block), then the raw deflate blocks of the received stream (its 2-byte zlib header and 4-byte
Adler-32 trailer stripped). Back-references in those blocks reach only into their own output,
which the concatenation keeps. The member's CRC-32 covers the header and the array bytes.
:func:`numpy.load` reads the result like any ``np.savez_compressed`` archive.
"""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np

__all__ = ["npz_from_zlib"]

_ZIP32_LIMIT = 0xFFFFFFFF
_VERSION = 20  # 2.0: deflate
_DEFLATED = 8


def _dos_time(t: float) -> tuple[int, int]:
    lt = time.localtime(t)
    return ((lt.tm_year - 1980) << 9 | lt.tm_mon << 5 | lt.tm_mday,
            lt.tm_hour << 11 | lt.tm_min << 5 | lt.tm_sec // 2)


def npz_from_zlib(name: str, array: np.ndarray, zlib_stream: bytes) -> bytes:
    """An ``.npz`` holding ``array`` as member ``name``, compressed by ``zlib_stream``.

    Parameters
    ----------
    name : str
        Array name in the archive (``np.load(...)[name]``), without ``.npy``.
    array : ndarray
        The array the stream holds: C-contiguous, little-endian or single-byte dtype. Only its
        header fields and its bytes' CRC-32 are used.
    zlib_stream : bytes
        Exactly one complete zlib stream (no preset dictionary, nothing after it) of
        ``array``'s raw bytes, as checked by the caller when it inflated the stream.

    Raises
    ------
    ValueError
        If the stream is not a zlib deflate stream, the array is not C-contiguous little-endian,
        or the archive would need zip64.
    """
    if len(zlib_stream) < 6 or zlib_stream[0] & 0x0F != 8 or zlib_stream[1] & 0x20 \
            or (zlib_stream[0] << 8 | zlib_stream[1]) % 31:
        raise ValueError("not a zlib deflate stream without a preset dictionary")
    if not array.flags.c_contiguous or array.dtype.byteorder == ">":
        raise ValueError("the array must be C-contiguous and little-endian")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": False,
                 "shape": tuple(array.shape)})
    header_bytes = header.getvalue()
    deflater = zlib.compressobj(1, zlib.DEFLATED, -15)
    compressed = deflater.compress(header_bytes) + deflater.flush(zlib.Z_SYNC_FLUSH)
    body = zlib_stream[2:-4]
    csize = len(compressed) + len(body)
    usize = len(header_bytes) + array.nbytes
    if max(csize, usize) >= _ZIP32_LIMIT:
        raise ValueError("the array is too large for a zip32 archive")
    crc = zlib.crc32(array.reshape(-1).view(np.uint8), zlib.crc32(header_bytes))
    filename = (name + ".npy").encode()
    date, clock = _dos_time(time.time())
    fields = (_VERSION, 0, _DEFLATED, clock, date, crc, csize, usize, len(filename))
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields, 0) + filename
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, _VERSION, *fields, 0, 0, 0, 0,
                          0o600 << 16, 0) + filename
    offset = len(local) + csize
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), offset, 0)
    return b"".join((local, compressed, body, central, end))
