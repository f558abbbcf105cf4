"""The "add a cell here" server tool: parse the editor's click, pick the maps, return the new cell.

The request follows the other server tools (:mod:`backend.services.label_tools`): ``feature``
(0 whole-cell, 1 nuclear), ``bbox`` [y0, x0, y1, x1] of the labels box sent, ``labels`` (base64
deflate int32 of that box, the editor's current state), plus ``point`` [y, x] (the click, in crop
or image pixels, inside the box), ``next_id`` (the new cell's id) and optional ``channel`` (the
stain read when the round's predictor left no maps).

The maps are the round's model maps (:mod:`backend.services.prediction_maps`) when its predictor
stored them, else derived from the stain (:func:`backend.core.add_cell.image_maps`); the answer
says which (``"maps": "model"`` or ``"image"``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from backend.core import add_cell as add_cell_core
from backend.core.labels import LabelToolError, changed_box
from backend.errors import UserError
from backend.services.label_tools import _int, parse_bbox

MapsOf = Callable[[tuple[int, int, int, int]], "tuple[np.ndarray, np.ndarray] | None"]
"""``maps_of(bbox)``: the model's (distance (2, h, w), foreground (2, h, w)) of a box, or None."""
StainOf = Callable[[int, tuple[int, int, int, int]], np.ndarray]
"""``stain_of(channel, bbox)``: the (h, w) uint8 box of one channel after the display range."""


def parse_point(body: dict, shape: tuple[int, int], what: str = "crop") -> tuple[int, int]:
    """The click ``point`` [y, x]; a 400 naming the problem when it is missing or off the image."""
    point = body.get("point")
    if not (isinstance(point, list) and len(point) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in point)):
        raise UserError("point must be the click [y, x] in pixels", field="point")
    y, x = point
    if not (0 <= y < shape[0] and 0 <= x < shape[1]):
        raise UserError(f"the click ({y}, {x}) lies outside the {shape[0]}×{shape[1]} px {what}; click inside it",
                        field="point")
    return y, x


def run_add_cell(body: dict, shape: tuple[int, int], n_channels: int,
                 decode_box: Callable[[str, tuple[int, int]], np.ndarray],
                 maps_of: MapsOf, stain_of: StainOf, what: str = "crop") -> dict:
    """Answer an "add a cell here" request.

    Returns
    -------
    dict
        ``changed`` (True), ``bbox`` (the changed box, crop or image pixels), ``labels`` (its
        (h, w) int32 labels: the box sent with the new cell as ``next_id``) and ``maps``
        (``"model"`` or ``"image"``).

    Raises
    ------
    UserError
        Bad fields, a click outside the crop or the box, on a labelled pixel or on background.
    """
    feature = _int(body, "feature", 0, 1)
    point = parse_point(body, shape, what)
    y0, x0, y1, x1 = parse_bbox(body, shape)
    if not (y0 <= point[0] < y1 and x0 <= point[1] < x1):
        raise UserError(f"the click {list(point)} lies outside the box {[y0, x0, y1, x1]} sent with it", field="point")
    next_id = _int(body, "next_id", 1, 2**31 - 1)
    if not isinstance(body.get("labels"), str):
        raise UserError("labels (the box's current labels) are required", field="labels")
    box = decode_box(body["labels"], (y1 - y0, x1 - x0))
    if (box == next_id).any():
        raise UserError(f"next_id {next_id} is already a cell in the box; send a free id", field="next_id")
    bbox = (y0, x0, y1, x1)
    maps = maps_of(bbox)
    if maps is not None:
        distance, foreground, source = maps[0][feature], maps[1][feature], "model"
    else:
        default = 0 if feature == 1 or n_channels == 1 else 1
        channel = body.get("channel", default)
        channel = default if channel is None else channel
        if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel < n_channels:
            raise UserError(f"channel must be an index between 0 and {n_channels - 1}", field="channel")
        distance, foreground = add_cell_core.image_maps(stain_of(channel, bbox), whole_cell=feature == 0)
        source = "image"
    try:
        mask = add_cell_core.add_cell_mask(distance, foreground, box, (point[0] - y0, point[1] - x0))
    except LabelToolError as exc:
        raise UserError(str(exc), field="point") from None
    out = box.copy()
    out[mask] = next_id
    cy0, cx0, cy1, cx1 = changed_box(box, out)
    return {"changed": True, "maps": source, "bbox": [y0 + cy0, x0 + cx0, y0 + cy1, x0 + cx1],
            "labels": np.ascontiguousarray(out[cy0:cy1, cx0:cx1], dtype=np.int32)}


def maps_window(maps: dict[str, np.ndarray], bbox: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """A box of a prediction's stored maps (:func:`backend.services.prediction_maps.get_prediction_maps`):
    (distance (2, h, w), foreground (2, h, w)) float32, or None when the predictor left none."""
    if "distance" not in maps or "foreground" not in maps:
        return None
    y0, x0, y1, x1 = bbox
    return maps["distance"][:, y0:y1, x0:x1], maps["foreground"][:, y0:y1, x0:x1]
