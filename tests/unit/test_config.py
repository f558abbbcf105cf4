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


def test_login_throttle_settings(tmp_path):
    s = Settings.from_env({"LOOPLABEL_INSTANCE": str(tmp_path)})
    assert (s.login_failures_per_name, s.login_failures_per_address, s.login_failure_window_s) == (20, 100, 60)
    s = Settings.from_env({"LOOPLABEL_INSTANCE": str(tmp_path), "LOGIN_FAILURES_PER_NAME": "5",
                           "LOGIN_FAILURES_PER_ADDRESS": "50", "LOGIN_FAILURE_WINDOW_S": "300"})
    assert (s.login_failures_per_name, s.login_failures_per_address, s.login_failure_window_s) == (5, 50, 300)
    with pytest.raises(SettingsError, match="LOGIN_FAILURES_PER_NAME"):
        Settings.from_env({"LOOPLABEL_INSTANCE": str(tmp_path), "LOGIN_FAILURES_PER_NAME": "0"})


def test_request_and_crowd_limits_have_defaults_and_name_their_variable(tmp_path):
    s = Settings.from_env({"LOOPLABEL_INSTANCE": str(tmp_path)})
    assert (s.max_decoded_mb, s.max_body_kb, s.max_crowd_body_kb) == (2048, 1024, 16)
    assert (s.leases_per_address_per_min, s.leases_per_platform_per_min, s.max_open_leases_per_worker) == (40, 600, 3)
    assert s.trusted_proxy_hops == 0
    s = Settings.from_env({"LOOPLABEL_INSTANCE": str(tmp_path), "MAX_DECODED_MB": "512", "TRUSTED_PROXY_HOPS": "1",
                           "LEASES_PER_ADDRESS_PER_MIN": "100000"})
    assert (s.max_decoded_mb, s.trusted_proxy_hops, s.leases_per_address_per_min) == (512, 1, 100000)
    for name in ("MAX_DECODED_MB", "MAX_CROWD_BODY_KB", "LEASES_PER_ADDRESS_PER_MIN", "MAX_OPEN_LEASES_PER_WORKER"):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({"LOOPLABEL_INSTANCE": str(tmp_path), name: "0"})
    with pytest.raises(SettingsError, match="TRUSTED_PROXY_HOPS"):
        Settings.from_env({"LOOPLABEL_INSTANCE": str(tmp_path), "TRUSTED_PROXY_HOPS": "-1"})
