"""The crowd editor's tools as a paid annotator meets them, in Chromium (issue #14): shortcuts after a
click in the side panel, the select tool first, N, brush and eraser sizes, safe painting and erasing
with the overwrite switch, the threshold tool's level and channel, and what a watershed split does
with two seeds in one cell."""

from __future__ import annotations

import numpy as np
import pytest

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
