"""The admin console's pages in Chromium (issue #14 bugs 8, 11): on a phone, live rounds, whole thumbnails.

Screenshots go to ``tests/e2e/screenshots/layout/`` (``console_<page>_390.png``).
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.e2e.crowd_site import seed_crowd_task

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

ADMIN, PASSWORD = "ada", "console-pass-1"
# The table under the "Rounds" heading, as a person reads it: its newest row's cells by column title.
ROUNDS_TABLE = """[...document.querySelectorAll('h2')].find((h) => h.textContent === 'Rounds').nextElementSibling"""
ROUND_ZERO = f"""() => {{ const table = {ROUNDS_TABLE};
  const titles = [...table.querySelectorAll('thead th')].map((th) => th.textContent);
  const cells = [...table.querySelector('tbody tr').children].map((td) => td.textContent.trim().replace(/\\s+/g, ' '));
  return ['Submissions', 'Crops fused', 'Stitched images'].map((title) => cells[titles.indexOf(title)]); }}"""


@pytest.fixture
def admin_page(chromium, crowd_runtime, live_app):
    """A logged-in admin's browser context; ``size`` is set by the test through ``set_viewport_size``."""
    from backend.services.users import create_user

    with crowd_runtime.db.session() as s:
        create_user(s, ADMIN, "admin", PASSWORD)
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.goto(f"{live_app.url}/login")
    page.fill('input[name="username"]', ADMIN)
    page.fill('input[name="password"]', PASSWORD)
    with page.expect_navigation():
        page.click('main button[type="submit"]')
    yield page
    context.close()


def post_json(url: str, body: dict, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_console_pages_do_not_scroll_sideways_on_a_phone(admin_page, crowd_runtime, live_app, screenshot_dir):
    task = seed_crowd_task(crowd_runtime, name="e2e-console-phone")
    page, pid = admin_page, task.project_id
    page.set_viewport_size({"width": 390, "height": 844})
    paths = {"projects": "/", "review": "/review", "overview": f"/projects/{pid}", "images": f"/projects/{pid}/images",
             "rounds": f"/projects/{pid}/rounds", "annotators": f"/projects/{pid}/annotators",
             "dashboard": f"/projects/{pid}/dashboard", "exports": f"/projects/{pid}/exports",
             "settings": f"/projects/{pid}/settings", "new": "/projects/new", "missing": "/projects/999"}
    wide = {}
    for name, path in paths.items():
        page.goto(f"{live_app.url}{path}")
        page.screenshot(path=str(screenshot_dir / "layout" / f"console_{name}_390.png"), full_page=True)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        if width > 390:
            wide[name] = (width, page.evaluate("""() => [...document.querySelectorAll('body *')]
                .filter((e) => e.getBoundingClientRect().right > 391 && !e.closest('table'))
                .slice(0, 3).map((e) => e.tagName + '.' + e.className)"""))
    assert wide == {}, wide  # page: (its width, the first elements that stick out)
    # A wide table scrolls inside its own box and every column can still be read.
    page.goto(f"{live_app.url}/projects/{pid}/rounds")
    scrolls = page.evaluate(f"""() => {{ const t = {ROUNDS_TABLE}; return [t.tagName, t.scrollWidth > t.clientWidth,
        getComputedStyle(t).overflowX, t.getBoundingClientRect().right]; }}""")
    assert scrolls[:3] == ["TABLE", True, "auto"] and scrolls[3] <= 390, scrolls
    assert page.errors == []


def test_rounds_table_follows_the_crowd_without_a_reload(admin_page, crowd_runtime, live_app):
    task = seed_crowd_task(crowd_runtime, name="e2e-rounds-live")  # one crop, two annotators per crop
    page, base = admin_page, live_app.url
    page.goto(f"{base}/projects/{task.project_id}/rounds")
    page.evaluate("() => { window.sameDocument = true; }")  # gone if the page reloads
    assert page.evaluate(ROUND_ZERO) == ["0", "0/1 0 / 1", "—"]

    for worker in ("live-1", "live-2"):  # both submit the predicted labels: the crop fuses, the image stitches
        leased = post_json(f"{base}/api/crowd/{task.project_id}/lease", {"params": {"worker": worker}})
        assert leased["task"]["crop_id"] == task.crop_id
        post_json(f"{base}/api/crowd/crops/{task.crop_id}/submit", {"active_seconds": 30, "edit_count": 0},
                  token=leased["token"])

    deadline = 60_000
    while True:
        submissions, fused, stitches = page.evaluate(ROUND_ZERO)
        if submissions == "2" and "1 / 1" in fused and stitches not in ("", "—"):  # e.g. "1 in review"
            break
        assert deadline > 0, f"the rounds table still shows {submissions!r}, {fused!r}, {stitches!r}"
        page.wait_for_timeout(250)
        deadline -= 250
    assert page.evaluate("() => window.sameDocument === true")
    assert page.errors == []


# What part of an <img>'s picture is on screen (1 = all of it) along x and y, and its scale along each.
SHOWN_JS = """(img) => { const r = img.getBoundingClientRect(), fit = getComputedStyle(img).objectFit;
  const nw = img.naturalWidth, nh = img.naturalHeight;
  let sx = r.width / nw, sy = r.height / nh;
  if (fit === 'contain' || fit === 'scale-down') sx = sy = Math.min(sx, sy, fit === 'scale-down' ? 1 : Infinity);
  else if (fit === 'cover') sx = sy = Math.max(sx, sy);
  else if (fit === 'none') sx = sy = 1;
  return { shown_x: Math.min(1, r.width / (nw * sx)), shown_y: Math.min(1, r.height / (nh * sy)), sx, sy }; }"""


def test_thumbnails_show_the_whole_image(admin_page, crowd_runtime, live_app, screenshot_dir):
    from backend.services.demo import synthetic_npz
    from backend.services.images import Upload, import_images
    from backend.services.projects import get_project

    task = seed_crowd_task(crowd_runtime, name="e2e-thumbnails")
    with crowd_runtime.db.session() as s:  # a wide and a tall image beside the square one
        project = get_project(s, task.project_id)
        ids = [i.id for i in import_images(s, crowd_runtime.store, project, [
            Upload("wide.npz", synthetic_npz(220, 330, 3, 1)), Upload("tall.npz", synthetic_npz(300, 180, 3, 2))])]
    page = admin_page
    page.goto(f"{live_app.url}/projects/{task.project_id}/images")
    for image_id in ids:
        img = page.locator(f'[data-image-id="{image_id}"] img')
        img.scroll_into_view_if_needed()
        img.evaluate("(el) => el.decode()")
        shown = img.evaluate(SHOWN_JS)
        assert shown["shown_x"] > 0.999 and shown["shown_y"] > 0.999, (image_id, shown)
        assert abs(shown["sx"] - shown["sy"]) < 1e-6, (image_id, shown)  # not stretched either
    page.screenshot(path=str(screenshot_dir / "layout" / "console_thumbnails.png"))
