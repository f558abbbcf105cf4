"""Legible labels and finding your place (issue #14 items 14 and 15), in Chromium, in both editors.

The crowd editor (a 270×270 crop in a host page's iframe) and the review editor (a stitched
1024×1024 image): the label display controls (one outline colour, fill opacity, the selected cell
alone, the cell count), the hover readout (cell id and size), and the navigator (minimap with the
viewport, zoom buttons, fit and 100 %).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from tests.e2e.crowd_site import CROP, seed_crowd_task
from tests.e2e.task_page import TaskPage
from tests.e2e.test_review import ReviewPage, new_page, review_app, reviewers, seed_review_project  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

YELLOW, CYAN, WHITE = [255, 214, 10, 255], [0, 229, 255, 255], [255, 255, 255, 255]

PIXEL_JS = """([y, x]) => { const v = window.looplabel.editor.view; v.renderNow();
  const i = (y * v.width + x) * 4; return Array.from(v.pixels.subarray(i, i + 4)); }"""
# Record the text the overlay canvas draws (the hover readout is drawn there, not in the DOM).
RECORD_TEXT_JS = """() => { window.drawnText = []; const fill = CanvasRenderingContext2D.prototype.fillText;
  CanvasRenderingContext2D.prototype.fillText = function (text, ...rest) {
    window.drawnText.push(String(text)); return fill.call(this, text, ...rest); }; }"""
VIEW_JS = """() => { const v = window.looplabel.editor.view; const p = v.viewport;
  return { scale: v.scale, fitScale: v.fitScale(), fitted: v.fitted, viewW: v.viewW, viewH: v.viewH,
           centreX: (v.viewW / 2 - p.offsetX) / p.scale, centreY: (v.viewH / 2 - p.offsetY) / p.scale }; }"""


def interior_and_edge(layer: np.ndarray, cell: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The pixel deepest inside ``cell`` and a pixel of its outline."""
    mask = layer == cell
    dist = ndi.distance_transform_edt(mask)
    inside = np.unravel_index(int(np.argmax(dist)), dist.shape)
    padded = np.pad(layer, 1, mode="edge")
    same = ((padded[:-2, 1:-1] == layer) & (padded[2:, 1:-1] == layer)
            & (padded[1:-1, :-2] == layer) & (padded[1:-1, 2:] == layer))
    ys, xs = np.nonzero(mask & ~same)
    return (int(inside[0]), int(inside[1])), (int(ys[0]), int(xs[0]))


def big_cells(layer: np.ndarray, n: int) -> list[int]:
    ids, counts = np.unique(layer[layer > 0], return_counts=True)
    return [int(i) for i in ids[np.argsort(-counts)][:n]]


