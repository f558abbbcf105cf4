"""Revocable sessions (logout, new password, role change, block) and the session cookie's flags."""

import pytest

from tests.conftest import ADMIN_PASSWORD, REVIEWER_PASSWORD, basic_auth
from tests.integration.test_auth import login


@pytest.fixture
def project(admin_client):
    r = admin_client.post("/api/projects", json={"name": "sessions", "channels": ["DAPI"]})
    assert r.status_code == 201
    return r.json["id"]


def logged_in(app, username, password):
    """A client logged in with the form, and its CSRF token."""
    c = app.test_client()
    assert login(c, username, password).status_code == 302
    return c, c.get("/api/me").json["csrf_token"]


def saved_cookie(client) -> str:
    """The value of ``client``'s session cookie, as an attacker who copied it would keep it."""
    return client.get_cookie("session").value


def replay(app, cookie: str):
    """A fresh client presenting a saved session cookie."""
    copy = app.test_client()
    copy.set_cookie("session", cookie)
    return copy


def assert_session_over(app, cookie, csrf, project):
    """The saved cookie reads nothing and writes nothing (each try with the cookie as saved)."""
    assert replay(app, cookie).get("/api/me").status_code == 401
    r = replay(app, cookie).patch(f"/api/projects/{project}", json={"crop_size": 128},
                                  headers={"X-CSRF-Token": csrf})
    assert r.status_code == 401


def user_id(runtime, username):
    from sqlalchemy import select

    from backend.models import User

    with runtime.db.session() as s:
        return s.scalar(select(User.id).where(User.username == username))


def test_logout_ends_a_saved_cookie_and_every_other_session_of_the_user(app, users, project):
    c, csrf = logged_in(app, "admin", ADMIN_PASSWORD)
    other, other_csrf = logged_in(app, "admin", ADMIN_PASSWORD)  # a second browser
    saved = saved_cookie(c)
    r = replay(app, saved).patch(f"/api/projects/{project}", json={"crop_size": 128}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200  # the copy works while the session lasts
    assert c.post("/logout", data={"csrf_token": csrf}).status_code == 302
    assert_session_over(app, saved, csrf, project)
    assert_session_over(app, saved_cookie(other), other_csrf, project)
    # Logging in again works, and HTTP Basic is unaffected by logout.
    again, _ = logged_in(app, "admin", ADMIN_PASSWORD)
    assert again.get("/api/me").json["username"] == "admin"
    basic = {"Authorization": basic_auth("admin", ADMIN_PASSWORD)}
    assert app.test_client().get("/api/me", headers=basic).status_code == 200


def test_a_password_change_ends_sessions_and_cached_basic_credentials(app, runtime, users, project):
    from backend.services.users import change_password

    c, csrf = logged_in(app, "admin", ADMIN_PASSWORD)
    saved = saved_cookie(c)
    old_basic = {"Authorization": basic_auth("admin", ADMIN_PASSWORD)}
    assert app.test_client().get("/api/me", headers=old_basic).status_code == 200  # now cached
    with runtime.db.session() as s:
        change_password(s, user_id(runtime, "admin"), "a-new-password-2")
    assert_session_over(app, saved, csrf, project)
    assert app.test_client().get("/api/me", headers=old_basic).status_code == 401
    new_basic = {"Authorization": basic_auth("admin", "a-new-password-2")}
    assert app.test_client().get("/api/me", headers=new_basic).status_code == 200
    fresh, _ = logged_in(app, "admin", "a-new-password-2")
    assert fresh.get("/api/me").status_code == 200


def test_a_blocked_user_loses_sessions_and_basic_and_unblocking_does_not_revive_them(app, runtime, users, project):
    from backend.services.users import set_active

    c, csrf = logged_in(app, "admin", ADMIN_PASSWORD)
    saved = saved_cookie(c)
    basic = {"Authorization": basic_auth("admin", ADMIN_PASSWORD)}
    assert app.test_client().get("/api/me", headers=basic).status_code == 200  # now cached
    with runtime.db.session() as s:
        set_active(s, user_id(runtime, "admin"), False)
    assert_session_over(app, saved, csrf, project)
    assert app.test_client().get("/api/me", headers=basic).status_code == 401
    with runtime.db.session() as s:
        set_active(s, user_id(runtime, "admin"), True)
    assert_session_over(app, saved, csrf, project)
    assert app.test_client().get("/api/me", headers=basic).status_code == 200


@pytest.mark.parametrize("username,password,new_role", [
    ("admin", ADMIN_PASSWORD, "reviewer"),
    ("reviewer", REVIEWER_PASSWORD, "admin"),
])
def test_a_role_change_ends_sessions(app, runtime, users, project, username, password, new_role):
    from backend.services.users import set_role

    c, csrf = logged_in(app, username, password)
    saved = saved_cookie(c)
    with runtime.db.session() as s:
        set_role(s, user_id(runtime, username), new_role)
    assert_session_over(app, saved, csrf, project)
    fresh, _ = logged_in(app, username, password)
    assert fresh.get("/api/me").json["role"] == new_role


def test_setting_a_password_directly_on_the_row_also_ends_sessions(app, runtime, users, project):
    """However a password is set (the demo command assigns the hash), the sessions end."""
    from werkzeug.security import generate_password_hash

    from backend.models import User

    c, csrf = logged_in(app, "admin", ADMIN_PASSWORD)
    with runtime.db.session() as s:
        s.get(User, user_id(runtime, "admin")).password_hash = generate_password_hash("another-password-3")
    assert_session_over(app, saved_cookie(c), csrf, project)


def test_a_cookie_without_a_generation_is_not_a_session(app, users):
    """Cookies signed before sessions became revocable carry no generation: they log in anew."""
    c = app.test_client()
    with c.session_transaction() as sess:
        sess["user_id"] = user_id(app.extensions["looplabel"], "admin")
        sess["csrf"] = "x"
    assert c.get("/api/me").status_code == 401


def session_cookie_header(response) -> str:
    return next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))


def login_response(app, base_url="http://localhost", **environ):
    c = app.test_client()
    page = c.get("/login", base_url=base_url, environ_base=environ)
    import re

    token = re.search(rb'name="csrf_token" value="([^"]+)"', page.data).group(1).decode()
    return c.post("/login", base_url=base_url, environ_base=environ,
                  data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token})


def test_a_login_over_https_sets_a_secure_cookie(app, users):
    r = login_response(app, base_url="https://localhost")
    assert r.status_code == 302
    assert "; Secure" in session_cookie_header(r)
    assert "; HttpOnly" in session_cookie_header(r)


def test_a_login_over_plain_http_sets_no_secure_flag(app, users):
    r = login_response(app)
    assert r.status_code == 302 and "; Secure" not in session_cookie_header(r)


def test_a_trusted_proxy_saying_https_gets_a_secure_cookie_and_others_do_not(app, runtime, users):
    r = login_response(app, HTTP_X_FORWARDED_PROTO="https")
    assert "; Secure" not in session_cookie_header(r)  # no proxy is trusted by default
    runtime.settings = runtime.settings.with_overrides(trusted_proxy_hops=1)
    r = login_response(app, HTTP_X_FORWARDED_PROTO="https")
    assert "; Secure" in session_cookie_header(r)
