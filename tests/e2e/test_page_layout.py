"""The editors' pages at the screen sizes annotators and reviewers use, in Chromium (issue #14 bugs 3, 8, 10).

Screenshots of the crowd editor at 1440×900, 1280×720 and 390×844 and of the review editor go to
``tests/e2e/screenshots/layout/`` (``LOOPLABEL_SCREENSHOTS`` names another folder), for a person to
look at; the assertions say what must hold on each: the image gets real room, Submit can be pressed,
nothing runs off the screen.
"""

from __future__ import annotations

import pytest

from tests.e2e.crowd_site import seed_crowd_task

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

# The rectangle of an element in the viewport, and whether a click at its centre reaches it.
BOX_JS = """(el) => { const r = el.getBoundingClientRect(), cx = r.left + r.width / 2, cy = r.top + r.height / 2;
  const hit = document.elementFromPoint(cx, cy);
  return { left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width, height: r.height,
           reachable: Boolean(hit) && (hit === el || el.contains(hit)) }; }"""
REASON = ("The nuclei at the top are merged into pairs: split each pair along the dark line between them, "
          "and redraw the membrane of the two cells on the right edge, which the model cut in half.")


def open_task(chromium, url: str, width: int, height: int, phone: bool = False):
    """A fresh browser context of that screen size (a touch phone when ``phone``) on the task."""
    context = chromium.new_context(viewport={"width": width, "height": height}, is_mobile=phone, has_touch=phone,
                                   device_scale_factor=2 if phone else 1)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.goto(url)
    page.wait_for_selector('#annotate[data-ready="true"]', state="attached", timeout=30000)
    return page


def box(page, selector: str) -> dict:
    return page.eval_on_selector(selector, BOX_JS)


def inside_viewport(page, b: dict) -> bool:
    size = page.viewport_size
    return b["width"] > 0 and b["height"] > 0 and b["left"] >= 0 and b["top"] >= 0 \
        and b["right"] <= size["width"] + 0.5 and b["bottom"] <= size["height"] + 0.5


@pytest.mark.parametrize("width,height", [(1440, 900), (1280, 720), (390, 844)])
def test_crowd_editor_fits_the_screen(chromium, crowd_runtime, live_app, screenshot_dir, width, height):
    task = seed_crowd_task(crowd_runtime, name=f"e2e-layout-{width}")
    page = open_task(chromium, f"{live_app.url}/annotate/{task.project_id}?worker=w{width}", width, height,
                     phone=width < 500)
    page.screenshot(path=str(screenshot_dir / "layout" / f"crowd_{width}x{height}.png"))

    # The image gets real room: at least 300 px each way on a phone, most of the window elsewhere.
    stage = box(page, '[data-role="stage"]')
    canvas = box(page, '[data-role="stage"] canvas')
    assert abs(canvas["width"] - stage["width"]) < 1 and abs(canvas["height"] - stage["height"]) < 1
    assert stage["width"] >= min(300, 0.5 * width) and stage["height"] >= 300, stage
    assert stage["width"] >= (0.9 if width < 500 else 0.55) * width, stage
    assert inside_viewport(page, stage)

    # Submit, the save state and the help button are on screen and can be pressed.
    for role in ("submit", "save", "help-button"):
        b = box(page, f'[data-role="{role}"]')
        assert inside_viewport(page, b) and b["reachable"], (role, b)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width

    # Every tool can be reached (on a phone the tool strip scrolls sideways) and the image takes input.
    tools = page.eval_on_selector_all(".ll-toolbar .ll-tool", "els => els.length")
    assert tools >= 8
    page.eval_on_selector('.ll-toolbar [data-action="tool:select"]', "el => el.scrollIntoView({inline: 'center'})")
    assert box(page, '.ll-toolbar [data-action="tool:select"]')["reachable"]
    page.click('.ll-toolbar [data-action="tool:select"]')
    y, x = task.split_seeds[0]
    point = page.evaluate("([y, x]) => window.looplabel.editor.view.imageToClient(y + 0.5, x + 0.5)", [y, x])
    if width < 500:
        page.touchscreen.tap(point["x"], point["y"])
    else:
        page.mouse.click(point["x"], point["y"])
    assert page.evaluate("() => window.looplabel.editor.selected") == task.merged_id
    assert page.errors == []
    page.context.close()


