"""The crowd editor's tools as a paid annotator meets them, in Chromium (issue #14): shortcuts after a
click in the side panel, the select tool first, N, brush and eraser sizes, safe painting and erasing
with the overwrite switch, the threshold tool's level and channel, and what a watershed split does
with two seeds in one cell."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from tests.e2e.crowd_site import seed_crowd_task
from tests.e2e.task_page import TaskPage

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

ED = "window.looplabel.editor"


@pytest.fixture
def task_ui(page, crowd_runtime, live_app, host_site):
    """A crowd task open in its host page's iframe; returns (seeded task, TaskPage)."""
    task = seed_crowd_task(crowd_runtime, name="e2e-tools", frame_ancestors=[host_site.origin])
    page.goto(host_site.page_url(f"{live_app.url}/annotate/{task.project_id}?worker=e2e-tools"))
    return task, TaskPage(page).wait_ready()


def editor_value(ui: TaskPage, expression: str):
    """Evaluate ``expression`` with ``ed`` bound to the page's editor."""
    return ui.frame.evaluate(f"() => {{ const ed = {ED}; return {expression}; }}")


def test_shortcuts_work_after_clicking_a_channel_checkbox_or_the_opacity_slider(task_ui):
    task, ui = task_ui
    visible = "ed.display.channels.map((c) => c.visible)"
    before = editor_value(ui, visible)
    ui.frame.click('.ll-channel[data-channel="0"] .ll-channel-head input')
    assert editor_value(ui, visible) == [not before[0], *before[1:]]
    ui.key("e")
    assert editor_value(ui, "ed.tool") == "eraser"
    ui.key("3")
    assert editor_value(ui, visible) == [not before[0], before[1], not before[2]]

    slider = ui.frame.locator(".ll-panel-labels .ll-slider input[type=range]")
    slider.click()
    opacity = editor_value(ui, "ed.display.labels.opacity")
    ui.key("ArrowLeft")
    ui.key("ArrowLeft")
    assert editor_value(ui, "ed.display.labels.opacity") == opacity, "the arrows moved a slider left alone"
    ui.key("v")
    assert editor_value(ui, "ed.tool") == "select"

    assert not ui.page.errors



def test_the_editor_opens_with_the_select_tool_so_a_first_click_selects_and_paints_nothing(task_ui):
    task, ui = task_ui
    assert editor_value(ui, "ed.tool") == "select"
    assert ui.frame.get_attribute('button[data-action="tool:select"]', "aria-pressed") == "true"
    y, x = task.split_seeds[0]
    ui.click_pixel(y, x)
    assert editor_value(ui, "ed.selected") == task.merged_id
    assert np.array_equal(ui.layers(), task.predicted)
    assert ui.undo_depth() == 0
    assert "Select" in ui.frame.text_content(".ll-status-tool")


