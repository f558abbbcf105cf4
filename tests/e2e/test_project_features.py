"""A project annotates only the features it ticked (issue #14 bug 1): a nuclear-only project's
crowd and review editors offer the Nuclear layer alone, selected from the start, and X keeps it."""

from __future__ import annotations

from tests.e2e.crowd_site import seed_crowd_task
from tests.e2e.task_page import TaskPage
from tests.e2e.test_review import ReviewPage, new_page, review_app, reviewers, seed_review_project  # noqa: F401

LAYERS_JS = """() => ({
  buttons: Array.from(document.querySelectorAll('[aria-label="Label layer"] button')).map((b) => b.textContent),
  feature: window.looplabel.editor.feature,
  status: document.querySelector('.ll-status-layer').textContent,
})"""


def nuclear_only(runtime, project_id: int) -> None:
    from backend.models import Project

    with runtime.db.session() as s:
        s.get(Project, project_id).features = ["nuclear"]


def test_the_crowd_editor_offers_only_the_projects_features(page, crowd_runtime, live_app, host_site):
    task = seed_crowd_task(crowd_runtime, name="e2e-nuclear", frame_ancestors=[host_site.origin])
    nuclear_only(crowd_runtime, task.project_id)
    page.goto(host_site.page_url(f"{live_app.url}/annotate/{task.project_id}?worker=nuc-1"))
    ui = TaskPage(page).wait_ready()
    assert ui.frame.evaluate(LAYERS_JS) == {"buttons": ["Nuclear"], "feature": 1, "status": "Labels: Nuclear"}
    ui.key("x")
    assert ui.frame.evaluate("() => window.looplabel.editor.feature") == 1
    assert page.errors == []


def test_the_review_editor_offers_only_the_projects_features(chromium, crowd_runtime, review_app, reviewers):
    project_id, images = seed_review_project(crowd_runtime, "e2e-review-nuclear", [400])
    nuclear_only(crowd_runtime, project_id)
    page = new_page(chromium)
    try:
        ui = ReviewPage.login(page, review_app.url, reviewers[0]).open(review_app.url, images[0].stitch_id)
        assert page.evaluate(LAYERS_JS) == {"buttons": ["Nuclear"], "feature": 1, "status": "Labels: Nuclear"}
        page.keyboard.press("x")
        assert ui.page.evaluate("() => window.looplabel.editor.feature") == 1
        assert page.errors == []
    finally:
        page.context.close()
