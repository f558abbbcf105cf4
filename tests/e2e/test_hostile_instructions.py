"""Hostile project instructions run no script, in Chromium: on the crowd page (``innerHTML`` of the
server-rendered Markdown) and in the admin's preview.

The instructions try every usual way in: ``<script>``, ``onerror``/``onload``/``ontoggle`` handlers,
``javascript:`` links (Markdown and raw HTML), ``data:`` links and images, SVG, ``srcdoc`` frames.
Each would set ``window.__pwned`` and change ``document.title``; the test checks neither happened,
also after clicking every link, and that the rendered HTML keeps no such URL or handler at all
(the page's CSP is a second wall, not the one this test relies on).
"""

from __future__ import annotations

import pytest

from tests.e2e.crowd_site import seed_crowd_task
from tests.e2e.task_page import TaskPage

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

PAYLOAD = "window.__pwned='{how}';document.title='pwned'"
SVG_ONLOAD = ("PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIG9ubG9hZD0id2luZG93Ll9fcHduZWQ9MSI+"
              "PC9zdmc+")  # <svg xmlns=... onload="window.__pwned=1"></svg>
HOSTILE = "\n\n".join([
    "Outline **every** cell. Read the [guide](https://example.org/guide) first.",
    f"<script>{PAYLOAD.format(how='script')}</script>",
    f"<img src=\"/nowhere.png\" onerror=\"{PAYLOAD.format(how='onerror')}\">",
    f"<svg onload=\"{PAYLOAD.format(how='svg')}\"><circle r=\"4\"/></svg>",
    f"[Markdown link](javascript:{PAYLOAD.format(how='md-link')})",
    f"<a id=\"raw\" href=\"javascript:{PAYLOAD.format(how='raw-link')}\">Raw link</a>",
    f"<a href=\"JaVaScRiPt&#x3a;{PAYLOAD.format(how='entity-link')}\">Entity link</a>",
    f"![legend](data:image/svg+xml;base64,{SVG_ONLOAD})",
    "[Data link](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    f"<iframe srcdoc=\"<script>parent.{PAYLOAD.format(how='srcdoc')}</script>\"></iframe>",
    f"<details open ontoggle=\"{PAYLOAD.format(how='ontoggle')}\"><summary>More</summary>text</details>",
    f"<p style=\"background:url(javascript:{PAYLOAD.format(how='style')})\" onmouseover=\"{PAYLOAD.format(how='hover')}\">"
    "Hover me</p>",
])
DANGEROUS_NODES_JS = """(root) => {
  const el = document.querySelector(root);
  const bad = [];
  for (const node of el.querySelectorAll("*")) {
    for (const attr of node.attributes) {
      const value = attr.value.trim().toLowerCase();
      if (attr.name.startsWith("on") || attr.name === "style" || attr.name === "srcdoc"
          || value.startsWith("javascript:") || value.startsWith("data:") || value.startsWith("vbscript:")) {
        bad.push(`${node.tagName.toLowerCase()} ${attr.name}=${attr.value.slice(0, 40)}`);
      }
    }
    if (["SCRIPT", "IFRAME", "SVG", "OBJECT", "EMBED", "FORM", "STYLE"].includes(node.tagName.toUpperCase())) {
      bad.push(node.tagName.toLowerCase());
    }
  }
  return bad;
}"""


def set_instructions(runtime, project_id: int, text: str) -> None:
    from backend.models import Project

    with runtime.db.session() as s:
        s.get(Project, project_id).instructions = text


def assert_not_pwned(frame, title: str) -> None:
    assert frame.evaluate("() => window.__pwned === undefined"), frame.evaluate("() => window.__pwned")
    assert frame.evaluate("() => document.title") == title


def click_every_link(frame, selector: str) -> int:
    """Click each link of ``selector`` but the real one (which would leave for example.org)."""
    links = frame.query_selector_all(f'{selector} a:not([href^="https://example.org/"])')
    for link in links:
        link.click(force=True)
        frame.page.wait_for_timeout(100)
    return len(links)


def test_hostile_instructions_run_no_script_on_the_crowd_page(page, crowd_runtime, live_app, host_site):
    task = seed_crowd_task(crowd_runtime, name="e2e-hostile", frame_ancestors=[host_site.origin])
    set_instructions(crowd_runtime, task.project_id, HOSTILE)
    page.goto(host_site.page_url(f"{live_app.url}/annotate/{task.project_id}?worker=hostile-1"))
    ui = TaskPage(page).wait_ready()
    frame, selector = ui.frame, '[data-role="instructions"]'
    title = frame.evaluate("() => document.title")
    assert "pwned" not in title
    html = frame.inner_html(selector)
    assert "<strong>every</strong>" in html and 'href="https://example.org/guide"' in html  # the real content stays
    assert frame.evaluate(DANGEROUS_NODES_JS, selector) == []
    frame.hover(f"{selector} p:last-child")
    page.wait_for_timeout(300)  # let onerror / onload / ontoggle fire if anything survived
    assert_not_pwned(frame, title)
    assert page.evaluate("() => window.__pwned === undefined") and page.title() == "Study host"

    n = 0
    for text in ("Markdown link", "Raw link", "Entity link", "Data link"):
        frame.click(f"{selector} >> text={text}", force=True)
        page.wait_for_timeout(150)
        n += 1
    assert n == 4
    assert_not_pwned(frame, title)
    assert frame.url.startswith(f"{live_app.url}/annotate/{task.project_id}")  # no navigation to a data: page
    assert frame.evaluate("() => window.looplabel.ready") is True
    assert page.evaluate("() => window.__pwned === undefined") and page.title() == "Study host"
    assert not page.errors, page.errors


def test_hostile_instructions_run_no_script_in_the_admin_preview(page, crowd_runtime, live_app):
    from backend.services.users import create_user

    task = seed_crowd_task(crowd_runtime, name="e2e-hostile-admin")
    set_instructions(crowd_runtime, task.project_id, HOSTILE)
    with crowd_runtime.db.session() as s:
        create_user(s, "hostile-admin", "admin", "admin-pass-123")
    page.goto(f"{live_app.url}/login?next=/projects/{task.project_id}/settings")
    page.fill('input[name="username"]', "hostile-admin")
    page.fill('input[name="password"]', "admin-pass-123")
    with page.expect_navigation():
        page.click('main button[type="submit"]')
    selector = "details .preview"
    page.wait_for_selector(selector)
    title = page.title()
    assert page.evaluate(DANGEROUS_NODES_JS, selector) == []
    assert click_every_link(page.main_frame, selector) >= 4
    page.wait_for_timeout(300)
    assert_not_pwned(page.main_frame, title)
    assert page.url.endswith(f"/projects/{task.project_id}/settings")
    assert not page.errors, page.errors
