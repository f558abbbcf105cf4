""""Add cell" in the crowd editor, in Chromium: a click inside a cell the labels miss adds it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from tests.e2e.crowd_site import seed_crowd_task
from tests.e2e.task_page import TaskPage
from tests.integration.test_add_cell import interior, iou, model_like_maps

pytestmark = [pytest.mark.browser, pytest.mark.postgres]


def test_a_click_with_add_cell_adds_the_missed_cell_as_one_undo_entry(page, crowd_runtime, live_app, host_site,
                                                                     screenshot_dir):
    from backend.models import Crop, Image
    from backend.services import labels_io
    from backend.services.prediction_maps import maps_key, put_prediction_maps

    task = seed_crowd_task(crowd_runtime, name="e2e-add-cell", frame_ancestors=[host_site.origin])
    with crowd_runtime.db.session() as s:
        image = s.get(Image, s.get(Crop, task.crop_id).image_id)
        truth = labels_io.get_labels(crowd_runtime.store, image.ground_truth_key)
        put_prediction_maps(crowd_runtime.store, maps_key(image.id, 0), None, model_like_maps(truth))
    whole = task.predicted[0]
    areas = np.bincount(whole.ravel())
    cell = next(int(c) for c in np.argsort(areas)[::-1]
                if c and c != task.merged_id and ndi.binary_erosion(np.pad(whole == c, 1), iterations=3)[1:-1, 1:-1].any()
                and np.array_equal(whole == c, truth[0] == c))
    y, x = interior(whole == cell)

    page.goto(host_site.page_url(f"{live_app.url}/annotate/{task.project_id}?worker=e2e-add"))
    ui = TaskPage(page).wait_ready()
    ui.frame.click('button[data-action="tool:select"]')
    ui.key("v")
    ui.click_pixel(y, x)
    ui.key("Delete")  # the cell is now missed
    missed = task.predicted.copy()
    missed[0][whole == cell] = 0
    assert np.array_equal(ui.layers(), missed)

    ui.key("i")
    assert ui.frame.evaluate("() => window.looplabel.editor.tool") == "addCell"
    with page.expect_response(lambda r: "/tools/add_cell" in r.url) as answer_info:
        ui.click_pixel(y, x)
    answer, request = answer_info.value.json(), answer_info.value.request.post_data_json
    assert answer_info.value.status == 200, answer
    assert request["point"] == [y, x] and request["feature"] == 0 and answer["maps"] == "model"
    ui.wait_until("() => !window.looplabel.editor.busy", what="the new cell to apply")
    added = ui.layers()
    new_id = request["next_id"]
    assert added[0, y, x] == new_id and iou(added[0] == new_id, truth[0] == cell) >= 0.7
    assert np.array_equal(added[0][missed[0] != 0], missed[0][missed[0] != 0]), "no other cell changes"
    assert ui.frame.evaluate("() => window.looplabel.editor.selected") == new_id
    page.screenshot(path=str(screenshot_dir / "annotate_add_cell.png"))
    assert ui.undo_depth() == 2  # delete, add
    ui.key("Control+z")
    assert np.array_equal(ui.layers(), missed)
    assert not page.errors