def test_crowd_editor_label_display_hover_readout_and_navigator(page, crowd_runtime, live_app, host_site,
                                                                screenshot_dir):
    task = seed_crowd_task(crowd_runtime, name="e2e-view", frame_ancestors=[host_site.origin])
    page.goto(host_site.page_url(f"{live_app.url}/annotate/{task.project_id}?worker=view-1"))
    ui = TaskPage(page).wait_ready()
    f = ui.frame
    whole = task.predicted[0]
    a, b = big_cells(whole, 2)
    (a_in, a_edge), (b_in, b_edge) = interior_and_edge(whole, a), interior_and_edge(whole, b)

    # The cell count of the shown layer is in the panel.
    n_cells = len(np.unique(whole)) - 1
    assert f.text_content('[data-role="cell-count"]').strip() == f"· {n_cells} cells"

    # Outlines come in one contrasting colour (yellow by default), and the choice changes it.
    assert f.evaluate(PIXEL_JS, list(a_edge)) == YELLOW and f.evaluate(PIXEL_JS, list(b_edge)) == YELLOW
    f.select_option('select[aria-label="Outline colour"]', label="Cyan")
    assert f.evaluate(PIXEL_JS, list(a_edge)) == CYAN
    # The fill opacity slider changes the inside of the cells.
    inside_before = f.evaluate(PIXEL_JS, list(b_in))
    f.fill('input[title="Fill opacity of the cells"]', "0.8")
    assert f.evaluate("() => window.looplabel.editor.display.labels.opacity") == pytest.approx(0.8)
    assert f.evaluate(PIXEL_JS, list(b_in)) != inside_before

    # "Auto" stretches a channel's display range to what the crop holds (floor, ceiling left out).
    f.click('[data-channel="0"] summary')
    f.click('[data-channel="0"] button:text("Auto")')
    lo, hi = f.evaluate("() => window.looplabel.editor.display.channels[0].range")
    assert 0 < lo < hi < 255
    assert f.input_value('[data-channel="0"] input[type="range"] >> nth=0') == str(lo)
    f.click('[data-channel="0"] summary')

    # Hovering a cell shows its id and size in pixels next to the cursor.
    f.evaluate(RECORD_TEXT_JS)
    page.mouse.move(*ui.point(*a_in))
    ui.wait_until(f"() => window.drawnText.includes('#{a} · {int((whole == a).sum()):,} px')",
                  what="the hover readout of the cell under the cursor")

    # The selected cell is highlighted; "Selected cell only" hides the others.
    f.click('button[data-action="tool:select"]')
    ui.click_pixel(*a_in)
    assert f.evaluate("() => window.looplabel.editor.selected") == a
    assert f.evaluate(PIXEL_JS, list(a_edge)) == WHITE
    f.check('text=Selected cell only')
    b_only = [f.evaluate(PIXEL_JS, list(p)) for p in (b_in, b_edge)]
    f.uncheck('text=Show labels (L)')
    b_plain = [f.evaluate(PIXEL_JS, list(p)) for p in (b_in, b_edge)]
    assert b_only == b_plain, "another cell is still drawn in selected-only view"
    f.check('text=Show labels (L)')
    assert f.evaluate(PIXEL_JS, list(a_edge)) == WHITE
    f.uncheck('text=Selected cell only')

    # Deleting the selected cell lowers the count (the keys still reach the editor).
    ui.key("Delete")
    ui.wait_until("() => document.querySelector('[data-role=\"cell-count\"]').textContent"
                  f".includes('{n_cells - 1} cells')", what="the cell count after a delete")

    # Navigator: zoom buttons, 100 %, fit, and the minimap moves the view.
    nav = '[data-role="navigator"]'
    start = f.evaluate(VIEW_JS)
    assert start["fitted"] and start["scale"] == pytest.approx(start["fitScale"])
    assert f.get_attribute(nav, "data-whole") == "true"
    f.click(f'{nav} button[data-action="zoom-in"]')
    assert f.evaluate(VIEW_JS)["scale"] == pytest.approx(start["scale"] * 1.5)
    f.click(f'{nav} button[data-action="actual"]')
    assert f.evaluate(VIEW_JS)["scale"] == pytest.approx(1.0)
    assert f.text_content(f"{nav} .ll-nav-zoom") == "100%"
    for _ in range(5):  # 7.6 screen px per image px: the crop is far larger than the view
        f.click(f'{nav} button[data-action="zoom-in"]')
    assert f.get_attribute(nav, "data-whole") == "false"
    box = f.locator(f"{nav} canvas.ll-minimap").bounding_box()
    frame_box = ui.iframe.bounding_box()
    k = box["width"] / CROP
    target = (60, 200)  # image (y, x) to bring to the view's centre
    page.mouse.click(frame_box["x"] + box["x"] + target[1] * k, frame_box["y"] + box["y"] + target[0] * k)
    view = f.evaluate(VIEW_JS)
    assert abs(view["centreY"] - target[0]) < 2 and abs(view["centreX"] - target[1]) < 2, view
    # Dragging on the minimap drags the view along.
    page.mouse.move(frame_box["x"] + box["x"] + 200 * k, frame_box["y"] + box["y"] + 200 * k)
    page.mouse.down()
    page.mouse.move(frame_box["x"] + box["x"] + 80 * k, frame_box["y"] + box["y"] + 150 * k, steps=5)  # to (150, 80)
    page.mouse.up()
    view = f.evaluate(VIEW_JS)
    assert abs(view["centreY"] - 150) < 2 and abs(view["centreX"] - 80) < 2, view
    page.screenshot(path=str(screenshot_dir / "annotate_navigator.png"))
    f.click(f'{nav} button[data-action="fit"]')
    view = f.evaluate(VIEW_JS)
    assert view["fitted"] and view["scale"] == pytest.approx(view["fitScale"])
    assert f.get_attribute(nav, "data-whole") == "true"
    assert not page.errors, page.errors


def test_review_editor_opens_a_1024_image_fitted_with_navigator_and_label_controls(chromium, crowd_runtime,
                                                                                   review_app, reviewers):
    _, (image,) = seed_review_project(crowd_runtime, "e2e-review-fit", [1024], seed=9)
    page = new_page(chromium)
    ReviewPage.login(page, review_app.url, reviewers[0], f"/review/{image.stitch_id}").wait_ready()
    view = page.evaluate(VIEW_JS)
    visible = page.evaluate("""() => { const v = window.looplabel.editor.view; const p = v.viewport;
        return [p.offsetY, p.offsetX, p.offsetY + 1024 * p.scale, p.offsetX + 1024 * p.scale]; }""")
    assert view["fitted"] and view["scale"] == pytest.approx(view["fitScale"]), view
    assert visible[0] >= 0 and visible[1] >= 0 and visible[2] <= view["viewH"] and visible[3] <= view["viewW"], \
        f"the whole image is not in view: {visible} in {view}"
    n_cells = len(np.unique(image.labels[0])) - 1
    assert page.text_content('[data-role="cell-count"]').strip() == f"· {n_cells:,} cells"

    nav = '[data-role="navigator"]'
    page.click(f'{nav} button[data-action="actual"]')
    assert page.evaluate(VIEW_JS)["scale"] == pytest.approx(1.0)
    box = page.locator(f"{nav} canvas.ll-minimap").bounding_box()
    k = box["width"] / 1024
    page.mouse.click(box["x"] + 600 * k, box["y"] + 300 * k)
    view = page.evaluate(VIEW_JS)
    assert abs(view["centreX"] - 600) < 3 and abs(view["centreY"] - 300) < 3, view
    page.click(f'{nav} button[data-action="fit"]')
    assert page.evaluate(VIEW_JS)["fitted"]
    assert not page.errors, page.errors
    page.context.close()
