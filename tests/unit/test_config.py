import pytest

from backend.config import Settings, SettingsError, mask_url_password


def test_defaults_are_embedded(tmp_path):
    s = Settings.from_env({"LOOPLABEL_INSTANCE": str(tmp_path / "inst")})
    assert s.database_url == f"sqlite:///{tmp_path / 'inst' / 'looplabel.db'}"
    assert s.storage_url == f"file://{tmp_path / 'inst' / 'storage'}"
    assert s.redis_url is None
    assert s.max_image_pixels == 20000 * 20000


def test_secret_key_is_generated_once_and_kept(tmp_path):
    env = {"LOOPLABEL_INSTANCE": str(tmp_path)}
    first = Settings.from_env(env).secret_key
    assert len(first) >= 32
    assert Settings.from_env(env).secret_key == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_environment_overrides(tmp_path):
    s = Settings.from_env({
        "LOOPLABEL_INSTANCE": str(tmp_path),
        "DATABASE_URL": "postgresql://u:hunter2@db/x",
        "STORAGE_URL": "s3://bucket/prefix",
        "S3_ENDPOINT_URL": "http://minio:9000",
        "REDIS_URL": "redis://r:6379/0",
        "SECRET_KEY": "s3cret",
        "MAX_UPLOAD_MB": "10",
    })
    assert s.redis_url == "redis://r:6379/0" and s.max_upload_mb == 10
    shown = s.masked()
    assert "hunter2" not in shown["DATABASE_URL"] and "***" in shown["DATABASE_URL"]
    assert shown["SECRET_KEY"] == "********"
    assert shown["STORAGE_URL"] == "s3://bucket/prefix"


@pytest.mark.parametrize("env,name", [
    ({"MAX_UPLOAD_MB": "lots"}, "MAX_UPLOAD_MB"),
    ({"MAX_CHANNELS": "0"}, "MAX_CHANNELS"),
    ({"STORAGE_URL": "ftp://x/y"}, "STORAGE_URL"),
])
def test_bad_settings_name_the_variable(tmp_path, env, name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({"LOOPLABEL_INSTANCE": str(tmp_path), **env})


def test_mask_url_password_leaves_plain_urls():
    assert mask_url_password("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert mask_url_password("redis://:pw@h:1/0") == "redis://:***@h:1/0"
