"""Image readers (TIFF / OME-TIFF / NPZ / NPY / PNG / JPEG) and display normalisation.

Every reader returns images as ``(C, H, W)`` arrays in their original dtype. Sizes are checked
from the file's header before any pixel is decoded (pixels, and the bytes the decoded arrays
will take: H x W x channels x bytes per sample, read from the .npy headers of an NPZ's members
without decompressing them), so a decompression bomb never allocates.
Problems with the uploaded file raise :class:`ImageImportError` (HTTP 400) or
:class:`ImageTooLargeError` (HTTP 413) with a message that names the file and the problem.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import unicodedata
import zipfile
from dataclasses import dataclass
from xml.etree import ElementTree

import numpy as np
import tifffile
from PIL import Image

from backend.core.pixel_size import tiff_pixel_size

__all__ = [
    "DecodedImage",
    "DecodedTooLargeError",
    "ImageImportError",
    "ImageTooLargeError",
    "channels_to_uint8",
    "decode_images",
    "display_range",
    "safe_filename",
]

SUPPORTED_EXTENSIONS = (".tif", ".tiff", ".npz", ".npy", ".png", ".jpg", ".jpeg")
_EXTENSION_KIND = {".tif": "tiff", ".tiff": "tiff", ".npz": "zip", ".npy": "npy",
                   ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}
_KIND_WORDS = {"tiff": "a TIFF image", "zip": "a zip (.npz) archive", "npy": "a NumPy .npy array",
               "png": "a PNG image", "jpeg": "a JPEG image"}
_DTYPE_KIND_WORDS = {"b": "booleans", "c": "complex numbers", "O": "Python objects",
                     "U": "text", "S": "bytes", "V": "structured records", "M": "datetimes",
                     "m": "time deltas"}
_DISPLAY_SAMPLE_PIXELS = 4_000_000   # display_range reads at most about this many pixels per channel
_CONVERT_BLOCK_PIXELS = 1 << 20      # channels_to_uint8 converts this many pixels at a time


class ImageImportError(ValueError):
    """An uploaded file cannot be imported; the message names the file and the problem."""

    status = 400


class ImageTooLargeError(ImageImportError):
    """An uploaded image exceeds the pixel limit (decided from its header)."""

    status = 413


class DecodedTooLargeError(ImageTooLargeError):
    """An uploaded file's decoded arrays would take more memory than allowed (from its header)."""


@dataclass
class DecodedImage:
    """One image read from an uploaded file.

    Attributes
    ----------
    name : str
        Display name: the file name, or ``"set.npz[3]"`` for item 3 of a batch.
    pixels : np.ndarray
        ``(C, H, W)`` in the file's original dtype (uint8, uint16, float32, ...), ``C >= 1``.
    channel_names : list of str
        Names from OME-TIFF metadata when present, else ``"channel_0"``, ... (length C).
    labels : np.ndarray or None
        ``(2, H, W)`` int32 (whole_cell, nuclear) from an NPZ ``y`` array, else None.
    pixel_size_um : float or None
        µm per pixel declared by a TIFF's metadata (OME-XML, ImageJ, resolution tags; see
        :mod:`backend.core.pixel_size`), in ``[0.01, 100]``; None when unknown (NPZ, NPY, PNG,
        JPEG, or a TIFF without a trustworthy size).
    """

    name: str
    pixels: np.ndarray
    channel_names: list[str]
    labels: np.ndarray | None = None
    pixel_size_um: float | None = None


@dataclass(frozen=True)
class _Limits:
    max_pixels: int
    max_channels: int
    max_decoded_bytes: int | None = None


