"""The crowd annotation page end to end, in Chromium, against the real app on PostgreSQL.

A host page on a second localhost origin embeds the task in a 1280×720 iframe with the
platform's parameters, as Prolific, a generic host or MTurk would.
"""

from __future__ import annotations

import base64
import re
import urllib.request
import zlib

import numpy as np
import pytest
from scipy import ndimage as ndi
from sqlalchemy import select

from tests.e2e.crowd_site import CROP, seed_crowd_task
from tests.e2e.task_page import TaskPage

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

PROLIFIC_CODE = "C1A2B3C4"
BRUSH_RADIUS = 3  # the editor's default brush radius, px


def painted_row(labels: np.ndarray, y: int, x0: int, x1: int, radius: float, value: int) -> np.ndarray:
    """A brush stroke (safe mode, the default) along row ``y`` from ``x0`` to ``x1``: every background
    pixel whose centre lies within ``radius`` of a pixel centre on the stroke takes ``value``."""
    out = labels.copy()
    yy, xx = np.mgrid[:out.shape[0], :out.shape[1]]
    dx = np.clip(xx, x0, x1) - xx  # column offset to the nearest stroke pixel
    out[(dx ** 2 + (yy - y) ** 2 <= radius ** 2 + 1e-9) & (out == 0)] = value
    return out


def filled_piece(labels: np.ndarray, y: int, x: int, value: int) -> np.ndarray:
    """Flood fill: the 4-connected region of (y, x)'s id becomes ``value``."""
    pieces, _ = ndi.label(labels == labels[y, x])  # default structure: 4-connected
    out = labels.copy()
    out[pieces == pieces[y, x]] = value
    return out


def box_of(b64: str, bbox: list[int]) -> np.ndarray:
    y0, x0, y1, x1 = bbox
    return np.frombuffer(zlib.decompress(base64.b64decode(b64)), dtype="<i4").reshape(y1 - y0, x1 - x0)


