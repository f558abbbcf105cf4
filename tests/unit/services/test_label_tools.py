"""backend.services.label_tools: a server tool's answer says what it used and why nothing changed."""

from __future__ import annotations

import numpy as np
import pytest

from backend.errors import UserError
from backend.services.label_tools import run_tool


def disk(shape: tuple[int, int], r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - shape[0] // 2) ** 2 + (xx - shape[1] // 2) ** 2 <= r * r


def decode(box: np.ndarray):
    return lambda text, shape: box.reshape(shape)


def request(tool: str, box: np.ndarray, channels: np.ndarray, **fields):
    body = {"feature": 0, "bbox": [0, 0, *box.shape], "label": 3, "labels": "box", **fields}
    return run_tool(tool, channels, box.shape, body, decode_box=decode(box))


def test_a_tool_that_changes_nothing_says_why_and_names_the_channel():
    cell = disk((40, 40), 10)
    channels = np.stack([np.zeros((40, 40)), np.where(cell, 220, 20)]).astype(np.uint8)
    labels = np.where(cell, 3, 0).astype(np.int32)
    first = request("autofit", labels, channels)  # smooths the outline once ...
    y0, x0, y1, x1 = first.bbox
    labels[y0:y1, x0:x1] = first.labels
    fitted = request("autofit", labels, channels)  # ... and then it fits
    assert not fitted.changed and fitted.detail == {"channel": 1}
    assert "already fits the edges on channel 2" in fitted.note
    full = request("threshold", np.where(cell, 3, 0).astype(np.int32), channels, level=100)
    assert not full.changed and full.detail["levels"][1] == 100
    assert "already in cell 3" in full.note and "lower the level" in full.note
    assert full.payload(lambda a: "x") == {"changed": False, "channel": 1, "levels": full.detail["levels"],
                                           "note": full.note}


def test_threshold_level_is_checked_and_used():
    cell = disk((40, 40), 10)
    channels = np.stack([np.zeros((40, 40)), np.where(cell, 220, 20)]).astype(np.uint8)
    empty = np.zeros((40, 40), dtype=np.int32)
    grown = request("threshold", empty, channels, level=200)
    assert grown.changed and grown.detail["levels"] == [110.0, 200.0]
    assert grown.payload(lambda a: "encoded")["labels"] == "encoded"
    with pytest.raises(UserError, match=r"threshold level \(230\); lower the level.*\(channel 2\)"):
        request("threshold", empty, channels, level=230)
    with pytest.raises(UserError, match="level must be a number between 0 and 255"):
        request("threshold", empty, channels, level=300)
