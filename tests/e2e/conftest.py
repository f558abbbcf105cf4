"""End-to-end fixtures: the app over real HTTP on PostgreSQL, a host page on a second localhost
origin, and Debian's Chromium driven by Playwright.

A missing Chromium or Playwright is a failure in CI (``CI=true``) and a skip elsewhere, like the
other services (see ``service_missing`` in ``tests/conftest.py``). Screenshots go to
``tests/e2e/screenshots/`` (git-ignored), or to the folder ``LOOPLABEL_SCREENSHOTS`` names.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import service_missing
from tests.e2e.crowd_site import HostPageServer, LiveServer, launch_chromium

SCREENSHOTS = Path(os.environ.get("LOOPLABEL_SCREENSHOTS") or Path(__file__).resolve().parent / "screenshots")


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the whole run."""
    try:
        from playwright.sync_api import sync_playwright

        playwright = sync_playwright().start()
    except Exception as exc:  # playwright not installed
        service_missing("Playwright (pip install playwright)", exc)
    try:
        browser = launch_chromium(playwright)
    except Exception as exc:
        playwright.stop()
        service_missing("Chromium at /usr/bin/chromium (apt-get install chromium)", exc)
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture
def crowd_runtime(pg_url, tmp_path):
    """A runtime on the test PostgreSQL database and a temporary storage folder."""
    from backend.config import Settings
    from backend.runtime import Runtime

    settings = Settings.from_env({
        "LOOPLABEL_INSTANCE": str(tmp_path / "instance"), "DATABASE_URL": pg_url,
        "STORAGE_URL": f"file://{tmp_path / 'storage'}", "SECRET_KEY": "e2e-secret",
    })
    rt = Runtime(settings)
    yield rt
    rt.close()


@pytest.fixture
def live_app(crowd_runtime):
    """The app served on http://127.0.0.1:<port>."""
    from backend.app import build_app

    with LiveServer(build_app(runtime=crowd_runtime)) as server:
        yield server


@pytest.fixture
def host_site():
    """The crowdsourcing platform's origin: http://127.0.0.1:<another port>/host?src=..."""
    with HostPageServer() as server:
        yield server


@pytest.fixture
def page(chromium):
    """A fresh browser context (own storage) with a page sized for a 1280×720 task iframe."""
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    yield pg
    context.close()


@pytest.fixture
def screenshot_dir():
    """The screenshot folder, made on first use; ``layout/`` holds test_page_layout.py's."""
    (SCREENSHOTS / "layout").mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