def cells_for_fill(whole: np.ndarray, avoid: set[int]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Two cells in rows 40..140 (away from the brush row and the merged pair): (id, y, x) of an
    interior pixel each."""
    found = []
    for cell in np.unique(whole[40:140, 40:230]):
        mask = whole == cell
        if cell == 0 or cell in avoid or mask.sum() < 120 or not mask[40:140, 40:230].sum() == mask.sum():
            continue
        dist = ndi.distance_transform_edt(mask)
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        found.append((int(cell), int(y), int(x)))
        if len(found) == 2:
            return found[0], found[1]
    raise AssertionError("no two cells to fill in the synthetic crop")


def test_prolific_task_edit_reload_submit(page, crowd_runtime, live_app, host_site, screenshot_dir):
    from backend.core import labels as label_core
    from backend.models import Assignment, LabelRevision
    from backend.services import labels_io

    task = seed_crowd_task(crowd_runtime, name="e2e-prolific", platform="prolific",
                           platform_settings={"completion_code": PROLIFIC_CODE}, frame_ancestors=[host_site.origin])
    completions, redirects = [], []
    page.expose_function("recordCompletion", lambda record: completions.append(record))

    def prolific(route):  # there is no internet here: answer the completion redirect ourselves
        redirects.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<p>Prolific: study complete</p>")

    page.context.route("https://app.prolific.com/**", prolific)
    offline = {"on": True}  # no label PUT reaches the server until the reload

    def labels_route(route):
        if route.request.method == "PUT" and offline["on"]:
            route.abort("internetdisconnected")
        else:
            route.continue_()

    page.route(re.compile(r".*/api/crowd/crops/\d+/labels$"), labels_route)
    params = "PROLIFIC_PID=pp-5f1e2d&STUDY_ID=study-9&SESSION_ID=sess-3"
    with page.expect_response(lambda r: r.url.endswith("/lease")) as lease_info:
        page.goto(host_site.page_url(f"{live_app.url}/annotate/{task.project_id}?{params}"))
    ui = TaskPage(page).wait_ready()
    page.screenshot(path=str(screenshot_dir / "annotate_prolific.png"))

    # The token stays in memory: not in the address bar, storage or cookies.
    assert ui.frame.url == f"{live_app.url}/annotate/{task.project_id}"
    token = lease_info.value.json()["token"]
    kept = ui.frame.evaluate("() => JSON.stringify(sessionStorage) + JSON.stringify(localStorage) + document.cookie")
    assert token not in kept and "PROLIFIC_PID" in kept
    assert np.array_equal(ui.layers(), task.predicted)

    # 1. Brush a new cell along row 12 (the brush tool is active; N picks a fresh id).
    expected = task.predicted.copy()
    new_id = int(expected[0].max()) + 1
    ui.frame.click('button[data-action="tool:select"]')  # focus the task frame
    ui.key("n")
    ui.key("b")
    ui.stroke_row(12, 20, 80)
    expected[0] = painted_row(expected[0], 12, 20, 80, BRUSH_RADIUS, new_id)
    after_brush = expected.copy()
    assert np.array_equal(ui.layers(), expected)

    # 2. Select cell A, then flood-fill a piece of cell B with A's id.
    (a, ay, ax), (b, by, bx) = cells_for_fill(expected[0], {task.merged_id})
    ui.key("v")
    ui.click_pixel(ay, ax)
    ui.key("f")
    ui.click_pixel(by, bx)
    expected[0] = filled_piece(expected[0], by, bx, a)
    after_fill = expected.copy()
    assert np.array_equal(ui.layers(), expected)

    # 3. Split the merged pair with watershed (server): two seed clicks inside the cell.
    ui.key("w")
    (s1y, s1x), (s2y, s2x) = task.split_seeds
    ui.click_pixel(s1y, s1x)
    with page.expect_response(lambda r: "/tools/watershed_split" in r.url) as answer_info:
        ui.click_pixel(s2y, s2x)
    answer = answer_info.value.json()
    request = answer_info.value.request.post_data_json
    y0, x0, y1, x1 = request["bbox"]
    assert request["label"] == task.merged_id and request["seeds"] == [[s1y, s1x], [s2y, s2x]]
    assert np.array_equal(box_of(request["labels"], request["bbox"]), expected[0, y0:y1, x0:x1])
    assert answer["changed"]
    split = label_core.watershed_split(task.channels[1, y0:y1, x0:x1], expected[0, y0:y1, x0:x1], task.merged_id,
                                       [(s1y - y0, s1x - x0), (s2y - y0, s2x - x0)], [request["next_id"]])
    box = expected[0, y0:y1, x0:x1]
    box[...] = split
    cy0, cx0, cy1, cx1 = answer["bbox"]
    assert np.array_equal(box_of(answer["labels"], answer["bbox"]), expected[0, cy0:cy1, cx0:cx1])
    merged_pixels = task.predicted[0] == task.merged_id
    assert set(np.unique(expected[0][merged_pixels])) == {task.merged_id, request["next_id"]}
    ui.wait_until("() => !window.looplabel.editor.busy", what="the split to apply")
    after_split = expected.copy()
    assert np.array_equal(ui.layers(), after_split)
    page.mouse.move(*ui.point(s2y, s2x))
    page.screenshot(path=str(screenshot_dir / "annotate_after_split.png"))
    assert ui.undo_depth() == 3  # brush, fill, split: one entry each

    # 4. Undo twice (split, fill), redo twice.
    ui.key("Control+z")
    ui.key("Control+z")
    assert np.array_equal(ui.layers(), after_brush)
    ui.key("Control+Shift+z")
    assert np.array_equal(ui.layers(), after_fill)
    ui.key("Control+y")
    assert np.array_equal(ui.layers(), after_split)
    assert ui.save_state() in ("unsaved", "saving", "offline")  # nothing reached the server

    # 5. Reload the task frame: labels and undo history come back from IndexedDB.
    ui.wait_local_copy()
    offline["on"] = False
    ui.reload()
    assert ui.frame.url == f"{live_app.url}/annotate/{task.project_id}"
    assert np.array_equal(ui.layers(), after_split)
    assert ui.undo_depth() == 3
    ui.frame.click('button[data-action="tool:select"]')
    ui.key("Control+z")
    assert np.array_equal(ui.layers(), after_fill)
    ui.key("Control+Shift+z")
    assert np.array_equal(ui.layers(), after_split)
    ui.wait_save_state("saved")

    # 6. Submit: the parent gets the completion message, then the top window goes to Prolific.
    ui.frame.click('[data-role="submit"]')
    ui.frame.click('dialog button[value="submit"]')
    deadline_ms = 15000
    while (not completions or not redirects) and deadline_ms > 0:
        page.wait_for_timeout(100)
        deadline_ms -= 100
    assert completions, "the host page received no completion message"
    message = completions[0]
    assert message["origin"] == live_app.url
    assert message["data"]["type"] == "looplabel:complete" and message["data"]["code"] == PROLIFIC_CODE
    assert redirects == [f"https://app.prolific.com/submissions/complete?cc={PROLIFIC_CODE}"]

    with crowd_runtime.db.session() as s:
        assignment = s.scalars(select(Assignment)).one()
        assert message["data"]["assignment_id"] == assignment.id
        assert assignment.status == "submitted" and assignment.platform == "prolific"
        assert assignment.edit_count == 3 and assignment.active_seconds > 0
        revision = s.scalars(select(LabelRevision).where(LabelRevision.assignment_id == assignment.id)
                             .order_by(LabelRevision.number.desc())).first()
        stored = labels_io.get_labels(crowd_runtime.store, revision.key)
    assert stored.dtype == np.int32 and np.array_equal(stored, after_split)
    assert not page.errors, page.errors


def test_generic_host_gets_post_message(page, crowd_runtime, live_app, host_site, screenshot_dir):
    from backend.models import Assignment

    task = seed_crowd_task(crowd_runtime, name="e2e-generic", frame_ancestors=[host_site.origin])
    page.goto(host_site.page_url(f"{live_app.url}/annotate/{task.project_id}?worker=gen-1"))
    ui = TaskPage(page).wait_ready()

    # Fits 1280×720 without scrollbars; the wheel zooms the image and never scrolls the host page.
    sizes = ui.frame.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight,"
                              " innerWidth, innerHeight]")
    assert sizes[0] <= sizes[2] == 1280 and sizes[1] <= sizes[3] == 720
    scale = ui.frame.evaluate("() => window.looplabel.editor.view.scale")
    page.mouse.move(*ui.point(CROP // 2, CROP // 2))
    page.mouse.wheel(0, -300)
    ui.wait_until(f"() => window.looplabel.editor.view.scale > {scale} * 1.5", what="wheel zoom")
    page.mouse.wheel(0, 300)
    page.wait_for_timeout(100)
    assert page.evaluate("() => window.scrollY") == 0
    ui.frame.click('[data-role="help-button"]')
    assert ui.frame.is_visible('[data-role="help"]')
    page.screenshot(path=str(screenshot_dir / "annotate_help.png"))
    ui.key("Escape")
    assert not ui.frame.is_visible('[data-role="help"]')

    # One stroke with a fresh id, then submit: the host receives the completion code.
    ui.frame.click('button[data-action="label:new"]')
    ui.stroke_row(8, 100, 140)
    expected = task.predicted.copy()
    expected[0] = painted_row(expected[0], 8, 100, 140, BRUSH_RADIUS, int(task.predicted[0].max()) + 1)
    assert np.array_equal(ui.layers(), expected)
    ui.frame.click('[data-role="submit"]')
    ui.frame.click('dialog button[value="submit"]')
    ui.frame.wait_for_selector('[data-role="screen-code"]:not([hidden])')
    page.wait_for_function("window.received.length > 0")  # the host page has no CSP: a predicate is fine
    received = page.evaluate("() => window.received")
    page.screenshot(path=str(screenshot_dir / "annotate_submitted.png"))
    with crowd_runtime.db.session() as s:
        assignment = s.scalars(select(Assignment)).one()
        code, assignment_id = assignment.completion_code, assignment.id
        assert assignment.status == "submitted" and assignment.edit_count == 1
    assert received == [{"origin": live_app.url,
                         "data": {"type": "looplabel:complete", "code": code, "assignment_id": assignment_id}}]
    assert ui.frame.text_content('[data-role="screen-code"]') == code
    assert not page.errors, page.errors

    # The app's own example host page embeds the same editor (same origin).
    page.goto(f"{live_app.url}/annotate/example-host")
    TaskPage(page, "iframe[data-role=frame]").wait_ready()


def test_stale_save_asks_and_keeps_the_work(page, crowd_runtime, live_app, host_site):
    from backend.models import LabelRevision
    from backend.services import labels_io

    task = seed_crowd_task(crowd_runtime, name="e2e-conflict", frame_ancestors=[host_site.origin])
    with page.expect_response(lambda r: r.url.endswith("/lease")) as lease_info:
        page.goto(host_site.page_url(f"{live_app.url}/annotate/{task.project_id}?worker=w-conflict"))
    ui = TaskPage(page).wait_ready()
    token = lease_info.value.json()["token"]

    # Another writer with this task's token saves revision 1 behind the page's back.
    theirs = task.predicted.copy()
    theirs[0, 100:110, 100:110] = 0
    request = urllib.request.Request(
        f"{live_app.url}/api/crowd/crops/{task.crop_id}/labels", method="PUT",
        data=zlib.compress(theirs.astype("<i4").tobytes()),
        headers={"Authorization": f"Bearer {token}", "X-Base-Revision": "0", "X-Shape": f"2,{CROP},{CROP}",
                 "X-Dtype": "int32"})
    assert urllib.request.urlopen(request).status == 201

    # The page's autosave (on revision 0) is refused: it asks, and keeps the edit meanwhile.
    ui.frame.click('button[data-action="label:new"]')
    ui.stroke_row(12, 20, 60)
    mine = ui.layers()
    ui.frame.wait_for_selector("dialog[open]", timeout=15000)
    assert "another window" in ui.frame.text_content("dialog[open] h2")
    assert ui.save_state() == "conflict"
    assert np.array_equal(ui.layers(), mine)
    ui.frame.click('dialog button[value="mine"]')
    ui.wait_save_state("saved")
    with crowd_runtime.db.session() as s:
        latest = s.scalars(select(LabelRevision).order_by(LabelRevision.number.desc())).first()
        assert latest.number == 2
        assert np.array_equal(labels_io.get_labels(crowd_runtime.store, latest.key), mine)


def test_mturk_preview_is_read_only(page, crowd_runtime, live_app, host_site):
    task = seed_crowd_task(crowd_runtime, name="e2e-mturk", platform="mturk", frame_ancestors=[host_site.origin])
    writes = []
    page.on("request", lambda r: writes.append(f"{r.method} {r.url}") if r.method in ("PUT", "POST")
            and "/lease" not in r.url else None)
    params = "assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=HIT123&turkSubmitTo=https://workersandbox.mturk.com"
    page.goto(host_site.page_url(f"{live_app.url}/annotate/{task.project_id}?{params}"))
    ui = TaskPage(page).wait_ready()
    assert ui.frame.is_visible('[data-role="banner"]') and "Preview" in ui.frame.text_content('[data-role="banner"]')
    assert ui.save_state() == "readonly"
    assert ui.frame.is_disabled('[data-role="submit"]')
    assert ui.frame.is_disabled('button[data-action="tool:brush"]')
    ui.frame.click('button[data-action="tool:select"]')
    for key in ("b", "n", "Delete"):
        ui.key(key)
    ui.stroke_row(30, 30, 120)
    ui.key("w")
    ui.click_pixel(*task.split_seeds[0])
    ui.click_pixel(*task.split_seeds[1])
    page.wait_for_timeout(300)
    assert np.array_equal(ui.layers(), task.predicted)
    assert writes == []
    assert ui.frame.evaluate("() => window.looplabel.saver") is None