def safe_filename(filename: str) -> str:
    """Return the bare file name of an uploaded file, refusing anything path-like or odd.

    Parameters
    ----------
    filename : str
        The name the client sent. A relative path such as ``"run1/tile.tif"`` (a folder upload)
        is reduced to its last component.

    Returns
    -------
    str
        The last path component, unchanged otherwise.

    Raises
    ------
    ImageImportError
        For an empty name, a ``..`` component, an absolute path (``/x``, ``C:...``), backslashes,
        NUL or other control characters, or a bare name over 255 bytes in UTF-8.
    """
    if not isinstance(filename, str) or not filename.strip():
        raise ImageImportError("The file has no name; give it a name such as 'tile.tif'.")
    shown = repr(filename[:80])
    if any(unicodedata.category(ch) == "Cc" for ch in filename):
        raise ImageImportError(f"The file name {shown} contains control characters; rename it.")
    if "\\" in filename:
        raise ImageImportError(f"The file name {shown} contains a backslash; rename it.")
    if filename.startswith("/") or (len(filename) >= 2 and filename[1] == ":"
                                    and filename[0].isascii() and filename[0].isalpha()):
        raise ImageImportError(f"The file name {shown} is an absolute path; send the bare name.")
    parts = filename.split("/")
    if ".." in parts:
        raise ImageImportError(f"The file name {shown} contains '..'; send the bare name.")
    bare = parts[-1]
    if bare in ("", "."):
        raise ImageImportError(f"The file name {shown} names a folder, not a file.")
    if len(bare.encode("utf-8")) > 255:
        raise ImageImportError(
            f"The file name {shown}... is longer than 255 bytes; shorten it.")
    return bare


def decode_images(data: bytes, filename: str, *, max_pixels: int = 20000 * 20000,
                  max_channels: int = 64, max_decoded_bytes: int | None = None) -> list[DecodedImage]:
    """Read every image in an uploaded file.

    Parameters
    ----------
    data : bytes
        The whole file.
    filename : str
        The client's file name; its extension (``.tif .tiff .npz .npy .png .jpg .jpeg``) must
        agree with the content's magic bytes.
    max_pixels : int
        Largest allowed ``H * W`` of one image (and of all images of an NPZ/NPY batch together).
    max_channels : int
        Largest allowed channel count C.
    max_decoded_bytes : int or None
        Most bytes the decoded arrays of the file may take (N x H x W x C x bytes per sample,
        plus an NPZ's labels ``y`` and their int32 copy), decided from the header; None: no
        limit.

    Returns
    -------
    list of DecodedImage
        One entry, or N for an ``(N, H, W, C)`` NPZ/NPY batch (named ``"file.npz[i]"``).

    Raises
    ------
    ImageTooLargeError
        When the header declares more than ``max_pixels`` pixels;
        :class:`DecodedTooLargeError` when it declares arrays larger than ``max_decoded_bytes``.
    ImageImportError
        For an empty, truncated, mislabelled or unsupported file, an unsupported dtype
        (bool, complex, object), NaN/inf in float data, more than ``max_channels`` channels,
        arrays with the wrong number of dimensions, or labels ``y`` that do not match ``X``.
    """
    if max_pixels < 1 or max_channels < 1 or (max_decoded_bytes is not None and max_decoded_bytes < 0):
        raise ValueError("max_pixels and max_channels must be >= 1, max_decoded_bytes >= 0")
    name = safe_filename(filename)
    limits = _Limits(int(max_pixels), int(max_channels),
                     None if max_decoded_bytes is None else int(max_decoded_bytes))
    if len(data) == 0:
        raise ImageImportError(f"{name} is empty (0 bytes); check the export and upload it again.")
    dot = name.rfind(".")
    extension = name[dot:].lower() if dot > 0 else ""
    if extension not in _EXTENSION_KIND:
        what = f"the extension '{extension}'" if extension else "a name without an extension"
        raise ImageImportError(f"{name} has {what}, which LoopLabel does not read; upload one of "
                               f"{', '.join(SUPPORTED_EXTENSIONS)}.")
    expected = _EXTENSION_KIND[extension]
    found = _sniff_kind(bytes(data[:16]))
    if found != expected:
        content = _KIND_WORDS.get(found) or _describe_unknown(bytes(data[:1024]))
        raise ImageImportError(f"{name} is named like {_KIND_WORDS[expected]} but its content is "
                               f"{content}; upload the original file or fix its extension.")
    if expected == "tiff":
        return [_decode_tiff(data, name, limits)]
    if expected in ("png", "jpeg"):
        return [_decode_pillow(data, name, expected.upper(), limits)]
    if expected == "npy":
        return _decode_npy(data, name, limits)
    return _decode_npz(data, name, limits)


