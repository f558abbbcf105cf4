"""Who may frame the crowd task pages: named sites, never a wildcard host."""

import pytest

WILDCARD_HOSTS = ["https://*", "http://*", "*", "https://*:443", "https://*.org", ["'self'", "https://*"]]


@pytest.mark.parametrize("framers", WILDCARD_HOSTS)
def test_wildcard_hosts_are_refused_naming_the_field(admin_client, framers):
    r = admin_client.post("/api/projects", json={"name": "framed", "channels": ["DAPI"], "frame_ancestors": framers})
    assert r.status_code == 400 and r.json["field"] == "frame_ancestors"
    assert "wildcard" in r.json["error"]
    ok = admin_client.post("/api/projects", json={"name": "framed", "channels": ["DAPI"]})
    r = admin_client.patch(f"/api/projects/{ok.json['id']}", json={"frame_ancestors": framers})
    assert r.status_code == 400 and r.json["field"] == "frame_ancestors"


def test_named_sites_and_subdomain_wildcards_are_accepted(admin_client):
    framers = ["https://app.prolific.com", "https://*.example.org", "http://localhost:5000", "'self'"]
    r = admin_client.post("/api/projects", json={"name": "framed", "channels": ["DAPI"], "frame_ancestors": framers})
    assert r.status_code == 201
    assert admin_client.get(f"/api/projects/{r.json['id']}").json["frame_ancestors"] == framers
