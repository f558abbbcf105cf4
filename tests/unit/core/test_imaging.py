"""Tests for backend.core.imaging: readers, upload validation, display normalisation."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from backend.core.imaging import (
    DecodedImage,
    ImageImportError,
    ImageTooLargeError,
    channels_to_uint8,
    decode_images,
    display_range,
    safe_filename,
)

RNG = np.random.default_rng(20240601)


# ------------------------------------------------------------------ writers used by the tests

def tiff_bytes(array: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **kwargs)
    return buffer.getvalue()


def png_bytes(array: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def npy_header_only(shape: tuple[int, ...], descr: str = "<u2") -> bytes:
    """A .npy header declaring `shape` with no data behind it (a decompression-bomb stand-in)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def tiff_header_only(width: int, height: int) -> bytes:
    """A hand-made little-endian TIFF whose IFD declares width x height deflate pixels, 16 bytes."""
    n_entries = 9
    data_offset = 8 + 2 + 12 * n_entries + 4
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 8), (262, 3, 1),
               (273, 4, data_offset), (277, 3, 1), (278, 4, height), (279, 4, 16)]
    out = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", n_entries)
    for tag, kind, value in entries:
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, 1) + packed
    return out + struct.pack("<I", 0) + zlib.compress(b"\x00" * 64)[:16].ljust(16, b"\x00")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG with a valid IHDR for width x height grayscale but almost no image data."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))


def only(images: list[DecodedImage]) -> DecodedImage:
    assert len(images) == 1
    return images[0]


# ------------------------------------------------------------------------------ round trips

def test_ome_tiff_round_trip_keeps_channel_names_and_dtype():
    pixels = RNG.integers(0, 60000, size=(3, 41, 57), dtype=np.uint16)
    data = tiff_bytes(pixels, ome=True,
                      metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "CD45", "PanCK"]}})
    image = only(decode_images(data, "slide.ome.tif"))
    assert image.name == "slide.ome.tif"
    assert image.pixels.dtype == np.uint16
    np.testing.assert_array_equal(image.pixels, pixels)
    assert image.channel_names == ["DAPI", "CD45", "PanCK"]
    assert image.labels is None


def test_multipage_tiff_stacks_single_channel_pages_as_channels():
    pixels = RNG.integers(0, 255, size=(4, 33, 20), dtype=np.uint8)
    buffer = io.BytesIO()
    with tifffile.TiffWriter(buffer) as writer:
        for page in pixels:
            writer.write(page)
    image = only(decode_images(buffer.getvalue(), "pages.tiff"))
    np.testing.assert_array_equal(image.pixels, pixels)
    assert image.channel_names == ["channel_0", "channel_1", "channel_2", "channel_3"]


def test_tiff_written_as_one_cyx_stack_reads_back():
    pixels = RNG.normal(100, 10, size=(2, 16, 24)).astype(np.float32)
    image = only(decode_images(tiff_bytes(pixels, compression="zlib"), "stack.tif"))
    assert image.pixels.dtype == np.float32
    np.testing.assert_array_equal(image.pixels, pixels)


def test_rgb_tiff_with_channels_last_becomes_channels_first():
    rgb = RNG.integers(0, 255, size=(30, 20, 3), dtype=np.uint8)
    image = only(decode_images(tiff_bytes(rgb, photometric="rgb"), "rgb.tif"))
    assert image.pixels.shape == (3, 30, 20)
    np.testing.assert_array_equal(image.pixels, np.moveaxis(rgb, -1, 0))


def test_single_plane_tiff_is_one_channel():
    plane = RNG.integers(0, 4000, size=(25, 26), dtype=np.uint16)
    image = only(decode_images(tiff_bytes(plane), "plane.TIF"))
    np.testing.assert_array_equal(image.pixels, plane[np.newaxis])


def test_rgb_png_round_trip():
    rgb = RNG.integers(0, 255, size=(21, 34, 3), dtype=np.uint8)
    image = only(decode_images(png_bytes(rgb), "photo.png"))
    assert image.pixels.dtype == np.uint8
    np.testing.assert_array_equal(image.pixels, np.moveaxis(rgb, -1, 0))
    assert image.channel_names == ["channel_0", "channel_1", "channel_2"]


