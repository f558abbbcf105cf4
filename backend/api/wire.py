"""The browser ↔ server array format: raw little-endian bytes, deflate (zlib) compressed.

Shape and dtype travel in ``X-Shape`` ("2,270,270") and ``X-Dtype`` ("int32" | "uint8")
headers; the browser decodes with ``DecompressionStream("deflate")``.
"""

from __future__ import annotations

import zlib

import numpy as np
from flask import Response, request

from backend.errors import PayloadTooLargeError, UserError

DTYPES = {"uint8": np.dtype("<u1"), "int32": np.dtype("<i4")}


def array_response(array: np.ndarray, extra_headers: dict | None = None, level: int = 1) -> Response:
    dtype = str(array.dtype)
    if dtype not in DTYPES:
        raise ValueError(f"cannot send dtype {dtype}")
    raw = np.ascontiguousarray(array, dtype=DTYPES[dtype]).tobytes()
    headers = {
        "X-Shape": ",".join(str(n) for n in array.shape),
        "X-Dtype": dtype,
        "X-Encoding": "deflate",
        "Cache-Control": "no-store",
        "Access-Control-Expose-Headers": "X-Shape, X-Dtype, X-Revision, X-Encoding",
    }
    headers.update(extra_headers or {})
    return Response(zlib.compress(raw, level), mimetype="application/octet-stream", headers=headers)


def decode_array(data: bytes, dtype: str, shape: tuple[int, ...], max_bytes: int = 256 * 1024 * 1024) -> np.ndarray:
    """Inflate ``data`` into an array of ``dtype`` and ``shape``; 400/413 with a message otherwise."""
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
    return np.frombuffer(raw, dtype=DTYPES[dtype]).reshape(shape).astype(DTYPES[dtype].newbyteorder("="))


def request_array(expected_shape: tuple[int, ...]) -> np.ndarray:
    """The request body as an array; the X-Shape / X-Dtype headers must match ``expected_shape``."""
    dtype = request.headers.get("X-Dtype", "int32")
    shape_header = request.headers.get("X-Shape")
    if shape_header:
        try:
            shape = tuple(int(n) for n in shape_header.split(","))
        except ValueError:
            raise UserError(f"X-Shape must be comma-separated integers, got {shape_header!r}") from None
        if shape != tuple(expected_shape):
            raise UserError(f"labels must have shape {tuple(expected_shape)}, got {shape}")
    if dtype != "int32":
        raise UserError(f"labels must be int32, got {dtype}")
    return decode_array(request.get_data(cache=False), dtype, tuple(expected_shape))


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
