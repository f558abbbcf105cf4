"""The physical pixel size (µm per pixel) that a TIFF's metadata declares, when it is trustworthy.

Sources, first that declares a size decides:

1. OME-XML: ``Pixels`` ``PhysicalSizeX`` / ``PhysicalSizeY`` with ``PhysicalSizeXUnit`` /
   ``PhysicalSizeYUnit`` (OME's default unit is µm).
2. ImageJ: the description's ``unit=`` (``micron``, ``um``, ``nm``, ...) with the X/Y resolution
   tags holding pixels per that unit.
3. Plain TIFF: ``XResolution`` / ``YResolution`` with ``ResolutionUnit`` 2 (inch) or 3 (cm).
   Unit 1 (none) is unknown, and so is any resolution of at most 1000 px per inch (25.4 µm per
   pixel or coarser): that is the 72/96/300 dpi default of screenshots and office files.

Anything unusable — a pixel or unknown unit, X and Y more than 10 % apart, a size outside
0.01–100 µm — is unknown (None): the model then estimates the object size from the image.
"""

from __future__ import annotations

import math
from xml.etree import ElementTree

__all__ = ["MAX_PIXEL_SIZE_UM", "MIN_PIXEL_SIZE_UM", "check_pixel_size", "combine_xy",
           "length_to_um", "tiff_pixel_size"]

MIN_PIXEL_SIZE_UM = 0.01    # finer than any light microscope resolves
MAX_PIXEL_SIZE_UM = 100.0   # coarser than any cell image
MAX_ANISOTROPY = 0.10       # X and Y may differ by this fraction of the larger
SCREEN_MAX_PX_PER_INCH = 1000.0

_UM_PER_UNIT = {
    "m": 1e6, "meter": 1e6, "metre": 1e6, "dm": 1e5, "cm": 1e4, "centimeter": 1e4,
    "centimetre": 1e4, "mm": 1e3, "millimeter": 1e3, "millimetre": 1e3,
    "µm": 1.0, "um": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0, "micrometre": 1.0,
    "nm": 1e-3, "nanometer": 1e-3, "nanometre": 1e-3, "pm": 1e-6, "å": 1e-4, "angstrom": 1e-4,
    "in": 25400.0, "inch": 25400.0, "thou": 25.4,
}
_TIFF_RESOLUTION_UNIT_UM = {2: 25400.0, 3: 1e4}   # ResolutionUnit → µm per unit (1: none)


def length_to_um(value: float, unit: str | None) -> float | None:
    """Convert a length to micrometres.

    Parameters
    ----------
    value : float
        The length in ``unit``.
    unit : str or None
        An OME ``UnitsLength`` symbol (``"µm"``, ``"nm"``, ``"mm"``, ``"cm"``, ``"m"``,
        ``"Å"``, ...) or an ImageJ unit word (``"micron"``, ``"um"``, ``"\\u00B5m"``); None or
        ``""`` means µm (OME's default).

    Returns
    -------
    float or None
        The length in µm; None for ``"pixel"``, an unknown unit, or a non-finite value.
    """
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value):
        return None
    key = (unit or "µm").strip()
    key = key.replace("\\u00B5", "µ").replace("\\u00b5", "µ").replace("\u03bc", "µ")
    key = key.replace("\u212b", "å").lower()
    factor = _UM_PER_UNIT.get(key)
    return None if factor is None else value * factor


def combine_xy(x_um: float | None, y_um: float | None) -> float | None:
    """One pixel size from the X and Y sizes (µm): their mean if within 10 %, else None.

    Either may be None (not declared): the other is used alone.
    """
    sizes = [s for s in (x_um, y_um) if s is not None]
    if not sizes or any(not math.isfinite(s) or s <= 0 for s in sizes):
        return None
    if max(sizes) - min(sizes) > MAX_ANISOTROPY * max(sizes):
        return None
    return check_pixel_size(sum(sizes) / len(sizes))


def check_pixel_size(size_um: float | None) -> float | None:
    """``size_um`` if it is a plausible pixel size (0.01–100 µm), else None."""
    if size_um is None or not math.isfinite(size_um):
        return None
    if not MIN_PIXEL_SIZE_UM <= size_um <= MAX_PIXEL_SIZE_UM:
        return None
    return float(f"{size_um:.6g}")   # 0.325, not 0.32499999999999996 from nm * 1e-3


def tiff_pixel_size(page_tags: dict, ome_xml: str | None = None,
                    imagej_metadata: dict | None = None) -> float | None:
    """The pixel size (µm per pixel) a TIFF declares, or None when unknown or implausible.

    Parameters
    ----------
    page_tags : dict
        The first page's tags by name: ``XResolution`` / ``YResolution`` as ``(numerator,
        denominator)`` rationals (pixels per unit) and ``ResolutionUnit`` (1, 2 or 3); missing
        names are allowed.
    ome_xml : str or None
        The OME-XML description (``TiffFile.ome_metadata``), if the file is an OME-TIFF.
    imagej_metadata : dict or None
        ``TiffFile.imagej_metadata`` (its ``unit``), if the file was written by ImageJ.

    Returns
    -------
    float or None
        µm per pixel, in ``[0.01, 100]``.
    """
    if ome_xml:
        declared, size = _ome_pixel_size(ome_xml)
        if declared:
            return size
    x = _rational(page_tags.get("XResolution"))
    y = _rational(page_tags.get("YResolution"))
    unit = imagej_metadata.get("unit") if isinstance(imagej_metadata, dict) else None
    if isinstance(unit, str) and unit.strip():
        return combine_xy(*(_per_pixel(r, length_to_um(1.0, unit)) for r in (x, y)))
    try:
        unit_um = _TIFF_RESOLUTION_UNIT_UM.get(int(page_tags.get("ResolutionUnit", 2)))
    except (TypeError, ValueError):
        return None
    if unit_um is None or x is None or x * 25400.0 / unit_um <= SCREEN_MAX_PX_PER_INCH:
        return None
    return combine_xy(*(_per_pixel(r, unit_um) for r in (x, y)))


def _rational(value) -> float | None:
    """A TIFF RATIONAL tag value ``(num, den)`` (or a plain number) as a positive float."""
    try:
        number = value[0] / value[1] if isinstance(value, (tuple, list)) else float(value)
    except (TypeError, ValueError, ZeroDivisionError, IndexError):
        return None
    return float(number) if math.isfinite(number) and number > 0 else None


def _per_pixel(pixels_per_unit: float | None, unit_um: float | None) -> float | None:
    if pixels_per_unit is None or unit_um is None:
        return None
    return unit_um / pixels_per_unit


def _ome_pixel_size(xml: str) -> tuple[bool, float | None]:
    """(whether the first OME Pixels declares a physical size, the size in µm or None)."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return False, None
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None or (pixels.get("PhysicalSizeX") is None and pixels.get("PhysicalSizeY") is None):
        return False, None
    sizes = []
    for axis in "XY":
        value = pixels.get(f"PhysicalSize{axis}")
        if value is None:
            sizes.append(None)
            continue
        size = length_to_um(value, pixels.get(f"PhysicalSize{axis}Unit"))
        if size is None:   # a pixel or unknown unit: no physical size at all
            return True, None
        sizes.append(size)
    return True, combine_xy(*sizes)