def display_range(pixels: np.ndarray, low: float = 0.5, high: float = 99.8) -> np.ndarray:
    """Per-channel display range from robust percentiles of the whole image.

    Only non-trivial pixels count: those above the channel's minimum and below its maximum, so
    a floor of zero padding or clipped background and a ceiling of saturated pixels (255, 4095
    or 65535, whatever the bit depth) do not pull the range. Bright outliers spread thinly over
    the intensity scale (hot pixels, debris) do not set the top either: when more pixels lie
    above the highest *dense* intensity (a histogram bin, of 256 between the low end and the
    brightest pixel, holding 1/10000 of the pixels and 10 at least) than the ``high`` percentile
    leaves out, the top is the ``high`` percentile of the pixels at or below it.

    Parameters
    ----------
    pixels : np.ndarray
        ``(C, H, W)`` real-valued, finite; any bit depth (8-, 12-, 16-bit integers or floats).
        Images over ~4M pixels are read on a regular strided grid (every k-th row and column)
        so that a 4096x4096 image stays well under a second.
    low, high : float
        Percentiles in ``[0, 100]``, ``low < high``.

    Returns
    -------
    np.ndarray
        ``(C, 2)`` float64 ``(lo, hi)`` per channel in the pixels' units, always ``hi > lo``:
        if the percentiles coincide, the channel's min/max is used, and if that is flat too,
        ``hi = lo + 1``.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[0] < 1 or pixels.shape[1] * pixels.shape[2] == 0:
        raise ValueError(f"pixels must be a non-empty (C,H,W) array, got shape {pixels.shape}")
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"need 0 <= low < high <= 100, got low={low}, high={high}")
    _, height, width = pixels.shape
    step = max(1, int(np.ceil(np.sqrt(height * width / _DISPLAY_SAMPLE_PIXELS))))
    sample = pixels[:, ::step, ::step].reshape(pixels.shape[0], -1)
    if not np.isfinite(sample).all():
        raise ValueError("pixels contain NaN or infinite values; no display range exists")
    ranges = np.array([_robust_range(values.astype(np.float64), low, high) for values in sample])
    flat = ranges[:, 1] <= ranges[:, 0]
    if flat.any():
        ranges[flat, 0] = sample[flat].min(axis=1)
        ranges[flat, 1] = sample[flat].max(axis=1)
        still_flat = ranges[:, 1] <= ranges[:, 0]
        ranges[still_flat, 1] = ranges[still_flat, 0] + 1.0
    return ranges


_DENSE_BIN_FRACTION = 1 / 10000  # a histogram bin this full (of the pixels, and 10 at least) is content


def _robust_range(values: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """``(lo, hi)`` of one channel's float64 values (see :func:`display_range`)."""
    inner = values[(values > values.min()) & (values < values.max())]
    if inner.size < 2:
        inner = values
    lo = float(np.percentile(inner, low))
    top = float(inner.max())
    if top > lo:
        counts, edges = np.histogram(inner, bins=256, range=(lo, top))
        dense = np.flatnonzero(counts >= max(10, _DENSE_BIN_FRACTION * inner.size))
        below = inner[inner <= edges[dense[-1] + 1]] if dense.size else inner
        if below.size < inner.size * high / 100:   # the sparse tail is more than the percentile drops
            inner = below
    return lo, float(np.percentile(inner, high))