def disc_along_row(shape: tuple[int, int], y: int, x0: int, x1: int, radius: int) -> np.ndarray:
    """Pixels a brush of ``radius`` covers when dragged along row ``y`` from ``x0`` to ``x1``."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    dx = np.clip(xx, min(x0, x1), max(x0, x1)) - xx
    return dx ** 2 + (yy - y) ** 2 <= radius ** 2 + 1e-9


def touching_row(whole: np.ndarray, run: int = 6) -> tuple[int, int, int, int, int]:
    """(y, a, b, xa, xb): on row y, ``run`` px of cell a at xa.. end where ``run`` px of cell b start, ..xb."""
    for y in range(10, whole.shape[0] - 10):
        row = whole[y]
        for x in range(run, whole.shape[1] - run):
            a, b = int(row[x - 1]), int(row[x])
            if a and b and a != b and (row[x - run:x] == a).all() and (row[x:x + run] == b).all():
                return y, a, b, x - run + 1, x + run - 2
    raise AssertionError("no two touching cells on one row")


def last_toast(ui: TaskPage) -> str:
    return ui.frame.locator(".ll-toast").last.text_content()


def test_brush_and_eraser_are_safe_by_default_and_q_switches_overwrite_on(task_ui):
    task, ui = task_ui
    whole = task.predicted[0].copy()
    y, a, b, xa, xb = touching_row(whole)
    ui.frame.click('button[data-action="tool:select"]')
    ui.click_pixel(y, xa)
    assert editor_value(ui, "ed.selected") == a

    # Brush from cell a into cell b: background and a's own pixels take a, b keeps every pixel.
    ui.key("b")
    assert "safe: paints background only" in ui.frame.text_content(".ll-status-tool")
    ui.stroke_row(y, xa, xb)
    disc = disc_along_row(whole.shape, y, xa, xb, 3)
    whole[disc & (whole == 0)] = a
    assert np.array_equal(ui.layers()[0], whole)

    # The eraser (1 px) across both cells erases a only.
    ui.key("e")
    assert ui.frame.text_content('[data-role="brush-size"]') == "⌀ 1 px"
    ui.stroke_row(y, xa, xb)
    whole[y, xa:xb + 1][whole[y, xa:xb + 1] == a] = 0
    assert np.array_equal(ui.layers()[0], whole)
    assert (whole[y, xb - 3:xb + 1] == b).all()

    # A stroke on b alone changes nothing and says why.
    ui.stroke_row(y + 1, xb - 3, xb)
    assert np.array_equal(ui.layers()[0], whole)
    assert f"erases only cell #{a}" in last_toast(ui)

    # Q: overwrite. The switch shows it; the eraser now erases b too, and the brush paints over b.
    assert ui.frame.get_attribute('button[data-action="brush:overwrite"]', "aria-pressed") == "false"
    ui.key("q")
    assert ui.frame.get_attribute('button[data-action="brush:overwrite"]', "aria-pressed") == "true"
    assert "overwrite: erases every cell" in ui.frame.text_content(".ll-status-tool")
    ui.stroke_row(y + 1, xb - 3, xb)
    whole[y + 1, xb - 3:xb + 1] = 0
    assert np.array_equal(ui.layers()[0], whole)
    ui.key("b")
    ui.stroke_row(y - 1, xa, xb)
    whole[disc_along_row(whole.shape, y - 1, xa, xb, 3)] = a
    assert np.array_equal(ui.layers()[0], whole)
    ui.frame.click('button[data-action="brush:overwrite"]')  # the toolbar switch turns it off again
    assert ui.frame.evaluate(f"() => {ED}.overwrite") is False
    ui.key("?")
    assert "Overwrite on / off" in ui.frame.text_content('[data-role="help"]')
    assert not ui.page.errors


def test_new_cell_takes_the_safe_brush_and_sizes_step_with_the_size(task_ui):
    task, ui = task_ui
    whole = task.predicted[0]
    dist = ndi.distance_transform_edt(whole == 0)
    y, x = (int(v) for v in np.unravel_index(int(np.argmax(dist)), dist.shape))  # deep in the background
    ui.frame.click('button[data-action="tool:select"]')
    ui.key("f")
    ui.key("q")
    ui.key("n")
    new_id = int(task.predicted.max()) + 1
    assert editor_value(ui, "[ed.tool, ed.selected, ed.overwrite]") == ["brush", new_id, False]
    ui.click_pixel(y, x)
    painted = ui.layers()[0] == new_id
    assert np.array_equal(painted, disc_along_row(whole.shape, y, x, x, 3)), "one 7-px disc, not the background"

    size = '[data-role="brush-size"]'
    assert ui.frame.text_content(size) == "⌀ 7 px"
    for _ in range(2):
        ui.key("]")
    assert ui.frame.text_content(size) == "⌀ 17 px"  # 3 -> 5 -> 8 px radius
    for _ in range(4):
        ui.key("[")
    assert ui.frame.text_content(size) == "⌀ 3 px"
    ui.key("e")
    assert ui.frame.text_content(size) == "⌀ 1 px", "the eraser keeps its own size, one pixel to start"
    ui.key("]")
    assert ui.frame.text_content(size) == "⌀ 3 px"
    ui.key("b")
    assert ui.frame.text_content(size) == "⌀ 3 px" and "Brush" in ui.frame.text_content(".ll-brushsize")
    assert not ui.page.errors


def drag_box(ui: TaskPage, y0: int, x0: int, y1: int, x1: int) -> None:
    ui.page.mouse.move(*ui.point(y0, x0))
    ui.page.mouse.down()
    ui.page.mouse.move(*ui.point(y1, x1), steps=5)
    ui.page.mouse.up()


def threshold_box(ui: TaskPage, box: tuple[int, int, int, int]):
    """Drag ``box`` with the threshold tool; returns (request body, response) once the editor is idle."""
    with ui.page.expect_response(lambda r: "/tools/threshold" in r.url) as info:
        drag_box(ui, box[0], box[1], box[2] - 1, box[3] - 1)
    ui.wait_until(f"() => !{ED}.busy", what="the threshold to finish")
    return info.value.request.post_data_json, info.value


def test_threshold_has_a_level_and_a_channel_and_says_what_to_change(task_ui):
    task, ui = task_ui
    nuclear = task.predicted[1]
    areas = np.bincount(nuclear.ravel())
    inner = np.zeros_like(nuclear, dtype=bool)
    inner[8:-8, 8:-8] = True
    cell = next(int(c) for c in np.argsort(areas)[::-1] if c and areas[c] >= 40 and inner[nuclear == c].all())
    ys, xs = np.nonzero(nuclear == cell)
    box = (int(ys.min()) - 3, int(xs.min()) - 3, int(ys.max()) + 4, int(xs.max()) + 4)
    ui.frame.click('button[data-action="tool:select"]')
    ui.key("x")  # the nuclear layer
    ui.click_pixel(int(ys[len(ys) // 2]), int(xs[len(xs) // 2]))
    ui.key("Delete")
    panel = '[data-role="threshold-options"]'
    assert not ui.frame.is_visible(panel), "the threshold options show with the threshold tool only"
    ui.key("t")
    assert ui.frame.is_visible(panel)
    assert ui.frame.locator('[data-role="threshold-channel"] option').first.text_content() == "Auto: 1. DAPI"
    assert ui.frame.is_checked('[data-role="threshold-auto"]')

    body, answer = threshold_box(ui, box)
    assert "level" not in body and "channel" not in body
    new_id = body["label"]
    layers = ui.layers()
    assert ((layers[1] == new_id) & (nuclear == cell)).sum() >= 0.7 * areas[cell]
    auto_level = round(answer.json()["levels"][1])
    assert ui.frame.text_content(f"{panel} output") == str(auto_level)

    threshold_box(ui, box)  # nothing left above the level: the toast says so and what to change
    toast = last_toast(ui)
    assert "Threshold on channel 1 (DAPI), level automatic" in toast and f"already in cell {new_id}" in toast
    assert "lower the level" in toast
    assert np.array_equal(ui.layers(), layers)

    ui.frame.uncheck('[data-role="threshold-auto"]')
    ui.frame.fill('[data-role="threshold-level"]', "255")
    body, answer = threshold_box(ui, box)
    assert body["level"] == 255 and answer.status == 400
    toast = last_toast(ui)
    assert "level 255" in toast and "lower the level" in toast

    ui.frame.select_option('[data-role="threshold-channel"]', "1")
    ui.frame.fill('[data-role="threshold-level"]', "60")
    body, answer = threshold_box(ui, box)
    assert (body["channel"], body["level"]) == (1, 60) and answer.json()["channel"] == 1
    ui.key("v")  # the keys still go to the editor after the panel's controls
    assert editor_value(ui, "ed.tool") == "select" and not ui.frame.is_visible(panel)
    assert not ui.page.errors


def test_a_split_with_both_seeds_in_one_cell_is_cut_halfway_with_a_message(task_ui):
    from backend.core.labels import split_cell

    task, ui = task_ui
    whole = task.predicted[0]
    areas = np.bincount(whole.ravel())
    cell = next(int(c) for c in np.argsort(areas)[::-1] if c and c != task.merged_id)
    mask = whole == cell
    ys, xs = np.nonzero(mask)
    y0, x0, y1, x1 = max(0, ys.min() - 3), max(0, xs.min() - 3), min(270, ys.max() + 4), min(270, xs.max() + 4)
    rng = np.random.default_rng(1)
    pixels = np.argwhere(mask)
    for _ in range(50):  # two clicks in one cell where the image shows no border between them
        first, second = (tuple(int(v) for v in pixels[i]) for i in rng.choice(len(pixels), 2, replace=False))
        seeds = [(first[0] - y0, first[1] - x0), (second[0] - y0, second[1] - x0)]
        if split_cell(task.channels[1, y0:y1, x0:x1], whole[y0:y1, x0:x1], cell, seeds, [9999])[1]:
            break
    else:
        raise AssertionError("no seed pair in the cell needs the halfway cut")
    ui.frame.click('button[data-action="tool:select"]')
    ui.key("w")
    ui.click_pixel(*first)
    with ui.page.expect_response(lambda r: "/tools/watershed_split" in r.url):
        ui.click_pixel(*second)
    ui.wait_until(f"() => !{ED}.busy", what="the split to finish")
    after = ui.layers()[0]
    new_id = int(after[second])
    pieces = [int((after == cell).sum()), int((after == new_id).sum())]
    assert new_id != cell and min(pieces) >= max(15, 0.05 * mask.sum()), pieces
    assert "cut halfway between" in last_toast(ui)

    other = int(np.unique(whole[ndi.binary_dilation(mask, iterations=3) & (whole != cell) & (whole > 0)])[0])
    oy, ox = (int(v) for v in np.argwhere(whole == other)[0])
    ui.click_pixel(*first)
    ui.click_pixel(oy, ox)
    assert "same cell" in last_toast(ui)
    assert not ui.page.errors