def test_grayscale_png_is_one_channel():
    gray = RNG.integers(0, 255, size=(19, 23), dtype=np.uint8)
    image = only(decode_images(png_bytes(gray), "gray.png"))
    np.testing.assert_array_equal(image.pixels, gray[np.newaxis])


def test_sixteen_bit_png_keeps_its_depth():
    gray = RNG.integers(0, 65535, size=(12, 9), dtype=np.uint16)
    image = only(decode_images(png_bytes(gray), "deep.png"))
    assert image.pixels.dtype.kind in "ui" and image.pixels.dtype.itemsize >= 2
    np.testing.assert_array_equal(image.pixels[0].astype(np.int64), gray.astype(np.int64))


def test_rgba_png_drops_alpha():
    rgba = RNG.integers(0, 255, size=(10, 11, 4), dtype=np.uint8)
    image = only(decode_images(png_bytes(rgba), "alpha.png"))
    np.testing.assert_array_equal(image.pixels, np.moveaxis(rgba[..., :3], -1, 0))


def test_jpeg_reads_as_rgb_close_to_the_original():
    rgb = np.full((32, 32, 3), (200, 60, 20), dtype=np.uint8)
    image = only(decode_images(png_bytes(rgb, fmt="JPEG"), "photo.jpeg"))
    assert image.pixels.shape == (3, 32, 32) and image.pixels.dtype == np.uint8
    assert np.abs(image.pixels.astype(int) - np.array([200, 60, 20])[:, None, None]).max() <= 8


def test_npz_single_image_hwc_with_two_feature_labels():
    x = RNG.normal(size=(20, 30, 2)).astype(np.float32)
    y = RNG.integers(0, 50, size=(20, 30, 2)).astype(np.int32)
    image = only(decode_images(npz_bytes(X=x, y=y), "one.npz"))
    assert image.name == "one.npz"
    np.testing.assert_array_equal(image.pixels, np.moveaxis(x, -1, 0))
    assert image.labels.dtype == np.int32 and image.labels.shape == (2, 20, 30)
    np.testing.assert_array_equal(image.labels, np.moveaxis(y, -1, 0))


def test_npz_batch_nhwc_yields_one_named_image_per_item():
    x = RNG.integers(0, 1000, size=(3, 16, 18, 2)).astype(np.uint16)
    y = RNG.integers(0, 9, size=(3, 16, 18, 2)).astype(np.int64)
    images = decode_images(npz_bytes(X=x, y=y), "set.npz")
    assert [image.name for image in images] == ["set.npz[0]", "set.npz[1]", "set.npz[2]"]
    for i, image in enumerate(images):
        np.testing.assert_array_equal(image.pixels, np.moveaxis(x[i], -1, 0))
        assert image.labels.dtype == np.int32
        np.testing.assert_array_equal(image.labels, np.moveaxis(y[i], -1, 0))


def test_npz_whole_cell_only_labels_get_empty_nuclear():
    x = RNG.integers(0, 255, size=(2, 10, 12, 1)).astype(np.uint8)
    y = RNG.integers(0, 7, size=(2, 10, 12, 1)).astype(np.uint16)
    images = decode_images(npz_bytes(X=x, y=y), "wc.npz")
    for i, image in enumerate(images):
        np.testing.assert_array_equal(image.labels[0], y[i, ..., 0])
        assert not image.labels[1].any()


def test_npz_without_labels():
    x = RNG.integers(0, 255, size=(10, 12, 3)).astype(np.uint8)
    image = only(decode_images(npz_bytes(X=x), "nolabels.npz"))
    assert image.labels is None and image.pixels.shape == (3, 10, 12)


def test_npy_hwc_and_batch():
    x = RNG.integers(0, 255, size=(9, 7, 2)).astype(np.int16)
    image = only(decode_images(npy_bytes(x), "a.npy"))
    np.testing.assert_array_equal(image.pixels, np.moveaxis(x, -1, 0))
    batch = RNG.integers(0, 255, size=(2, 9, 7, 1)).astype(np.uint8)
    images = decode_images(npy_bytes(batch), "b.npy")
    assert [i.name for i in images] == ["b.npy[0]", "b.npy[1]"]
    np.testing.assert_array_equal(images[1].pixels, np.moveaxis(batch[1], -1, 0))