def channels_to_uint8(pixels: np.ndarray, drange: np.ndarray) -> np.ndarray:
    """Map each channel linearly from its display range to 0..255.

    Parameters
    ----------
    pixels : np.ndarray
        ``(C, H, W)`` real-valued (any integer or float dtype), e.g. one crop of an image.
    drange : np.ndarray
        ``(C, 2)`` ``(lo, hi)`` per channel with ``hi > lo``, as from :func:`display_range`.

    Returns
    -------
    np.ndarray
        ``(C, H, W)`` uint8: ``round(255 * (x - lo) / (hi - lo))`` clipped to ``[0, 255]``.
    """
    pixels = np.asarray(pixels)
    drange = np.asarray(drange, dtype=np.float64)
    if pixels.ndim != 3:
        raise ValueError(f"pixels must be (C,H,W), got shape {pixels.shape}")
    if drange.shape != (pixels.shape[0], 2):
        raise ValueError(f"drange must be ({pixels.shape[0]}, 2), got shape {drange.shape}")
    if not (np.isfinite(drange).all() and (drange[:, 1] > drange[:, 0]).all()):
        raise ValueError("every display range needs finite lo < hi")
    out = np.empty(pixels.shape, dtype=np.uint8)
    if pixels.size == 0:
        return out
    for c, (lo, hi) in enumerate(drange):
        scale = 255.0 / (hi - lo)
        if pixels.dtype in (np.uint8, np.uint16):   # a lookup table: exact and fast
            table = _to_uint8(np.arange(np.iinfo(pixels.dtype).max + 1, dtype=np.float64), lo, scale)
            np.take(table, pixels[c], out=out[c], mode="clip")
            continue
        flat_in, flat_out = pixels[c].reshape(-1), out[c].reshape(-1)
        for start in range(0, flat_in.size, _CONVERT_BLOCK_PIXELS):
            block = slice(start, start + _CONVERT_BLOCK_PIXELS)
            flat_out[block] = _to_uint8(flat_in[block].astype(np.float64), lo, scale)
    return out


def _to_uint8(values: np.ndarray, lo: float, scale: float) -> np.ndarray:
    """float64 values -> uint8 via (v - lo) * scale, rounded half-to-even, clipped (in place)."""
    values -= lo
    values *= scale
    np.clip(values, 0.0, 255.0, out=values)
    return np.rint(values, out=values).astype(np.uint8)


# ---------------------------------------------------------------- format detection and checks

def _sniff_kind(head: bytes) -> str | None:
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    return None


def _describe_unknown(head: bytes) -> str:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:   # not merely a character cut at the end of the sample
            return "unrecognised binary data"
        text = head[: exc.start].decode("utf-8")
    if all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        return "plain text, not an image"
    return "unrecognised binary data"


@contextlib.contextmanager
def _library_errors(name: str, what: str):
    """Turn a reader library's failure on bad bytes into an ImageImportError."""
    try:
        yield
    except (ImageImportError, MemoryError):
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{name}: Pillow refused the image as too large to decode "
                                 f"safely ({exc}); split it into tiles before uploading.") from exc
    except Exception as exc:  # noqa: BLE001 - any library failure here means unreadable bytes
        raise ImageImportError(f"{name} could not be read as {what}: the file is truncated or "
                               f"corrupt ({type(exc).__name__}: {exc}); export it again.") from exc


def _check_dtype(dtype: np.dtype, name: str) -> None:
    if dtype.kind not in "uif":
        words = _DTYPE_KIND_WORDS.get(dtype.kind, f"dtype {dtype}")
        raise ImageImportError(f"{name} holds {words} (dtype {dtype}); images must hold integer or "
                               f"real floating-point intensities.")