def overlaps(a: dict, b: dict) -> bool:
    return a["left"] < b["right"] - 0.5 and b["left"] < a["right"] - 0.5 \
        and a["top"] < b["bottom"] - 0.5 and b["top"] < a["bottom"] - 0.5


@pytest.mark.parametrize("width,height", [(1280, 720), (390, 844)])
def test_a_reviewers_reason_is_shown_whole(chromium, crowd_runtime, live_app, screenshot_dir, width, height):
    from backend.models import Crop

    task = seed_crowd_task(crowd_runtime, name=f"e2e-reason-{width}")
    with crowd_runtime.db.session() as s:
        s.get(Crop, task.crop_id).reopen_reason = REASON
    page = open_task(chromium, f"{live_app.url}/annotate/{task.project_id}?worker=r{width}", width, height,
                     phone=width < 500)
    page.screenshot(path=str(screenshot_dir / "layout" / f"crowd_reopened_{width}x{height}.png"))
    banner = page.locator('[data-role="banner"]')
    assert banner.text_content() == f"Reopened by the reviewer: {REASON}"
    assert banner.get_attribute("title") == banner.text_content()
    # Nothing of it is cut off: the box holds its whole text, on screen, and the image keeps its room.
    clipped = page.eval_on_selector('[data-role="banner"]', """el => el.scrollWidth > el.clientWidth + 1
        || el.scrollHeight > el.clientHeight + 1""")
    assert not clipped
    assert inside_viewport(page, box(page, '[data-role="banner"]'))
    assert box(page, '[data-role="stage"]')["height"] >= 300
    assert box(page, '[data-role="submit"]')["reachable"]
    page.context.close()


def test_messages_stay_off_the_image_one_at_a_time(chromium, crowd_runtime, live_app, screenshot_dir):
    task = seed_crowd_task(crowd_runtime, name="e2e-toasts")
    page = open_task(chromium, f"{live_app.url}/annotate/{task.project_id}?worker=t", 1280, 720)
    page.click('.ll-toolbar [data-action="tool:select"]')
    for _ in range(3):
        page.keyboard.press("n")  # a new cell each time, each with its message
    toasts = page.locator('[data-role="toasts"] .ll-toast')
    assert toasts.count() == 1
    newest = page.evaluate("() => window.looplabel.editor.selected")
    assert f"New cell {newest}" in toasts.first.text_content()
    message = box(page, '[data-role="toasts"] .ll-toast')
    assert not overlaps(message, box(page, '[data-role="stage"]')), message
    assert inside_viewport(page, message)
    page.screenshot(path=str(screenshot_dir / "layout" / "crowd_message_1280x720.png"))
    page.click('[data-role="toasts"] .ll-toast-close')
    assert toasts.count() == 0
    page.context.close()


@pytest.mark.parametrize("width,height", [(1440, 900), (390, 844)])
def test_review_editor_fits_the_screen(chromium, crowd_runtime, live_app, screenshot_dir, width, height):
    from backend.services.users import create_user
    from tests.e2e.test_review import PASSWORD, ReviewPage, seed_review_project

    _, (image,) = seed_review_project(crowd_runtime, f"e2e-review-layout-{width}", [512])
    with crowd_runtime.db.session() as s:
        create_user(s, "layout-reviewer", "reviewer", PASSWORD)
    phone = width < 500
    context = chromium.new_context(viewport={"width": width, "height": height}, is_mobile=phone, has_touch=phone)
    page = context.new_page()
    ReviewPage.login(page, live_app.url, "layout-reviewer", f"/review/{image.stitch_id}").wait_ready()
    page.screenshot(path=str(screenshot_dir / "layout" / f"review_{width}x{height}.png"))
    stage = box(page, '[data-role="stage"]')
    if phone:  # a reviewer wants a desktop, but a phone still shows the image and every button
        assert stage["width"] >= 0.9 * width and stage["height"] >= 300, stage
    else:
        assert stage["width"] >= 0.55 * width and stage["height"] >= 0.7 * height, stage
    for role in ("approve", "reject", "save-button", "save"):
        b = box(page, f'[data-role="{role}"]')
        assert inside_viewport(page, b) and b["reachable"], (role, b)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    context.close()
