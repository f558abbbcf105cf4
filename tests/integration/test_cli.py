"""The command line: demo (idempotent), import (all or nothing, non-zero exit), user add, config."""

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from sqlalchemy import func, select

from backend.cli import main
from backend.db import Database
from backend.models import Crop, Image, Project, Round, User


@pytest.fixture
def env(monkeypatch, db_url, tmp_path):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("STORAGE_URL", f"file://{tmp_path / 'storage'}")
    monkeypatch.setenv("LOOPLABEL_INSTANCE", str(tmp_path / "instance"))
    monkeypatch.delenv("REDIS_URL", raising=False)
    return db_url


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def count(db_url, model):
    db = Database(db_url)
    with db.session() as s:
        n = s.scalar(select(func.count()).select_from(model))
    db.dispose()
    return n


def test_demo_is_idempotent(env, tmp_path):
    first = run("demo", "--images", "2", "--size", "96")
    assert first.exit_code == 0, first.output
    assert "2 images, 2 added" in first.output
    assert "/annotate/1?worker=demo-worker" in first.output
    passwords = {line.split(" / ")[0].split()[-1]: line.split(" / ")[1] for line in first.output.splitlines() if " / " in line}
    assert set(passwords) == {"demo-admin", "demo-reviewer"} and all(len(p) >= 8 for p in passwords.values())
    assert count(env, Round) == 1 and count(env, Crop) >= 2 and count(env, User) == 2
    again = run("demo", "--images", "2", "--size", "96")
    assert again.exit_code == 0 and "2 images, 0 added" in again.output
    assert passwords["demo-admin"] not in again.output  # printed once only
    assert count(env, Project) == 1 and count(env, Image) == 2 and count(env, Round) == 1
    assert len(list((tmp_path / "storage" / "images").iterdir())) == 2


def test_import_all_or_nothing_with_nonzero_exit(env, tmp_path):
    run("demo", "--images", "1", "--size", "64")
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, np.ones((3, 32, 32), dtype=np.uint16))
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"plain text pretending to be a tiff")
    before = count(env, Image)
    result = CliRunner().invoke(main, ["import", "demo", str(good), str(bad)])
    assert result.exit_code != 0
    assert "bad.tif" in result.output
    assert count(env, Image) == before
    ok = run("import", "demo", str(good))
    assert ok.exit_code == 0 and "imported good.tif" in ok.output
    assert count(env, Image) == before + 1
    missing = CliRunner().invoke(main, ["import", "nosuchproject", str(good)])
    assert missing.exit_code != 0 and "nosuchproject" in missing.output


def test_user_add_and_config(env):
    result = run("user", "add", "ada", "--role", "reviewer")
    assert result.exit_code == 0 and "password:" in result.output
    dup = CliRunner().invoke(main, ["user", "add", "ada", "--role", "admin"])
    assert dup.exit_code != 0 and "already exists" in dup.output
    assert count(env, User) == 1
    cfg = run("config")
    assert "DATABASE_URL" in cfg.output and "SECRET_KEY" in cfg.output


def test_commands_log_no_database_set_up_chatter_and_json_lines_carry_no_colour_codes(env, tmp_path):
    """Issue #14 bug 11: each command printed alembic's set-up INFO lines (plugins, context), and a
    coloured message (werkzeug's request lines) kept its escape codes inside the JSON line."""
    import json
    import os
    import subprocess
    import sys

    def looplabel(*args):  # stderr is a pipe, not a terminal: JSON lines, as in a container
        return subprocess.run([sys.executable, "-c", "from backend.cli import main; main()", *args],
                              capture_output=True, text=True, env=dict(os.environ), timeout=120)

    upgrade = looplabel("db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    assert "database at revision" in upgrade.stdout
    for args in (("db", "current"), ("user", "add", "quiet", "--role", "reviewer", "--password", "long-enough-1")):
        done = looplabel(*args)
        assert done.returncode == 0, done.stderr
        assert done.stderr == "", done.stderr.splitlines()[:3]
    coloured = subprocess.run(
        [sys.executable, "-c", "import logging; from backend.observability import configure_logging; "
         "configure_logging('INFO'); logging.getLogger('werkzeug').info('\\x1b[32mGET / HTTP/1.1\\x1b[0m 200')"],
        capture_output=True, text=True, timeout=60)
    (line,) = coloured.stderr.splitlines()
    assert json.loads(line)["message"] == "GET / HTTP/1.1 200" and "\\u001b" not in line