def _check_size(name: str, height: int, width: int, channels: int, limits: _Limits,
                count: int = 1, layout_hint: str = "", itemsize: int | None = None,
                extra_bytes: int = 0) -> None:
    """Refuse an image by its header: empty, too many channels (400), too many pixels or, with
    ``itemsize`` (bytes per sample), more decoded bytes than allowed (413). ``extra_bytes``: what
    else decoding the file allocates (an NPZ's labels)."""
    if height < 1 or width < 1 or channels < 1 or count < 1:
        raise ImageImportError(f"{name} is empty (height {height}, width {width}, {channels} "
                               f"channels, {count} images).")
    if channels > limits.max_channels:
        raise ImageImportError(f"{name} has {channels} channels, more than the limit of "
                               f"{limits.max_channels}.{layout_hint}")
    total = count * height * width
    if total > limits.max_pixels:
        what = f"{count} images of {height}x{width}" if count > 1 else f"{height}x{width}"
        raise ImageTooLargeError(f"{name} is too large: {what} = {total:,} pixels, over the limit "
                                 f"of {limits.max_pixels:,}; split it into tiles or smaller files.")
    if itemsize is not None and limits.max_decoded_bytes is not None:
        _check_decoded_bytes(name, total * channels * itemsize + extra_bytes, limits.max_decoded_bytes,
                             f"{count} x {height}x{width}" if count > 1 else f"{height}x{width}",
                             channels, itemsize, extra_bytes)


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):,.0f} MB"


def _check_decoded_bytes(name: str, nbytes: int, limit: int, what: str, channels: int, itemsize: int,
                         extra_bytes: int = 0) -> None:
    """413 when the arrays decoded from ``name`` would take more than ``limit`` bytes."""
    if nbytes <= limit:
        return
    labels = f" + {_megabytes(extra_bytes)} of labels" if extra_bytes else ""
    raise DecodedTooLargeError(
        f"{name} is too large to decode: {what} pixels x {channels} channel(s) x {itemsize} byte(s) "
        f"per sample{labels} = {_megabytes(nbytes)} in memory, over the limit of {_megabytes(limit)}; "
        f"split it into tiles or smaller files.")


def _finish(name: str, pixels: np.ndarray, channel_names: list[str] | None,
            labels: np.ndarray | None = None, pixel_size_um: float | None = None) -> DecodedImage:
    """Final checks shared by all readers; pixels are (C,H,W)."""
    _check_dtype(pixels.dtype, name)
    if not pixels.dtype.isnative:
        pixels = pixels.astype(pixels.dtype.newbyteorder("="))
    if pixels.dtype.kind == "f":
        for c, channel in enumerate(pixels):
            if not np.isfinite(channel).all():
                raise ImageImportError(f"{name} has NaN or infinite values in channel {c}; replace "
                                       f"them (e.g. with 0) before uploading.")
    n = pixels.shape[0]
    if channel_names is None or len(channel_names) != n:
        channel_names = [f"channel_{c}" for c in range(n)]
    return DecodedImage(name, np.ascontiguousarray(pixels), list(channel_names), labels,
                        pixel_size_um)


# ---------------------------------------------------------------------------------- TIFF

