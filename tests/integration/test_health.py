import pytest

from backend.app import build_app
from backend.runtime import Runtime


@pytest.fixture
def client(admin_client):
    """Uploads and project settings are admin actions."""
    return admin_client


def test_healthz_all_ok(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json == {"status": "ok", "database": "ok", "storage": "ok", "queue": "ok"}


def test_healthz_reports_the_part_that_is_down(settings):
    # A Redis URL on a port nothing listens on: the queue is down, the rest is fine.
    rt = Runtime(settings.with_overrides(redis_url="redis://127.0.0.1:1/0"))
    try:
        r = build_app(runtime=rt).test_client().get("/healthz")
        assert r.status_code == 503
        assert r.json["database"] == "ok" and r.json["storage"] == "ok"
        assert r.json["queue"].startswith("error:")
    finally:
        rt.close()


def test_index_page_lists_projects(client):
    client.post("/api/projects", json={"name": "lung", "channels": ["DAPI", "CD45"]})
    page = client.get("/")
    assert page.status_code == 200
    assert b"lung" in page.data and b"CD45" in page.data
