"""What every page around the editors shares: the error pages, the site icon, the login form and the
console's navigation (issue #14 bug 10)."""

import re

from tests.conftest import REVIEWER_PASSWORD
from tests.integration.test_auth import login


def test_unknown_crowd_project_is_an_html_page_and_its_api_stays_json(client):
    r = client.get("/annotate/999?worker=x", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert r.status_code == 404 and r.mimetype == "text/html"
    page = r.data.decode()
    assert "<h1>This task link leads nowhere</h1>" in page and "no annotation project 999" in page
    assert page.lstrip().startswith("<!doctype html>")
    assert "frame-ancestors *" in r.headers["Content-Security-Policy"]  # shown inside any platform's iframe
    api = client.post("/api/crowd/999/lease", json={"params": {"worker": "x"}})
    assert api.status_code == 404 and api.is_json and "project" in api.json["error"]


def test_console_errors_are_pages_for_people_and_json_for_the_api(reviewer_client):
    page = reviewer_client.get("/projects/999", headers={"Accept": "text/html"})
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert "Error 404" in page.data.decode() and 'href="/review"' in page.data.decode()
    unknown = reviewer_client.get("/no/such/page", headers={"Accept": "text/html"})
    assert unknown.status_code == 404 and "Nothing here" in unknown.data.decode()
    api = reviewer_client.get("/api/projects/999")
    assert api.status_code == 404 and api.is_json
    script = reviewer_client.get("/projects/999", headers={"Accept": "application/json"})
    assert script.status_code == 404 and script.is_json


def test_every_page_links_an_icon_that_is_served(client, reviewer_client):
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml" and b"<svg" in icon.data
    assert client.get("/favicon.svg").data == icon.data
    pages = [client.get("/login"), reviewer_client.get("/"), reviewer_client.get("/review"),
             client.get("/annotate/999?worker=x")]
    for r in pages:
        assert '<link rel="icon" href="/favicon.svg" type="image/svg+xml">' in r.data.decode(), r.request.path


def test_login_keeps_the_user_name_after_a_wrong_password(app, users):
    c = app.test_client()
    r = login(c, "reviewer", "not-the-password")
    assert r.status_code == 401
    page = r.data.decode()
    username = re.search(r'<input name="username"[^>]*>', page).group(0)
    password = re.search(r'<input name="password"[^>]*>', page).group(0)
    assert 'value="reviewer"' in username and "autofocus" not in username
    assert "autofocus" in password and "value=" not in password  # the password is never sent back
    assert login(c, "reviewer", REVIEWER_PASSWORD).status_code == 302


def test_console_navigation_links_the_review_queue(reviewer_client, admin_client, client):
    for c in (reviewer_client, admin_client):
        nav = re.search(r'<nav class="ll-nav".*?</nav>', c.get("/").data.decode(), re.S).group(0)
        assert '<a href="/review"' in nav
    queue_nav = re.search(r'<nav class="ll-nav".*?</nav>', reviewer_client.get("/review").data.decode(), re.S)
    assert '<a href="/review" class="active">' in queue_nav.group(0)
    assert 'href="/review"' not in client.get("/login").data.decode()  # not before logging in