def _decode_tiff(data: bytes, name: str, limits: _Limits) -> DecodedImage:
    with _tifffile_errors(name):
        with _library_errors(name, "a TIFF"):
            tif = tifffile.TiffFile(io.BytesIO(data))
        with contextlib.closing(tif):
            with _library_errors(name, "a TIFF"):
                n_pages = len(tif.pages)
            if n_pages > 16 * limits.max_channels + 16:
                raise ImageImportError(f"{name} has {n_pages:,} pages, far more than the limit of "
                                       f"{limits.max_channels} channels; upload one image per file.")
            with _library_errors(name, "a TIFF"):
                extent = _tiff_extent(tif)   # parses every IFD: a file cut inside one fails here
                series = list(tif.series)
            if not series:
                raise ImageImportError(f"{name} holds no image data (a TIFF without pages).")
            if extent > len(data):
                raise ImageImportError(f"{name} is truncated: its data should reach byte "
                                       f"{extent:,} but the file has {len(data):,} bytes; upload "
                                       f"the complete file.")
            first = series[0]
            shape, axes = tuple(first.shape), first.axes
            if len(series) > 1 and all(s.axes == "YX" and tuple(s.shape) == shape
                                       and s.dtype == first.dtype for s in series):
                shape, axes = (len(series), *shape), "IYX"  # single-channel pages -> channels
            else:
                series = [first]
            if "Y" not in axes or "X" not in axes:
                raise ImageImportError(f"{name} holds no 2-D image (TIFF axes '{axes}').")
            extra = [i for i, (size, ax) in enumerate(zip(shape, axes))
                     if ax not in "YX" and size > 1]
            if len(extra) > 1:
                raise ImageImportError(
                    f"{name} has axes '{axes}' with shape {shape}: more than (channels, height, "
                    f"width); export a single time point and z-plane per file.")
            _check_dtype(np.dtype(first.dtype), name)
            height, width = shape[axes.index("Y")], shape[axes.index("X")]
            _check_size(name, height, width, shape[extra[0]] if extra else 1, limits,
                        itemsize=np.dtype(first.dtype).itemsize)
            with _library_errors(name, "a TIFF"):
                pixels = np.stack([s.asarray() for s in series]).reshape(shape)
            channel_names = _ome_channel_names(tif.ome_metadata) if tif.is_ome else None
            pixel_size_um = _declared_pixel_size(tif)
    order = extra + [axes.index("Y"), axes.index("X")]
    kept = sorted(order)
    pixels = pixels.reshape([shape[i] for i in kept])
    pixels = pixels.transpose([kept.index(i) for i in order]).reshape(-1, height, width)
    return _finish(name, pixels, channel_names, pixel_size_um=pixel_size_um)


def _declared_pixel_size(tif: tifffile.TiffFile) -> float | None:
    """µm per pixel from the file's metadata; None when unknown. Metadata never fails an import."""
    try:
        page = tif.pages.first if hasattr(tif.pages, "first") else tif.pages[0]
        tags = {tag.name: tag.value for tag in page.tags.values()
                if tag.name in ("XResolution", "YResolution", "ResolutionUnit")}
        return tiff_pixel_size(tags, tif.ome_metadata if tif.is_ome else None,
                               tif.imagej_metadata if tif.is_imagej else None)
    except Exception:  # noqa: BLE001 - unreadable metadata means an unknown pixel size
        return None


def _tiff_extent(tif: tifffile.TiffFile) -> int:
    """One past the last byte that any page's IFD, tag value or pixel data refers to."""
    fmt, extent = tif.tiff, 0
    for page in tif.pages:
        ifd_end = page.offset + fmt.tagnosize + len(page.tags) * fmt.tagsize + fmt.offsetsize
        tag_ends = (tag.valueoffset + tag.valuebytecount for tag in page.tags.values())
        data_ends = (o + c for o, c in zip(page.dataoffsets, page.databytecounts))
        extent = max(extent, ifd_end, *tag_ends, *data_ends)
    return extent