def test_big_endian_npy_reads_with_same_values():
    x = RNG.integers(0, 65535, size=(5, 6, 1)).astype(">u2")
    image = only(decode_images(npy_bytes(x), "be.npy"))
    assert image.pixels.dtype.isnative
    np.testing.assert_array_equal(image.pixels[0], x[..., 0].astype(np.uint16))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dtype=st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64]),
       shape=st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(1, 5)),
       data=st.data())
def test_npz_round_trip_property(dtype, shape, data):
    x = data.draw(hnp.arrays(dtype, shape, elements=hnp.from_dtype(
        np.dtype(dtype), allow_nan=False, allow_infinity=False)))
    y = data.draw(hnp.arrays(np.int32, shape[:2] + (2,), elements=st.integers(0, 2**31 - 1)))
    image = only(decode_images(npz_bytes(X=x, y=y), "p.npz"))
    assert image.pixels.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(image.pixels, np.moveaxis(x, -1, 0))
    np.testing.assert_array_equal(image.labels, np.moveaxis(y, -1, 0))
    assert len(image.channel_names) == shape[2]


# ---------------------------------------------------------------------- pixel size from metadata

CYX = RNG.integers(0, 4000, size=(2, 24, 30), dtype=np.uint16)


def ome_bytes(**physical) -> bytes:
    return tiff_bytes(CYX, ome=True, metadata={"axes": "CYX", **physical})


