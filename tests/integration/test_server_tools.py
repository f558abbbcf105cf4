"""Threshold, watershed split and autofit over the crowd and review APIs (issue #14): the threshold's
level and channel, what a tool that changes nothing says, and a split with both seeds in one cell."""

from __future__ import annotations

import base64
import zlib

import numpy as np
import pytest
from scipy import ndimage as ndi

from tests.integration.test_add_cell import SIZE, applied, in_review, interior, seed_round
from tests.integration.test_crowd_api import auth, lease


def box_body(labels: np.ndarray, feature: int, bbox: list[int], **fields) -> dict:
    y0, x0, y1, x1 = bbox
    box = np.ascontiguousarray(labels[feature, y0:y1, x0:x1], "<i4")
    return {"feature": feature, "bbox": bbox, "labels": base64.b64encode(zlib.compress(box.tobytes())).decode(),
            **fields}


def box_around(mask: np.ndarray, margin: int) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [max(0, int(ys.min()) - margin), max(0, int(xs.min()) - margin),
            min(SIZE, int(ys.max()) + margin + 1), min(SIZE, int(xs.max()) + margin + 1)]


@pytest.fixture
def crowd_tools(client, runtime):
    """(url of a tool, bearer headers, truth, predicted, missed ids per feature) for a crop whose
    prediction missed some cells."""
    pid, crop_id, _, _, truth, predicted, missed = seed_round(runtime, with_maps=False)
    token = lease(client, pid, worker="tools-1").json["token"]
    return (lambda tool: f"/api/crowd/crops/{crop_id}/tools/{tool}"), auth(token), truth, predicted, missed


def test_threshold_takes_a_level_and_a_channel_and_says_what_to_change(client, crowd_tools):
    url, headers, truth, predicted, missed = crowd_tools
    cell = missed[1][0]
    bbox = box_around(truth[1] == cell, 3)
    new_id = int(predicted[1].max()) + 1
    body = box_body(predicted, 1, bbox, label=new_id)

    r = client.post(url("threshold"), json=body, headers=headers)  # automatic level, the nuclear channel
    assert r.status_code == 200, r.json
    assert r.json["changed"] and r.json["channel"] == 0
    low, high = r.json["levels"]
    assert 0 <= low <= high <= 255
    added = applied(predicted, 1, r.json)
    assert ((added == new_id) & (truth[1] == cell)).sum() >= 0.7 * (truth[1] == cell).sum()

    again = box_body(np.stack([predicted[0], added]), 1, bbox, label=new_id)  # nothing left to take in
    r = client.post(url("threshold"), json=again, headers=headers)
    assert r.status_code == 200 and not r.json["changed"]
    assert f"already in cell {new_id}" in r.json["note"] and "lower the level" in r.json["note"]

    r = client.post(url("threshold"), json={**body, "level": 255}, headers=headers)
    assert r.status_code == 400
    assert "lower the level" in r.json["error"] and "(255)" in r.json["error"] and "channel 1" in r.json["error"]

    r = client.post(url("threshold"), json={**body, "level": 255, "channel": 1}, headers=headers)
    assert r.status_code == 400 and "channel 2" in r.json["error"]
    r = client.post(url("threshold"), json={**body, "level": round(high) - 1, "channel": 0}, headers=headers)
    assert r.status_code == 200 and r.json["channel"] == 0 and r.json["levels"][1] == round(high) - 1
    r = client.post(url("threshold"), json={**body, "channel": 3}, headers=headers)
    assert r.status_code == 400 and "channel must be an index between 0 and 2" in r.json["error"]

    for level in (-1, 256, "high", True):
        r = client.post(url("threshold"), json={**body, "level": level}, headers=headers)
        assert r.status_code == 400 and "level must be a number between 0 and 255" in r.json["error"], level


def test_a_split_with_both_seeds_in_one_cell_leaves_no_crumb_and_says_when_it_cut_halfway(client, crowd_tools):
    url, headers, truth, predicted, _ = crowd_tools
    whole = predicted[0]
    areas = np.bincount(whole.ravel())
    cell = int(np.argsort(areas[1:])[::-1][0] + 1)
    mask = whole == cell
    pixels = np.argwhere(mask)
    rng = np.random.default_rng(0)
    bbox = box_around(mask, 3)
    notes = []
    for _ in range(10):  # seed pairs anywhere in the cell, as a hurried annotator clicks them
        first, second = (pixels[i].tolist() for i in rng.choice(len(pixels), 2, replace=False))
        body = box_body(predicted, 0, bbox, label=cell, seeds=[first, second], next_id=int(whole.max()) + 1)
        r = client.post(url("watershed_split"), json=body, headers=headers)
        assert r.status_code == 200 and r.json["changed"], r.json
        after = applied(predicted, 0, r.json)
        pieces = [int((after == cell).sum()), int((after == body["next_id"]).sum())]
        assert min(pieces) >= max(15, 0.05 * mask.sum()), f"a crumb from seeds {first}, {second}: {pieces}"
        notes.append(r.json.get("note"))
    halfway = [n for n in notes if n]
    assert halfway, "no seed pair needed the halfway cut"
    assert all("cut halfway between" in n and "Ctrl+Z" in n for n in halfway)

    other = next(int(v) for v in np.unique(whole[ndi.binary_dilation(mask, iterations=3)]) if v not in (0, cell))
    bbox = box_around(mask | (whole == other), 3)
    seeds = [list(interior(mask)), list(interior(whole == other))]
    body = box_body(predicted, 0, bbox, label=cell, seeds=seeds, next_id=int(whole.max()) + 1)
    r = client.post(url("watershed_split"), json=body, headers=headers)
    assert r.status_code == 400 and "inside one cell" in r.json["error"]


def test_the_review_editor_sends_the_level_too(reviewer_client, runtime):
    _, _, image_id, round_id, truth, predicted, missed = seed_round(runtime, with_maps=False)
    stitch_id = in_review(runtime, image_id, round_id, predicted)
    cell = missed[1][0]
    body = box_body(predicted, 1, box_around(truth[1] == cell, 3), label=int(predicted.max()) + 1)
    r = reviewer_client.post(f"/api/review/stitches/{stitch_id}/tools/threshold", json={**body, "level": 255})
    assert r.status_code == 400 and "lower the level" in r.json["error"]
    r = reviewer_client.post(f"/api/review/stitches/{stitch_id}/tools/threshold", json={**body, "level": 40})
    assert r.status_code == 200 and r.json["changed"] and r.json["levels"][1] == 40