class _ThreadErrorLog(logging.Handler):
    """Collects ERROR records logged by the current thread."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


@contextlib.contextmanager
def _tifffile_errors(name: str):
    """tifffile logs (rather than raises) on a damaged file; such a log makes the file unreadable."""
    log, handler = logging.getLogger("tifffile"), _ThreadErrorLog()
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)
    if handler.messages:
        raise ImageImportError(f"{name} is a damaged or truncated TIFF ({handler.messages[0]}); "
                               f"export it again and upload the complete file.")


def _ome_channel_names(xml: str | None) -> list[str] | None:
    """Channel names of the first OME Image; None when unreadable (defaults are used then)."""
    if not xml:
        return None
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None
    local = lambda element: element.tag.rsplit("}", 1)[-1]  # noqa: E731
    image = next((el for el in root.iter() if local(el) == "Image"), None)
    pixels = next((el for el in image if local(el) == "Pixels"), None) if image is not None else None
    if pixels is None:
        return None
    channels = [el for el in pixels if local(el) == "Channel"]
    return [ch.get("Name") or f"channel_{i}" for i, ch in enumerate(channels)] or None


# ----------------------------------------------------------------------------- PNG / JPEG

def _decode_pillow(data: bytes, name: str, fmt: str, limits: _Limits) -> DecodedImage:
    with _library_errors(name, f"a {fmt}"):
        image = Image.open(io.BytesIO(data), formats=[fmt])
    with image:
        width, height = image.size
        channels, itemsize = _pillow_samples(image.mode)
        _check_size(name, height, width, channels, limits, itemsize=itemsize)
        with _library_errors(name, f"a {fmt}"):
            image.load()
            if image.mode == "1":
                image = image.convert("L")
            elif image.mode in ("LA", "La", "PA"):
                image = image.getchannel(0) if image.mode != "PA" else image.convert("RGB")
            elif image.mode not in ("L", "I", "F", "RGB") and not image.mode.startswith("I;16"):
                image = image.convert("RGB")     # RGBA drops alpha; P, CMYK, YCbCr -> RGB
            array = np.asarray(image)
    pixels = array[np.newaxis] if array.ndim == 2 else np.moveaxis(array, -1, 0)
    _check_size(name, height, width, pixels.shape[0], limits)
    return _finish(name, pixels, None)


def _pillow_samples(mode: str) -> tuple[int, int]:
    """(channels, bytes per sample) of the array _decode_pillow makes from an image of ``mode``."""
    if mode in ("I", "F", "I;32", "I;32B", "F;32", "F;32B"):
        return 1, 4
    if mode.startswith("I;16"):
        return 1, 2
    if mode in ("1", "L", "LA", "La"):
        return 1, 1
    return 3, 1  # RGB, and P, PA, RGBA, CMYK, YCbCr... converted to RGB


# ----------------------------------------------------------------------------- NPY / NPZ

def _npy_header(stream, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header, without reading the data."""
    with _library_errors(name, "a NumPy array"):
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ImageImportError(f"{name} uses .npy format {version}, which is not supported "
                                   f"(save plain numeric arrays with numpy.save/savez).")
    return tuple(int(s) for s in shape), np.dtype(dtype)


def _layout(shape: tuple[int, ...], name: str, what: str) -> tuple[int, int, int, int]:
    """(N, H, W, C) of an X-like array shaped (H,W), (H,W,C) or (N,H,W,C)."""
    if len(shape) == 2:
        return 1, shape[0], shape[1], 1
    if len(shape) == 3:
        return 1, *shape
    if len(shape) == 4:
        return shape
    raise ImageImportError(f"{name}: {what} has {len(shape)} dimensions (shape {shape}); expected "
                           f"(H,W,C) for one image or (N,H,W,C) for a batch.")


def _check_array_header(shape, dtype, name: str, what: str, limits: _Limits):
    if dtype.hasobject:
        raise ImageImportError(f"{name}: {what} holds Python objects (pickled data), which are "
                               f"never loaded; save a plain numeric array.")
    _check_dtype(dtype, f"{name}: {what}")
    n, height, width, channels = _layout(shape, name, what)
    hint = " If the array is stored as (C,H,W), save it as (H,W,C)." if len(shape) >= 3 else ""
    _check_size(name, height, width, channels, limits, count=n, layout_hint=hint, itemsize=dtype.itemsize)
    return n, height, width, channels


def _split_batch(name: str, array: np.ndarray, batch: bool,
                 labels: np.ndarray | None) -> list[DecodedImage]:
    """(N,H,W,C) pixels and (N,2,H,W) labels -> one DecodedImage per item."""
    images = []
    for i in range(array.shape[0]):
        item_name = f"{name}[{i}]" if batch else name
        images.append(_finish(item_name, np.moveaxis(array[i], -1, 0), None,
                              None if labels is None else labels[i]))
    return images


