"""Migrations on SQLite and PostgreSQL; serve refuses an un-migrated database."""

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, select

from backend.cli import main
from backend.db import Database, DatabaseNotMigratedError
from backend.models import Base, Project


def test_migrated_schema_matches_models(db_url):
    db = Database(db_url)
    assert db.current_revision() == db.head_revision()
    tables = set(inspect(db.engine).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= tables
    with db.session() as s:
        s.add(Project(name="p", channels=[{"name": "DAPI", "color": "#0000ff"}]))
    with db.session() as s:
        assert s.scalar(select(Project.name)) == "p"
    db.dispose()


def test_session_rolls_back_on_error(db_url):
    db = Database(db_url)
    with pytest.raises(RuntimeError):
        with db.session() as s:
            s.add(Project(name="never", channels=[]))
            s.flush()
            raise RuntimeError("boom")
    with db.session() as s:
        assert s.scalar(select(Project).where(Project.name == "never")) is None
    db.dispose()


def test_unmigrated_database_is_refused_with_the_command_to_run(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    db = Database(url)
    with pytest.raises(DatabaseNotMigratedError, match="looplabel db upgrade"):
        db.require_migrated()
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("LOOPLABEL_INSTANCE", str(tmp_path))
    result = CliRunner().invoke(main, ["serve", "--port", "0"])
    assert result.exit_code != 0
    assert "looplabel db upgrade" in result.output


@pytest.mark.postgres
def test_cli_db_upgrade_on_postgres(pg_database_url, monkeypatch, tmp_path):
    """`looplabel db upgrade` on an already migrated PostgreSQL database is a no-op at head."""
    monkeypatch.setenv("DATABASE_URL", pg_database_url)
    monkeypatch.setenv("LOOPLABEL_INSTANCE", str(tmp_path))
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    head = Database(pg_database_url).head_revision()
    assert f"database at revision {head}" in result.output


def test_after_a_database_restart_reads_retry_and_sessions_fail_once(pg_url, drop_pg_connections):
    """Connections are not pinged on checkout: a read retries once on a fresh connection; a
    session on a dead connection fails once, after which the pool holds only fresh ones."""
    from sqlalchemy.exc import DBAPIError

    db = Database(pg_url)
    with db.session() as s:
        s.add(Project(name="kept", channels=[]))
    statement = select(Project.name)
    assert db.read(statement) == ("kept",)
    assert drop_pg_connections(pg_url) >= 2  # the pooled session and read connections
    assert db.read(statement) == ("kept",)
    with pytest.raises(DBAPIError) as failed:
        with db.session() as s:
            s.scalar(statement)
    assert failed.value.connection_invalidated
    with db.session() as s:
        assert s.scalar(statement) == "kept"
    assert db.read(select(Project.name).where(Project.name == "none")) is None
    db.dispose()


def test_read_on_sqlite_uses_the_one_engine(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    db = Database(url)
    db.upgrade()
    with db.session() as s:
        s.add(Project(name="p", channels=[]))
    assert db.read(select(Project.name)) == ("p",)
    db.dispose()
