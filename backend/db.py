"""SQLAlchemy 2.0 engine and session handling.

One :class:`Database` per process (the app and each worker own one). Sessions are short:
``with db.session() as s:`` commits on success and rolls back on any exception.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class DatabaseNotMigratedError(RuntimeError):
    """The database schema is behind the code; the message says which command to run."""


def driver_url(url: str) -> str:
    """Pin PostgreSQL URLs to psycopg2 (SQLAlchemy 2.1 would otherwise pick psycopg 3)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def make_engine(url: str, autocommit: bool = False) -> Engine:
    """An engine for ``url`` with the settings each backend needs.

    SQLite gets foreign keys, WAL and a busy timeout (the embedded default is shared by the web
    server and the in-process job thread). PostgreSQL connections are recycled after 30 minutes
    and not pinged on checkout (a round trip on every request): after a database restart the
    first statement on a dead connection fails, SQLAlchemy then renews the whole pool, and the
    caller retries (:meth:`Database.read` itself; the web app answers 503 + Retry-After, which the
    editor's autosave retries). ``autocommit``: for :meth:`Database.read`, a small pool.
    """
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if autocommit:  # read-only statements: no BEGIN / ROLLBACK round trips
        return create_engine(driver_url(url), pool_size=4, max_overflow=8, pool_recycle=1800,
                             isolation_level="AUTOCOMMIT")
    return create_engine(driver_url(url), pool_size=10, max_overflow=10, pool_recycle=1800)


class Database:
    """Engine + session factory for one database URL."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self._reads = make_engine(url, autocommit=True) if url.startswith("postgres") else self.engine
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits when the block ends and rolls back when it raises."""
        s = self._factory()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def read(self, statement, params: dict | None = None):
        """The first row of a read-only Core ``statement`` (or None), outside any transaction.

        For hot read paths: no ORM session, no BEGIN/ROLLBACK round trips on PostgreSQL (its own
        small pool in autocommit mode). A statement that fails because its pooled connection
        died (a database restart) is run once more on a fresh connection.
        """
        for attempt in (0, 1):
            try:
                with self._reads.connect() as connection:
                    return connection.execute(statement, params or {}).first()
            except DBAPIError as exc:
                if attempt or not exc.connection_invalidated:
                    raise
        return None  # pragma: no cover - the loop returns or raises

    def check(self) -> None:
        """Raise if the database cannot answer a trivial query (health check)."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # --- migrations -------------------------------------------------------------------------
    def alembic_config(self):
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        cfg.attributes["engine"] = self.engine
        return cfg

    def upgrade(self, revision: str = "head") -> None:
        """Migrate the schema to ``revision`` (SQLite and PostgreSQL alike)."""
        from alembic import command

        command.upgrade(self.alembic_config(), revision)

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self.alembic_config()).get_current_head()

    def require_migrated(self) -> None:
        """Raise :class:`DatabaseNotMigratedError` unless the schema is at the code's head."""
        current, head = self.current_revision(), self.head_revision()
        if current != head:
            state = "has no LoopLabel tables" if current is None else f"is at revision {current}"
            raise DatabaseNotMigratedError(
                f"The database {mask(self.url)} {state}, but this code needs revision {head}. "
                "Run `looplabel db upgrade` first."
            )

    def dispose(self) -> None:
        self.engine.dispose()
        self._reads.dispose()


def mask(url: str) -> str:
    from backend.config import mask_url_password

    return mask_url_password(url)
