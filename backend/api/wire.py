"""The browser ↔ server array format: raw little-endian bytes, deflate (zlib) compressed.

Shape and dtype travel in ``X-Shape`` ("2,270,270") and ``X-Dtype`` ("int32" | "uint8")
headers; the browser decodes with ``DecompressionStream("deflate")``.

:class:`EncodedArrayCache` keeps encoded arrays of blobs that do not change (a crop's channels,
a committed revision) in memory, so the hot crowd requests neither read the store nor compress.
"""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Hashable

import numpy as np
from flask import Response, request

from backend.errors import PayloadTooLargeError, UserError

DTYPES = {"uint8": np.dtype("<u1"), "int32": np.dtype("<i4")}
INT32_MAX = 2**31 - 1  # the database's INTEGER columns
_DECIMAL = re.compile(r"-?[0-9]{1,18}")  # ASCII only: str.isdigit() and int() accept "²", "٣", " 7", "7_0"


def strict_int(value: object, field: str, lo: int = 0, hi: int = INT32_MAX) -> int:
    """An integer request parameter, checked: a 400 naming ``field`` for anything else.

    Parameters
    ----------
    value : str or int
        A header or query-string value (ASCII decimal digits, ``-`` first only when ``lo`` < 0; no
        sign, space, underscore or other script's digits), or a value decoded from JSON (an
        ``int``; not a bool, not a float such as ``1e20`` or ``3.0``).
    field : str
        The header or field name, for the message.
    lo, hi : int
        The accepted range, inclusive (default: what an INTEGER column holds, non-negative).

    Returns
    -------
    int
    """
    number = None
    if isinstance(value, str) and _DECIMAL.fullmatch(value) and (lo < 0 or not value.startswith("-")):
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    if number is None or not lo <= number <= hi:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise UserError(f"{field} must be an integer from {lo} to {hi}, got {shown}", field=field)
    return number


def header_int(name: str, lo: int = 0, hi: int = INT32_MAX, default: int | None = None,
               required: str | None = None) -> int | None:
    """The request's header ``name`` as a :func:`strict_int`; ``default`` when it is absent, or a
    400 saying ``required`` (what the header is for) when that is given."""
    value = request.headers.get(name)
    if value is None or value == "":
        if required:
            raise UserError(f"{name} must {required}", field=name)
        return default
    return strict_int(value, name, lo, hi)


def query_int(name: str, lo: int = 0, hi: int = INT32_MAX, default: int | None = None) -> int | None:
    """The query-string parameter ``name`` as a :func:`strict_int` (``default`` when absent)."""
    value = request.args.get(name)
    return default if value is None or value == "" else strict_int(value, name, lo, hi)


def json_int(body: dict, name: str, lo: int = 0, hi: int = INT32_MAX, default: int | None = None) -> int | None:
    """The JSON field ``name`` of ``body`` as a :func:`strict_int` (``default`` when absent or null);
    a JSON number, not a string of digits."""
    value = body.get(name)
    if isinstance(value, str):
        raise UserError(f"{name} must be an integer from {lo} to {hi} (a JSON number, not a string)", field=name)
    return default if value is None else strict_int(value, name, lo, hi)


@dataclass(frozen=True)
class EncodedArray:
    """An array in the wire format.

    Attributes
    ----------
    data : bytes
        zlib (HTTP "deflate") stream of the array's raw little-endian bytes, C order.
    shape : tuple of int
        E.g. ``(3, 270, 270)`` for channels, ``(2, 270, 270)`` for a label stack.
    dtype : str
        ``"uint8"`` or ``"int32"``.
    """

    data: bytes
    shape: tuple[int, ...]
    dtype: str

    def decode(self) -> np.ndarray:
        """The array (native byte order), shape :attr:`shape`, dtype :attr:`dtype`."""
        return decode_array(self.data, self.dtype, self.shape)


def encode_array(array: np.ndarray, level: int = 1) -> EncodedArray:
    """Encode an array for the wire.

    Parameters
    ----------
    array : ndarray, uint8 or int32, any shape
        E.g. (C,h,w) uint8 channels or a (2,h,w) int32 label stack.
    level : int
        zlib compression level, 0-9 (1: fast; labels and channels compress well at it).

    Raises
    ------
    ValueError
        For any other dtype.
    """
    dtype = str(array.dtype)
    if dtype not in DTYPES:
        raise ValueError(f"cannot send dtype {dtype}")
    raw = np.ascontiguousarray(array, dtype=DTYPES[dtype]).tobytes()
    return EncodedArray(zlib.compress(raw, level), tuple(int(n) for n in array.shape), dtype)


def encoded_response(encoded: EncodedArray, extra_headers: dict | None = None) -> Response:
    """The binary response for an encoded array: body as is, shape and dtype in headers."""
    headers = {
        "X-Shape": ",".join(str(n) for n in encoded.shape),
        "X-Dtype": encoded.dtype,
        "X-Encoding": "deflate",
        "Cache-Control": "no-store",
        "Access-Control-Expose-Headers": "X-Shape, X-Dtype, X-Revision, X-Encoding",
    }
    headers.update(extra_headers or {})
    return Response(encoded.data, mimetype="application/octet-stream", headers=headers)


