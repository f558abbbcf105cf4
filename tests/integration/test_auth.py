"""Login, roles and CSRF on the admin/review surface."""

import re

import pytest

from tests.conftest import ADMIN_PASSWORD, REVIEWER_PASSWORD

ADMIN_ONLY = [
    ("post", "/api/projects", {"json": {"name": "x", "channels": ["DAPI"]}}),
    ("patch", "/api/projects/1", {"json": {"crop_size": 128}}),
    ("post", "/api/projects/1/images", {"data": {}}),
]
REVIEWER_OK = [("get", "/api/projects/1"), ("get", "/api/projects/1/images"), ("get", "/")]


@pytest.fixture
def project(admin_client):
    r = admin_client.post("/api/projects", json={"name": "roles", "channels": ["DAPI", "membrane"]})
    assert r.status_code == 201
    return r.json["id"]


def login(client, username, password):
    page = client.get("/login")
    token = re.search(rb'name="csrf_token" value="([^"]+)"', page.data).group(1).decode()
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})


@pytest.mark.parametrize("method,path,kw", ADMIN_ONLY)
def test_reviewer_cannot_reach_admin_actions(reviewer_client, client, project, method, path, kw):
    assert getattr(reviewer_client, method)(path, **kw).status_code == 403
    assert getattr(client, method)(path, **kw).status_code == 401  # anonymous


@pytest.mark.parametrize("method,path", REVIEWER_OK)
def test_reviewer_reaches_review_routes_and_anonymous_does_not(reviewer_client, client, project, method, path):
    assert getattr(reviewer_client, method)(path).status_code == 200
    anonymous = getattr(client, method)(path)
    assert anonymous.status_code in (401, 302)


def test_anonymous_project_list_is_a_public_summary(client, project):
    rows = client.get("/api/projects").json["projects"]
    assert rows == [{"id": project, "name": "roles", "channels": rows[0]["channels"], "n_images": 0}]


def test_session_login_requires_csrf_on_every_change(app, users, project):
    c = app.test_client()
    assert c.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD}).status_code == 403
    bad = login(c, "admin", "wrong-password")
    assert bad.status_code == 401 and b"Wrong username or password" in bad.data
    ok = login(c, "admin", ADMIN_PASSWORD)
    assert ok.status_code == 302 and ok.headers["Location"] == "/"
    me = c.get("/api/me").json
    assert me["role"] == "admin"
    # Without the token a cookie-authenticated change is refused; with it, it goes through.
    r = c.patch(f"/api/projects/{project}", json={"crop_size": 128})
    assert r.status_code == 403 and "CSRF" in r.json["error"]
    r = c.patch(f"/api/projects/{project}", json={"crop_size": 128}, headers={"X-CSRF-Token": me["csrf_token"]})
    assert r.status_code == 200 and r.json["crop_size"] == 128
    assert c.post("/logout").status_code == 403  # logout is a change too
    assert c.post("/logout", data={"csrf_token": me["csrf_token"]}).status_code == 302
    assert c.get("/api/me").status_code == 401


def test_login_redirect_only_to_local_paths(app, users):
    c = app.test_client()
    page = c.get("/login?next=//evil.example/x")
    token = re.search(rb'name="csrf_token" value="([^"]+)"', page.data).group(1).decode()
    r = c.post("/login?next=//evil.example/x", data={"username": "reviewer", "password": REVIEWER_PASSWORD,
                                                     "csrf_token": token})
    assert r.headers["Location"] == "/"


def test_pages_redirect_anonymous_users_to_login(client):
    r = client.get("/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_wrong_basic_credentials_are_401(app, users):
    import base64

    c = app.test_client()
    bad = "Basic " + base64.b64encode(b"admin:nope").decode()
    assert c.get("/api/projects/1", headers={"Authorization": bad}).status_code == 401
