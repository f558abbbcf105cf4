"""backend/api/static.py: only the frontend files meant for the browser are served."""

import pytest


@pytest.fixture
def db_url(tmp_path):
    """SQLite only: serving files does not touch the database."""
    from backend.db import Database

    url = f"sqlite:///{tmp_path / 'looplabel.db'}"
    db = Database(url)
    db.upgrade()
    db.dispose()
    return url


@pytest.mark.parametrize("url", [
    "/static/test/brush.test.js",
    "/static/./test/brush.test.js",
    "/static/editor/../test/brush.test.js",
    "/static/pages/./../test/brush.test.js",
    "/static/editor/./../../frontend/test/brush.test.js",
    "/static/test\\brush.test.js",
    "/static/editor/package.json",
    "/static/test/package.json",
    "/static/../backend/app.py",
    "/static/editor/app/missing.js",
])
def test_frontend_tests_and_other_files_not_meant_for_the_browser_are_404(client, url):
    r = client.get(url)
    assert r.status_code == 404, (url, r.status_code)


def test_a_module_and_a_stylesheet_are_served(client):
    r = client.get("/static/pages/review.js")
    assert r.status_code == 200 and r.mimetype == "text/javascript" and r.headers["Cache-Control"] == "no-cache"
    assert client.get("/static/editor/app/editor.css").status_code == 200
    same = client.get("/static/editor/./app/editor.css")  # a "." segment names the same file
    assert same.status_code == 200 and same.data == client.get("/static/editor/app/editor.css").data
