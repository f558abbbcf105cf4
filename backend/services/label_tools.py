"""Server tools on a bounding box: parse the editor's request, run the pure tool, return the change."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from backend.core import labels as label_core
from backend.errors import UserError

FEATURES = ("whole_cell", "nuclear")


def _int(body: dict, name: str, lo: int, hi: int) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise UserError(f"{name} must be an integer between {lo} and {hi}", field=name)
    return value


def parse_bbox(body: dict, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    bbox = body.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int) and not isinstance(v, bool) for v in bbox)):
        raise UserError("bbox must be [y0, x0, y1, x1] in crop pixels", field="bbox")
    y0, x0, y1, x1 = bbox
    if not (0 <= y0 < y1 <= shape[0] and 0 <= x0 < x1 <= shape[1]):
        raise UserError(f"bbox {bbox} lies outside the crop of {shape[0]}×{shape[1]} px", field="bbox")
    return y0, x0, y1, x1


@dataclass(frozen=True)
class ToolResult:
    """What a server tool did to the request's box.

    ``bbox`` (crop px) and ``labels`` are the changed part, both None when nothing changed; ``note``
    says why nothing changed, or how the tool went about it (a split cut halfway); ``detail`` holds
    what the tool used, for the editor to show: ``channel`` (index), threshold's ``levels`` [low, high].
    """

    bbox: tuple[int, int, int, int] | None
    labels: np.ndarray | None
    note: str | None = None
    detail: dict = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.bbox is not None

    def payload(self, encode: Callable[[np.ndarray], str]) -> dict:
        """The JSON answer: ``changed``, the detail, ``note`` if any, ``bbox`` + encoded ``labels`` if changed."""
        out = {"changed": self.changed, **self.detail}
        if self.note:
            out["note"] = self.note
        if self.changed:
            out.update(bbox=list(self.bbox), labels=encode(self.labels))
        return out


def _level(body: dict) -> float | None:
    """The threshold level the editor sent (display units of the channel, 0..255), or None for auto."""
    level = body.get("level")
    if level is None:
        return None
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 <= level <= 255:
        raise UserError("level must be a number between 0 and 255 (the channel's display values), "
                        "or null for the automatic (Otsu) level", field="level")
    return float(level)


def run_tool(
    tool: str,
    channels: np.ndarray,
    shape: tuple[int, int],
    body: dict,
    decode_box: Callable[[str, tuple[int, int]], np.ndarray],
) -> ToolResult:
    """Apply ``tool`` to the box of the request; returns what changed (crop px) and what to tell the user.

    ``body``: ``feature`` (0 whole-cell, 1 nuclear), ``bbox`` [y0,x0,y1,x1], ``label``, ``labels``
    (base64 deflate int32 of the box, the editor's current state), optional ``channel`` (the image
    channel the tool looks at; default nuclear → channel 0, whole-cell → channel 1), for
    ``threshold`` an optional ``level`` (0..255; default Otsu's over the box), and for
    ``watershed_split`` ``seeds`` [[y, x], ...] in crop pixels and ``next_id`` (first free id).
    """
    feature = _int(body, "feature", 0, 1)
    y0, x0, y1, x1 = parse_bbox(body, shape)
    label = _int(body, "label", 1, 2**31 - 1)
    n_channels = channels.shape[0]
    default_channel = 0 if feature == 1 or n_channels == 1 else 1
    channel = body.get("channel", default_channel)
    if channel is None:
        channel = default_channel
    if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel < n_channels:
        raise UserError(f"channel must be an index between 0 and {n_channels - 1}", field="channel")
    level = _level(body) if tool == "threshold" else None
    if not isinstance(body.get("labels"), str):
        raise UserError("labels (the box's current labels) are required", field="labels")
    box = decode_box(body["labels"], (y1 - y0, x1 - x0))
    image = channels[channel, y0:y1, x0:x1]
    where = f"channel {channel + 1}"
    detail: dict = {"channel": channel}
    note = None
    try:
        if tool == "threshold":
            low, high = label_core.threshold_levels(image, high=level)
            detail["levels"] = [round(low, 2), round(high, 2)]
            out = label_core.threshold_box(image, box, label, low=low, high=high)
            unchanged = (f"every pixel above the level ({high:g}) on {where} in the box is already in cell "
                         f"{label}: lower the level to take in dimmer pixels, or draw the box over the part "
                         "that is missing")
        elif tool == "watershed_split":
            seeds = body.get("seeds")
            if not isinstance(seeds, list) or len(seeds) < 2:
                raise UserError("watershed split needs two or more seed clicks inside one cell", field="seeds")
            local = []
            for s in seeds:
                if not (isinstance(s, list) and len(s) == 2 and all(isinstance(v, int) for v in s)):
                    raise UserError("each seed must be [y, x] in crop pixels", field="seeds")
                local.append((s[0] - y0, s[1] - x0))
            next_id = _int(body, "next_id", 1, 2**31 - len(seeds))
            out, halfway = label_core.split_cell(image, box, label, local,
                                                 [next_id + i for i in range(len(seeds) - 1)])
            if halfway:
                note = (f"{where} shows no border between the seeds, so cell {label} was cut halfway between "
                        "them; undo (Ctrl+Z) and click one seed in the middle of each cell if that is not the "
                        "split you meant")
            unchanged = f"the split changed nothing in cell {label}"
        elif tool == "autofit":
            out = label_core.autofit(image, box, label)
            unchanged = (f"cell {label}'s outline already fits the edges on {where} (autofit moves it at most "
                         f"{label_core.AUTOFIT_BAND_PX} px): pick the channel that shows its border, or draw "
                         "the outline with the brush")
        else:
            raise UserError(f"unknown tool {tool!r}")
    except label_core.LabelToolError as exc:
        raise UserError(f"{exc} ({where})") from None
    changed = label_core.changed_box(box, out)
    if changed is None:
        return ToolResult(None, None, unchanged, detail)
    cy0, cx0, cy1, cx1 = changed
    return ToolResult((y0 + cy0, x0 + cx0, y0 + cy1, x0 + cx1),
                      np.ascontiguousarray(out[cy0:cy1, cx0:cx1], dtype=np.int32), note, detail)
