"""Tests for backend.core.pixel_size: units, anisotropy, plausibility, the TIFF sources' order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.core.pixel_size import check_pixel_size, combine_xy, length_to_um, tiff_pixel_size


@pytest.mark.parametrize("value,unit,expected", [
    (0.65, None, 0.65), (0.65, "", 0.65), (0.65, "µm", 0.65), (0.65, "\u03bcm", 0.65),
    (0.65, "um", 0.65), (0.65, "micron", 0.65), (650, "nm", 0.65), (0.00065, "mm", 0.65),
    (6.5e-5, "cm", 0.65), (6.5e-7, "m", 0.65), (6500, "Å", 0.65), (6500, "\u212b", 0.65),
    ("0.65", "µm", 0.65), (1, "pixel", None), (1, "reference frame", None), (1, "furlong", None),
    ("abc", "µm", None), (float("nan"), "µm", None),
])
def test_length_to_um(value, unit, expected):
    result = length_to_um(value, unit)
    assert result == (pytest.approx(expected) if expected is not None else None)


@given(st.floats(0.02, 100.0), st.floats(0.0, 0.0999))
def test_combine_xy_takes_the_mean_within_ten_percent(x, spread):
    y = x * (1 - spread)
    assert combine_xy(x, y) == pytest.approx((x + y) / 2, rel=1e-5)
    assert combine_xy(y, x) == combine_xy(x, y)


@given(st.floats(0.01, 100.0), st.floats(0.11, 0.9))
def test_combine_xy_refuses_anisotropic_pixels(x, spread):
    assert combine_xy(x, x * (1 - spread)) is None


def test_combine_xy_with_one_axis_and_bounds():
    assert combine_xy(0.5, None) == 0.5 and combine_xy(None, None) is None
    assert combine_xy(0.0, 0.0) is None and combine_xy(-1.0, -1.0) is None
    assert check_pixel_size(0.009) is None and check_pixel_size(100.5) is None
    assert check_pixel_size(0.01) == 0.01 and check_pixel_size(100.0) == 100.0


def test_ome_declaration_decides_before_the_resolution_tags():
    tags = {"XResolution": (20000, 1), "YResolution": (20000, 1), "ResolutionUnit": 3}   # 0.5 µm
    ome = '<OME xmlns="x"><Image><Pixels PhysicalSizeX="0.25" PhysicalSizeY="0.25"/></Image></OME>'
    assert tiff_pixel_size(tags, ome) == 0.25
    unusable = '<OME><Image><Pixels PhysicalSizeX="1" PhysicalSizeXUnit="pixel"/></Image></OME>'
    assert tiff_pixel_size(tags, unusable) is None
    silent = "<OME><Image><Pixels SizeX='30'/></Image></OME>"
    assert tiff_pixel_size(tags, silent) == 0.5       # no declaration: the tags apply


def test_resolution_tags_edge_cases():
    assert tiff_pixel_size({"XResolution": (1000, 1), "ResolutionUnit": 2}) is None   # 1000 ppi
    assert tiff_pixel_size({"XResolution": (25400, 1), "ResolutionUnit": 2}) == 1.0
    assert tiff_pixel_size({"XResolution": (25400, 1)}) == 1.0   # TIFF's default unit is the inch
    assert tiff_pixel_size({"XResolution": (25400, 0), "ResolutionUnit": 2}) is None
    assert tiff_pixel_size({"ResolutionUnit": 3}) is None
    assert tiff_pixel_size({"XResolution": (3, 1), "YResolution": (3, 1)}, None,
                           {"unit": "micron"}) == pytest.approx(0.333333)