def array_response(array: np.ndarray, extra_headers: dict | None = None, level: int = 1) -> Response:
    """Encode ``array`` (uint8 or int32) and send it; see :func:`encoded_response`."""
    return encoded_response(encode_array(array, level), extra_headers)


class EncodedArrayCache:
    """A thread-safe LRU of :class:`EncodedArray` bounded in bytes, entries kept at most ``ttl_s``.

    For blobs whose content never changes under the cache key (the key must name everything the
    content depends on). The time limit bounds how long a process could serve a blob rewritten
    by an admin action the key does not capture.

    Parameters
    ----------
    max_bytes : int
        Upper bound of the summed ``len(data)`` of the entries; the least recently used go first.
        An entry larger than a quarter of it is not kept.
    ttl_s : float
        Seconds an entry stays valid after it was put.
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024, ttl_s: float = 600.0):
        self.max_bytes, self.ttl_s = int(max_bytes), float(ttl_s)
        self._entries: OrderedDict[Hashable, tuple[float, EncodedArray]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> EncodedArray | None:
        """The entry for ``key``, or None when absent or older than ``ttl_s``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if time.monotonic() - entry[0] > self.ttl_s:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: Hashable, value: EncodedArray) -> None:
        """Keep ``value`` under ``key`` (replacing any entry), evicting the least recently used."""
        if len(value.data) > self.max_bytes // 4:
            return
        with self._lock:
            self._drop(key)
            self._entries[key] = (time.monotonic(), value)
            self._bytes += len(value.data)
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[1].data)


def decode_array(data: bytes, dtype: str, shape: tuple[int, ...], max_bytes: int = 256 * 1024 * 1024) -> np.ndarray:
    """Inflate ``data`` into an array of ``dtype`` and ``shape``; 400/413 with a message otherwise."""
    return _inflate(data, dtype, shape, max_bytes)[0]


def _inflate(data: bytes, dtype: str, shape: tuple[int, ...], max_bytes: int) -> tuple[np.ndarray, bool]:
    """:func:`decode_array`, and whether ``data`` is exactly one complete zlib stream."""
    if dtype not in DTYPES:
        raise UserError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    expected = int(np.prod(shape)) * DTYPES[dtype].itemsize
    if expected > max_bytes:
        raise PayloadTooLargeError(f"an array of shape {shape} is larger than allowed")
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(data, expected + 1)  # never inflate past what the shape needs
    except zlib.error as exc:
        raise UserError(f"the body is not deflate-compressed data ({exc})") from None
    if len(raw) != expected or inflater.unconsumed_tail:
        raise UserError(
            f"the body holds {len(raw)}{'+' if inflater.unconsumed_tail else ''} bytes but shape {shape} "
            f"of {dtype} needs {expected}"
        )
    array = np.frombuffer(raw, dtype=DTYPES[dtype]).reshape(shape).astype(DTYPES[dtype].newbyteorder("="))
    return array, inflater.eof and not inflater.unused_data


def request_array(expected_shape: tuple[int, ...]) -> np.ndarray:
    """The request body as an array; the X-Shape / X-Dtype headers must match ``expected_shape``."""
    return request_encoded_array(expected_shape)[0]


def request_encoded_array(expected_shape: tuple[int, ...]) -> tuple[np.ndarray, EncodedArray]:
    """The request body as an int32 array of ``expected_shape`` (see :func:`request_array`), and
    the same array in the wire format: the body itself when it is exactly one complete zlib
    stream, else re-encoded (e.g. to cache it once it is saved).

    Raises
    ------
    UserError
        (400/413) Headers that do not match, a body that is not deflate data or holds another
        number of bytes than the shape needs.
    """
    dtype = request.headers.get("X-Dtype", "int32")
    shape_header = request.headers.get("X-Shape")
    if shape_header:
        if not all(_DECIMAL.fullmatch(n) and not n.startswith("-") for n in shape_header.split(",")):
            raise UserError(f"X-Shape must be comma-separated integers, got {shape_header[:40]!r}",
                            field="X-Shape")
        shape = tuple(int(n) for n in shape_header.split(","))
        if shape != tuple(expected_shape):
            raise UserError(f"labels must have shape {tuple(expected_shape)}, got {shape}")
    if dtype != "int32":
        raise UserError(f"labels must be int32, got {dtype}")
    body = request.get_data(cache=False)
    array, clean = _inflate(body, dtype, tuple(expected_shape), 256 * 1024 * 1024)
    encoded = EncodedArray(body, tuple(array.shape), dtype) if clean else encode_array(array)
    return array, encoded


def box_array(data_b64: str, shape: tuple[int, int]) -> np.ndarray:
    """A base64(deflate(int32)) box sent inside a JSON tool request."""
    import base64
    import binascii

    try:
        data = base64.b64decode(data_b64, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise UserError("labels must be base64 of deflate-compressed int32") from None
    return decode_array(data, "int32", shape)


def box_payload(array: np.ndarray) -> str:
    import base64

    return base64.b64encode(zlib.compress(np.ascontiguousarray(array, dtype="<i4").tobytes(), 1)).decode()
