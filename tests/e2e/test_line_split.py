""""Cut" in the crowd editor, in Chromium: a line dragged across a merged cell splits it along the line."""

from __future__ import annotations

import numpy as np
import pytest

from tests.e2e.careful_annotator import boundary_stroke
from tests.e2e.crowd_site import seed_crowd_task
from tests.e2e.task_page import TaskPage

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

# The stroke as the overlay draws it (#ffd54a over a dark edge), read back from the overlay canvas.
OVERLAY_RGB_JS = """([y, x]) => {
  const view = window.looplabel.editor.view;
  view.renderNow();
  const p = view.imageToClient(y + 0.5, x + 0.5);
  const box = view.overlay.getBoundingClientRect();
  const px = view.overlay.getContext("2d").getImageData(Math.round((p.x - box.left) * view.dpr),
    Math.round((p.y - box.top) * view.dpr), 1, 1).data;
  return [px[0], px[1], px[2], px[3]];
}"""


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a & b) / max(1, np.count_nonzero(a | b)))


def test_a_line_across_a_merged_cell_splits_it_along_the_line(page, crowd_runtime, live_app, host_site,
                                                              screenshot_dir):
    from backend.models import Crop, Image
    from backend.services import labels_io

    task = seed_crowd_task(crowd_runtime, name="e2e-line-split", frame_ancestors=[host_site.origin])
    with crowd_runtime.db.session() as s:
        image = s.get(Image, s.get(Crop, task.crop_id).image_id)
        truth = labels_io.get_labels(crowd_runtime.store, image.ground_truth_key)[0]
    merged = task.predicted[0] == task.merged_id
    (ay, ax), (by, bx) = task.split_seeds
    cell_a, cell_b = truth == truth[ay, ax], truth == truth[by, bx]
    larger, smaller = (cell_a, cell_b) if cell_a.sum() >= cell_b.sum() else (cell_b, cell_a)
    path = boundary_stroke(larger, smaller)
    assert not merged[path[0]] and not merged[path[-1]], "the stroke starts and ends outside the cell"

    page.goto(host_site.page_url(f"{live_app.url}/annotate/{task.project_id}?worker=e2e-cut"))
    ui = TaskPage(page).wait_ready()
    next_id = ui.frame.evaluate("() => window.looplabel.editor.nextLabelId()")
    ui.frame.click('button[data-action="tool:select"]')  # the task frame has the keys now
    ui.key("/")
    assert ui.frame.evaluate("() => window.looplabel.editor.tool") == "cut"

    # A line that stops inside the cell cuts nothing: the page says so and nothing changes.
    mid = len(path) // 2
    ui.drag_path(path[:mid])
    ui.wait_until("() => document.querySelector('[data-role=\"toasts\"]').textContent.includes('does not cut')",
                  what="the 'does not cut' toast")
    assert np.array_equal(ui.layers(), task.predicted) and ui.undo_depth() == 0

    seen = {}

    def look_at_stroke():
        seen["drawn"] = ui.frame.evaluate(OVERLAY_RGB_JS, list(path[mid]))

    ui.drag_path(path, before_release=look_at_stroke)
    r, g, b, alpha = seen["drawn"]
    assert alpha > 200 and r > 200 and g > 170 and b < 140, f"the stroke is drawn while dragging: {seen['drawn']}"
    assert ui.frame.evaluate(OVERLAY_RGB_JS, list(path[mid]))[3] == 0, "and gone after the release"
    after = ui.layers()
    page.screenshot(path=str(screenshot_dir / "annotate_line_split.png"))

    kept = after[0] == task.merged_id
    new = after[0] == next_id
    assert kept.any() and new.any()
    assert np.array_equal(kept | new, merged), "no pixel of the cell is lost, no other pixel taken"
    assert kept.sum() >= new.sum(), "the larger piece keeps the id"
    assert _iou(kept, larger) >= 0.9 and _iou(new, smaller) >= 0.9, (_iou(kept, larger), _iou(new, smaller))
    assert np.array_equal(after[0][~merged], task.predicted[0][~merged])
    assert np.array_equal(after[1], task.predicted[1])
    assert ui.undo_depth() == 1
    ui.key("Control+z")
    assert np.array_equal(ui.layers(), task.predicted)
    assert not page.errors