def _decode_npy(data: bytes, name: str, limits: _Limits) -> list[DecodedImage]:
    stream = io.BytesIO(data)
    shape, dtype = _npy_header(stream, name)
    n, height, width, channels = _check_array_header(shape, dtype, name, "the array", limits)
    with _library_errors(name, "a NumPy array"):
        array = np.load(io.BytesIO(data), allow_pickle=False)
    return _split_batch(name, array.reshape(n, height, width, channels), len(shape) == 4, None)


def _decode_npz(data: bytes, name: str, limits: _Limits) -> list[DecodedImage]:
    with _library_errors(name, "an .npz archive"):
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.namelist()
    with archive:
        if "X.npy" not in members:
            found = ", ".join(repr(m.removesuffix(".npy")) for m in members[:10]) or "nothing"
            raise ImageImportError(f"{name} has no array named 'X' (it holds {found}); save images "
                                   f"as np.savez(path, X=images, y=labels) with X (H,W,C) or "
                                   f"(N,H,W,C).")
        with archive.open("X.npy") as stream:
            x_shape, x_dtype = _npy_header(stream, f"{name} (X)")
        n, height, width, channels = _check_array_header(x_shape, x_dtype, name, "X", limits)
        y_shape = None
        if "y.npy" in members:
            with archive.open("y.npy") as stream:
                y_shape, y_dtype = _npy_header(stream, f"{name} (y)")
            _check_y_header(y_shape, y_dtype, x_shape, name)
            y_bytes = int(np.prod(y_shape)) * y_dtype.itemsize + n * 2 * height * width * 4  # y, int32 labels
            _check_size(name, height, width, channels, limits, count=n, itemsize=x_dtype.itemsize,
                        extra_bytes=y_bytes)
    with _library_errors(name, "an .npz archive"), \
            np.load(io.BytesIO(data), allow_pickle=False) as npz:
        x = npz["X"].reshape(n, height, width, channels)
        y = npz["y"] if y_shape is not None else None
    labels = None if y is None else _labels_from_y(y, n, height, width, name)
    return _split_batch(name, x, len(x_shape) == 4, labels)


def _check_y_header(y_shape, y_dtype, x_shape, name: str) -> None:
    spatial = tuple(x_shape[:-1]) if len(x_shape) >= 3 else tuple(x_shape)
    matches = y_shape == spatial or (y_shape[:-1] == spatial and y_shape[-1:] in ((1,), (2,)))
    if not matches:
        raise ImageImportError(
            f"{name}: y has shape {y_shape} but X has shape {x_shape}; y must be X's shape with "
            f"its last axis holding 1 (whole-cell) or 2 (whole-cell, nuclear) label channels.")
    if y_dtype.kind not in "iuf" or y_dtype.hasobject:
        raise ImageImportError(f"{name}: y has dtype {y_dtype}; labels must be integer cell ids.")


def _labels_from_y(y: np.ndarray, n: int, height: int, width: int, name: str) -> np.ndarray:
    """y (..., H, W[, F]) -> (N, 2, H, W) int32 with nuclear zeros when F == 1."""
    y = y.reshape(n, height, width, -1)
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and (y == np.round(y)).all()):
        raise ImageImportError(f"{name}: y holds non-integer values; labels must be cell ids.")
    if y.size and (y.min() < 0 or y.max() > np.iinfo(np.int32).max):
        raise ImageImportError(f"{name}: y holds ids outside 0..{np.iinfo(np.int32).max}; "
                               f"labels must be non-negative int32 cell ids.")
    labels = np.zeros((n, 2, height, width), dtype=np.int32)
    labels[:, : y.shape[-1]] = np.moveaxis(y, -1, 1)
    return labels
