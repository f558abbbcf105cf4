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
