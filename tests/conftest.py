"""Shared fixtures: real PostgreSQL, Redis and S3-over-HTTP (moto_server), and the SQLite default.

In CI (``CI=true``) a missing service fails the test; on a developer machine it is skipped with
the reason. Set TEST_PG_URL / TEST_REDIS_URL to point elsewhere.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

from backend.config import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REPO = Path(__file__).resolve().parent.parent


def service_missing(what: str, exc: BaseException):
    message = f"{what} is not reachable ({exc}); start it or set the TEST_* URL"
    if IN_CI:
        pytest.fail(message + " — in CI a missing service is a failure", pytrace=False)
    pytest.skip(message)


# --- PostgreSQL -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_database_url():
    """A fresh database on the local PostgreSQL server for this test run, dropped at the end."""
    import psycopg2
    from sqlalchemy.engine import make_url

    admin = make_url(PG_ADMIN_URL)
    try:
        conn = psycopg2.connect(
            host=admin.host, port=admin.port or 5432, user=admin.username, dbname=admin.database,
            password=admin.password, connect_timeout=5,
        )
    except Exception as exc:
        service_missing("PostgreSQL", exc)
    conn.autocommit = True
    name = f"looplabel_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name).render_as_string(hide_password=False)
    from backend.db import Database

    db = Database(url)
    db.upgrade()
    db.dispose()
    yield url
    with conn.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    conn.close()


def _truncate_all(url: str) -> None:
    from sqlalchemy import text

    from backend.db import Database
    from backend.models import Base

    db = Database(url)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    db.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """A migrated, empty database: the SQLite default and the local PostgreSQL."""
    if request.param == "sqlite":
        from backend.db import Database

        url = f"sqlite:///{tmp_path / 'looplabel.db'}"
        db = Database(url)
        db.upgrade()
        db.dispose()
        yield url
    else:
        url = request.getfixturevalue("pg_database_url")
        _truncate_all(url)
        yield url


@pytest.fixture
def pg_url(pg_database_url):
    """PostgreSQL only, emptied before the test."""
    _truncate_all(pg_database_url)
    return pg_database_url


@pytest.fixture
def drop_pg_connections():
    """``drop(url)``: end every other connection to ``url``'s database, as a server restart
    would (returns how many); the test's pools still hold them."""

    def drop(url):
        import psycopg2
        from sqlalchemy.engine import make_url

        u = make_url(url)
        conn = psycopg2.connect(host=u.host, port=u.port or 5432, user=u.username, password=u.password,
                                dbname=u.database)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            killed = cur.fetchone()[0]
        conn.close()
        return killed

    return drop


# --- Redis ------------------------------------------------------------------------------------
@pytest.fixture
def redis_url():
    from redis import Redis

    try:
        r = Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        r.ping()
        r.close()
    except Exception as exc:
        service_missing("Redis", exc)
    return REDIS_URL


# --- S3 over HTTP (moto_server) -----------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint():
    """An S3-compatible HTTP server (moto) in this process for the whole run."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint):
    """A fresh bucket name on the moto server."""
    import boto3

    name = f"looplabel-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


# --- app --------------------------------------------------------------------------------------
@pytest.fixture
def settings(tmp_path, db_url):
    env = {"LOOPLABEL_INSTANCE": str(tmp_path / "instance"), "DATABASE_URL": db_url,
           "STORAGE_URL": f"file://{tmp_path / 'storage'}", "SECRET_KEY": "test-secret"}
    return Settings.from_env(env)


@pytest.fixture
def pg_settings(tmp_path, pg_url):
    """Settings on PostgreSQL only (tests that need its row locks or exercise it specifically)."""
    env = {"LOOPLABEL_INSTANCE": str(tmp_path / "instance"), "DATABASE_URL": pg_url,
           "STORAGE_URL": f"file://{tmp_path / 'storage'}", "SECRET_KEY": "test-secret"}
    return Settings.from_env(env)


@pytest.fixture
def pg_runtime(pg_settings):
    """A runtime on PostgreSQL only (row locks, concurrency, the server's own behaviour)."""
    from backend.runtime import Runtime

    rt = Runtime(pg_settings)
    yield rt
    rt.close()


@pytest.fixture
def runtime(settings):
    from backend.runtime import Runtime

    rt = Runtime(settings)
    yield rt
    rt.close()


@pytest.fixture
def app(runtime):
    from backend.app import build_app

    application = build_app(runtime=runtime)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app):
    return app.test_client()


ADMIN_PASSWORD = "admin-password-1"
REVIEWER_PASSWORD = "reviewer-password-1"


def basic_auth(username: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture
def users(runtime):
    """An admin ("admin") and a reviewer ("reviewer") with known passwords."""
    from backend.services.users import create_user

    with runtime.db.session() as s:
        create_user(s, "admin", "admin", ADMIN_PASSWORD)
        create_user(s, "reviewer", "reviewer", REVIEWER_PASSWORD)
    return {"admin": ADMIN_PASSWORD, "reviewer": REVIEWER_PASSWORD}


@pytest.fixture
def admin_client(app, users):
    """A test client authenticated as the admin with HTTP Basic (no cookie, no CSRF needed)."""
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = basic_auth("admin", ADMIN_PASSWORD)
    return c


@pytest.fixture
def reviewer_client(app, users):
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = basic_auth("reviewer", REVIEWER_PASSWORD)
    return c