@pytest.mark.parametrize("physical,expected", [
    ({"PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65}, 0.65),
    ({"PhysicalSizeX": 650, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 650,
      "PhysicalSizeYUnit": "nm"}, 0.65),
    ({"PhysicalSizeX": 0.0005, "PhysicalSizeXUnit": "mm", "PhysicalSizeY": 0.0005,
      "PhysicalSizeYUnit": "mm"}, 0.5),
    ({"PhysicalSizeX": 3250, "PhysicalSizeXUnit": "Å", "PhysicalSizeY": 3250,
      "PhysicalSizeYUnit": "Å"}, 0.325),
    ({"PhysicalSizeX": 0.5, "PhysicalSizeY": 0.52}, 0.51),        # within 10 %: the mean
    ({"PhysicalSizeX": 0.5, "PhysicalSizeY": 0.8}, None),         # anisotropic
    ({"PhysicalSizeX": 1, "PhysicalSizeXUnit": "pixel", "PhysicalSizeY": 1,
      "PhysicalSizeYUnit": "pixel"}, None),
    ({"PhysicalSizeX": 650, "PhysicalSizeY": 650}, None),         # 650 µm per pixel: absurd
    ({"PhysicalSizeX": 0.65, "PhysicalSizeXUnit": "m", "PhysicalSizeY": 0.65,
      "PhysicalSizeYUnit": "m"}, None),
    ({}, None),
])
def test_ome_tiff_pixel_size(physical, expected):
    image = only(decode_images(ome_bytes(**physical), "slide.ome.tif"))
    np.testing.assert_array_equal(image.pixels, CYX)
    assert image.pixel_size_um == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize("kwargs,expected", [
    ({"resolution": (20000, 20000), "resolutionunit": 3}, 0.5),                     # px per cm
    ({"resolution": (50800, 50800), "resolutionunit": 2}, 0.5),                     # px per inch
    ({"resolution": (20000, 14000), "resolutionunit": 3}, None),                    # anisotropic
    ({"resolution": (72, 72), "resolutionunit": 2}, None),                          # screen dpi
    ({"resolution": (300, 300), "resolutionunit": 2}, None),
    ({"resolution": (300, 300), "resolutionunit": 3}, None),                        # 762 ppi
    ({"resolution": (20000, 20000), "resolutionunit": 1}, None),                    # no unit
    ({}, None),
])
def test_plain_tiff_resolution_tags(kwargs, expected):
    image = only(decode_images(tiff_bytes(CYX[0], **kwargs), "plain.tif"))
    assert image.pixel_size_um == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize("unit,expected", [("micron", 0.25), ("um", 0.25), ("\\u00B5m", 0.25),
                                           ("nm", None), ("pixel", None)])
def test_imagej_tiff_unit_and_resolution(unit, expected):
    data = tiff_bytes(CYX[0], imagej=True, resolution=(4.0, 4.0), metadata={"unit": unit})
    image = only(decode_images(data, "fiji.tif"))
    assert image.pixel_size_um == (pytest.approx(expected) if expected is not None else None)


def test_formats_without_metadata_have_no_pixel_size():
    assert only(decode_images(npz_bytes(X=np.ones((5, 6, 2), np.uint8)), "a.npz")).pixel_size_um is None
    assert only(decode_images(png_bytes(np.zeros((5, 6), np.uint8)), "a.png")).pixel_size_um is None
    rgb = np.zeros((8, 8, 3), np.uint8)
    assert only(decode_images(png_bytes(rgb, fmt="JPEG"), "a.jpg")).pixel_size_um is None


def test_unreadable_ome_xml_leaves_the_pixel_size_unknown():
    data = tiff_bytes(CYX[0], description="<OME><Image><Pixels PhysicalSizeX='0.5'", metadata=None)
    image = only(decode_images(data, "odd.tif"))
    assert image.pixel_size_um is None and image.pixels.shape == (1, 24, 30)


# ---------------------------------------------------------------------------- bad input

def assert_rejected(data: bytes, filename: str, *fragments: str, error=ImageImportError, **kw):
    with pytest.raises(error) as caught:
        decode_images(data, filename, **kw)
    message = str(caught.value)
    assert filename.split("/")[-1] in message, message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message
    return caught.value


def test_empty_file():
    error = assert_rejected(b"", "empty.tif", "empty", "0 bytes")
    assert error.status == 400


def test_truncated_tiff():
    pixels = RNG.integers(0, 255, size=(3, 40, 40), dtype=np.uint8)
    ome = tiff_bytes(pixels, ome=True, metadata={"axes": "CYX"})   # OME-XML is written last
    for cut in (12, 200, len(ome) // 2, len(ome) - 10):
        assert_rejected(ome[:cut], "cut.tif", "truncated")
    tiled = tiff_bytes(pixels, photometric="minisblack", compression="zlib", tile=(16, 16))
    for cut in (len(tiled) // 3, 2 * len(tiled) // 3):
        assert_rejected(tiled[:cut], "cut.tif", "truncated")


def test_truncated_tiff_pixel_data_says_how_much_is_missing():
    data = tiff_bytes(RNG.integers(0, 255, size=(64, 64), dtype=np.uint8))
    cut = data[:2000]
    assert_rejected(cut, "short.tif", "truncated", "2,000 bytes")


def test_text_file_named_tif():
    assert_rejected(b"sample,intensity\n1,2\n", "notes.tif", "text", "TIFF")


def test_text_with_multibyte_characters_is_still_called_text():
    text = ("x" * 1023 + "Übersicht\n").encode("utf-8")   # byte 1024 splits the 'Ü'
    assert_rejected(text, "readme.png", "plain text")


def test_png_content_named_tif():
    assert_rejected(png_bytes(np.zeros((4, 4), np.uint8)), "mislabel.tif", "PNG", "TIFF")


def test_unsupported_extension():
    assert_rejected(b"CZI-binary", "scan.czi", ".czi", ".tif")


def test_five_dimensional_array():
    assert_rejected(npy_bytes(np.zeros((2, 2, 4, 4, 1), np.uint8)), "five.npy", "5 dimensions")
    assert_rejected(npz_bytes(X=np.zeros((2, 2, 4, 4, 1), np.uint8)), "five.npz", "5 dimensions")


def test_tiff_with_time_and_channel_axes():
    stack = np.zeros((2, 3, 8, 8), np.uint8)
    assert_rejected(tiff_bytes(stack, photometric="minisblack", metadata={"axes": "TCYX"}), "movie.tif", "axes")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_float_data(bad):
    x = np.ones((6, 6, 2), np.float32)
    x[3, 4, 1] = bad
    assert_rejected(npz_bytes(X=x), "nan.npz", "NaN or infinite", "channel 1")
    assert_rejected(tiff_bytes(np.moveaxis(x, -1, 0)), "nan.tif", "NaN or infinite")


def test_complex_dtype():
    assert_rejected(npy_bytes(np.zeros((4, 4, 1), np.complex64)), "c.npy", "complex")


def test_object_dtype_is_never_unpickled():
    x = np.empty((2, 2, 1), dtype=object)
    assert_rejected(npy_bytes(x, allow_pickle=True), "obj.npy", "Python objects")
    buffer = io.BytesIO()
    np.savez(buffer, X=x)
    assert_rejected(buffer.getvalue(), "obj.npz", "Python objects")


def test_bool_dtype():
    assert_rejected(npz_bytes(X=np.zeros((4, 4, 1), bool)), "mask.npz", "booleans")


def test_y_shape_not_matching_x():
    x = np.zeros((10, 12, 2), np.uint8)
    assert_rejected(npz_bytes(X=x, y=np.zeros((10, 11, 2), np.int32)), "bad_y.npz", "y has shape")
    assert_rejected(npz_bytes(X=x, y=np.zeros((10, 12, 3), np.int32)), "three_y.npz", "y has shape")


def test_y_with_negative_or_fractional_ids():
    x = np.zeros((4, 4, 1), np.uint8)
    assert_rejected(npz_bytes(X=x, y=np.full((4, 4, 1), -1)), "neg.npz", "non-negative")
    assert_rejected(npz_bytes(X=x, y=np.full((4, 4, 1), 0.5)), "frac.npz", "non-integer")


def test_npz_without_x():
    assert_rejected(npz_bytes(images=np.zeros((4, 4, 1))), "noX.npz", "'X'", "images")


def test_too_many_channels():
    x = np.zeros((8, 8, 5), np.uint8)
    error = assert_rejected(npz_bytes(X=x), "many.npz", "5 channels", "limit of 4", max_channels=4)
    assert not isinstance(error, ImageTooLargeError)
    assert_rejected(tiff_bytes(np.zeros((5, 8, 8), np.uint8), photometric="minisblack"),
                    "many.tif", "5 channels", max_channels=4)
    assert_rejected(png_bytes(np.zeros((8, 8, 3), np.uint8)), "rgb.png", "3 channels",
                    max_channels=1)


def test_channels_first_npz_hints_at_the_layout():
    x = np.zeros((2, 100, 100), np.uint16)   # (C,H,W) saved where (H,W,C) is expected
    assert_rejected(npz_bytes(X=x), "cfirst.npz", "100 channels", "(H,W,C)")


def test_too_many_pixels_from_written_files():
    big = np.zeros((3000, 2000), np.uint8)
    for data, filename in [(tiff_bytes(big, compression="zlib"), "big.tif"),
                           (png_bytes(big), "big.png"), (npz_bytes(X=big[..., None]), "big.npz")]:
        error = assert_rejected(data, filename, "too large", "6,000,000", error=ImageTooLargeError,
                                max_pixels=1000 * 1000)
        assert error.status == 413


def test_npz_batch_counts_all_items_against_the_limit():
    x = np.zeros((5, 100, 100, 1), np.uint8)
    assert_rejected(npz_bytes(X=x), "batch.npz", "5 images", error=ImageTooLargeError,
                    max_pixels=40_000)


def test_size_is_decided_from_the_header_before_decoding():
    # Each file declares 10^10 pixels but holds a few bytes: decoding would need ~10 GB.
    side = 100_000
    cases = [(tiff_header_only(side, side), "bomb.tif"), (npy_header_only((side, side, 1)), "bomb.npy")]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("X.npy", npy_header_only((side, side, 1)))
    cases.append((archive.getvalue(), "bomb.npz"))
    cases.append((png_header_only(300, 300), "small_bomb.png"))
    for data, filename in cases:
        limit = 1000 if filename == "small_bomb.png" else 20000 * 20000
        assert_rejected(data, filename, "too large", error=ImageTooLargeError, max_pixels=limit)


def test_pillow_decompression_bomb_becomes_too_large():
    # 20000 x 20000 is within our default limit but over Pillow's own bomb threshold.
    assert_rejected(png_header_only(20000, 20000), "huge.png", "too large",
                    error=ImageTooLargeError)


def test_truncated_png():
    assert_rejected(png_bytes(RNG.integers(0, 255, (50, 50), dtype=np.uint8))[:-40], "cut.png",
                    "truncated")


def test_corrupt_zip():
    data = npz_bytes(X=np.ones((10, 10, 1), np.uint8))
    assert_rejected(data[: len(data) // 2], "cut.npz", "truncated or corrupt")


def test_unsafe_filename_is_rejected_by_decode():
    with pytest.raises(ImageImportError, match=r"\.\."):
        decode_images(png_bytes(np.zeros((2, 2), np.uint8)), "../../etc/x.png")


# ------------------------------------------------------------------------------ file names

@pytest.mark.parametrize("filename, expected", [
    ("tile.tif", "tile.tif"), ("run 1/tile.tif", "tile.tif"), ("a/b/c.npz", "c.npz"),
    ("ünïcode.png", "ünïcode.png"), ("x" * 251 + ".tif", "x" * 251 + ".tif"),
])
def test_safe_filename_returns_the_bare_name(filename, expected):
    assert safe_filename(filename) == expected


@pytest.mark.parametrize("filename, fragment", [
    ("", "no name"), ("   ", "no name"), ("../secret.tif", ".."), ("a/../../b.tif", ".."),
    ("/etc/passwd", "absolute"), ("C:/data/x.tif", "absolute"), ("dir\\x.tif", "backslash"),
    ("a\x00b.tif", "control"), ("a\nb.tif", "control"), ("a\x1b.tif", "control"),
    ("x" * 256, "255"), ("folder/", "folder"), ("..", ".."),
])
def test_safe_filename_rejects(filename, fragment):
    with pytest.raises(ImageImportError) as caught:
        safe_filename(filename)
    assert fragment in str(caught.value)


@given(st.text(max_size=300))
def test_safe_filename_output_is_always_a_bare_name(filename):
    try:
        bare = safe_filename(filename)
    except ImageImportError:
        return
    assert bare and bare not in (".", "..")
    assert "/" not in bare and "\\" not in bare
    assert all(ord(ch) >= 32 and ord(ch) != 127 for ch in bare)
    assert len(bare.encode("utf-8")) <= 255
    assert filename.endswith(bare)


# ----------------------------------------------------------------- display range / uint8

def test_display_range_is_the_percentiles_of_non_trivial_pixels_per_channel():
    pixels = np.stack([np.arange(10000).reshape(100, 100),
                       np.arange(10000).reshape(100, 100) * 3 + 7]).astype(np.uint16)
    drange = display_range(pixels)
    assert drange.shape == (2, 2) and drange.dtype == np.float64
    inner = pixels.reshape(2, -1)[:, 1:-1]  # the minimum and the maximum are trivial
    expected = np.percentile(inner, [0.5, 99.8], axis=1).T
    np.testing.assert_allclose(drange, expected)


def test_display_range_of_a_large_image_approximates_the_exact_percentiles():
    pixels = RNG.gamma(2.0, 300.0, size=(1, 2300, 2300)).astype(np.float32)
    exact = np.percentile(pixels, [0.5, 99.8])
    lo, hi = display_range(pixels)[0]
    assert abs(lo - exact[0]) / exact[0] < 0.1 and abs(hi - exact[1]) / exact[1] < 0.05


def _dapi(bits: int, *, nuclei: float, hot_fraction: float = 0.0, padding: bool = False, seed: int = 5):
    """A DAPI-like (1, 256, 256) channel at a bit depth: dim background, 30 round nuclei at
    ``nuclei`` x full scale, optionally a fraction of hot pixels spread over the top half of the
    scale and a zero-padded (clipped) left quarter. Returns (pixels, nucleus mask)."""
    rng = np.random.default_rng(seed)
    n, full = 256, 2 ** bits - 1
    yy, xx = np.mgrid[:n, :n]
    mask = np.zeros((n, n), bool)
    for cy, cx in rng.integers(12, n - 12, (30, 2)):
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 < 49
    img = rng.normal(nuclei / 8, nuclei / 40, (n, n))
    img[mask] = rng.normal(nuclei, nuclei / 8, int(mask.sum()))
    out = np.clip(img * full, 0, full)
    if hot_fraction:
        k = int(hot_fraction * n * n)
        out.reshape(-1)[rng.choice(n * n, k, replace=False)] = rng.uniform(0.5 * full, full, k)
    if padding:
        out[:, : n // 4] = 0
    return out.astype(np.uint8 if bits == 8 else np.uint16)[None], mask


@pytest.mark.parametrize("bits", [8, 12, 16])
@pytest.mark.parametrize("hot_fraction", [0.0, 0.004])
@pytest.mark.parametrize("padding", [False, True])
def test_display_range_shows_nuclei_bright_at_any_bit_depth_despite_hot_pixels_and_padding(
        bits, hot_fraction, padding):
    # A 16-bit DAPI crop opened almost black: nuclei at ~3 % of the 16-bit scale and 0.4 % hot
    # pixels put the old 99.9th percentile among the hot pixels (nuclei came out at ~8 of 255).
    nuclei = 0.4 if bits == 8 else 0.03 if bits == 16 else 0.3
    pixels, mask = _dapi(bits, nuclei=nuclei, hot_fraction=hot_fraction, padding=padding)
    lo, hi = display_range(pixels)[0]
    shown = channels_to_uint8(pixels, np.array([[lo, hi]]))[0]
    assert np.median(shown[mask]) >= 170, (lo, hi)                      # nuclei bright
    assert np.median(shown[~mask & (pixels[0] > 0)]) <= 40, (lo, hi)     # background dark
    assert hi <= 2 ** bits - 1 and lo >= 0


def test_display_range_keeps_a_small_bright_cell_that_is_real_content():
    pixels, mask = _dapi(16, nuclei=0.03)
    yy, xx = np.mgrid[:256, :256]
    bright = (yy - 40) ** 2 + (xx - 200) ** 2 < 100   # one compact cell, 10x brighter (0.5 % of pixels)
    pixels[0][bright] = np.random.default_rng(1).normal(20000, 1500, int(bright.sum()))
    lo, hi = display_range(pixels)[0]
    assert hi > 15000  # a dense population at the top is content, not noise: it sets the range


def test_display_range_widens_flat_channels():
    pixels = np.zeros((2, 50, 50), np.uint16)
    pixels[0] = 7
    pixels[1, 10, 10] = 500          # sparse: both percentiles are 0
    drange = display_range(pixels)
    assert drange[0, 0] == 7 and drange[0, 1] > 7
    assert drange[1, 0] == 0 and drange[1, 1] == 500
    assert channels_to_uint8(pixels, drange)[1, 10, 10] == 255


def test_display_range_rejects_bad_arguments():
    with pytest.raises(ValueError):
        display_range(np.zeros((10, 10)))
    with pytest.raises(ValueError):
        display_range(np.zeros((1, 4, 4)), low=50, high=10)


def test_channels_to_uint8_maps_range_ends_and_clips():
    pixels = np.array([[[0, 100, 140, 200, 1000]]], dtype=np.uint16)
    out = channels_to_uint8(pixels, np.array([[100.0, 200.0]]))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0], [0, 0, 102, 255, 255])


def test_channels_to_uint8_rejects_mismatched_range():
    with pytest.raises(ValueError):
        channels_to_uint8(np.zeros((2, 3, 3)), np.array([[0.0, 1.0]]))
    with pytest.raises(ValueError):
        channels_to_uint8(np.zeros((1, 3, 3)), np.array([[1.0, 1.0]]))


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.uint16, hnp.array_shapes(min_dims=3, max_dims=3, max_side=12)),
       st.floats(0, 3000), st.floats(1, 5000))
def test_uint8_lookup_table_agrees_with_float_path_and_is_monotone(pixels, lo, width):
    drange = np.tile([lo, lo + width], (pixels.shape[0], 1))
    by_table = channels_to_uint8(pixels, drange)
    by_float = channels_to_uint8(pixels.astype(np.float64), drange)
    np.testing.assert_array_equal(by_table, by_float)
    flat, mapped = pixels.reshape(-1), by_table.reshape(-1)
    order = np.argsort(flat, kind="stable")
    assert (np.diff(mapped[order].astype(int)) >= 0).all()
    assert (mapped[flat <= lo] == 0).all() and (mapped[flat >= lo + width] == 255).all()


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=3, max_dims=3, max_side=10),
                  elements=st.floats(-1e4, 1e4, width=32)))
def test_display_range_lies_within_data_and_is_never_flat(pixels):
    drange = display_range(pixels)
    flat = pixels.reshape(pixels.shape[0], -1)
    assert (drange[:, 1] > drange[:, 0]).all()
    assert (drange[:, 0] >= flat.min(axis=1)).all()
    assert (drange[:, 0] <= flat.max(axis=1)).all()
    out = channels_to_uint8(pixels, drange)
    assert out.shape == pixels.shape and out.dtype == np.uint8
