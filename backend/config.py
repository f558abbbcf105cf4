"""Settings read from the environment, with embedded defaults.

With no environment at all, LoopLabel runs embedded: a SQLite file and a storage folder under
``./instance/`` and an in-process job runner. Setting ``DATABASE_URL``, ``STORAGE_URL`` and
``REDIS_URL`` switches each part to the real service.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

SECRET_FIELDS = ("secret_key",)


class SettingsError(ValueError):
    """A setting has a value LoopLabel cannot use; the message names the variable."""


def _int_env(env, name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """The effective configuration of one process.

    Attributes mirror environment variables of the same name in upper case.
    """

    instance_dir: Path
    database_url: str
    storage_url: str
    s3_endpoint_url: str | None
    redis_url: str | None
    secret_key: str
    max_upload_mb: int = 2048
    max_image_pixels: int = 20000 * 20000
    max_channels: int = 64
    # What the images of one upload take in memory once decoded (H x W x channels x bytes per
    # sample), checked from the file headers before decoding. The import peaks at about twice
    # this (one transposing copy, then the .npy serialisation) plus the upload itself: 2048 MB
    # keeps one import near 4-5 GB, what a small (2-core, 8-16 GB) web node can give one request.
    max_decoded_mb: int = 2048
    max_body_kb: int = 1024  # request bodies of routes without a limit of their own
    max_crowd_body_kb: int = 16  # crowd lease and submit, login and logout (JSON / form of < 2 KB)
    leases_per_address_per_min: int = 40  # crowd lease requests from one client address
    leases_per_platform_per_min: int = 600  # crowd lease requests of one project's platform, all addresses
    max_open_leases_per_worker: int = 3  # live leases one worker id may hold at once
    trusted_proxy_hops: int = 0  # reverse proxies in front whose X-Forwarded-For is trusted
    assignment_ttl_s: int = 3600
    web_workers: int = 4
    web_threads: int = 4
    log_level: str = "INFO"
    queue_prefix: str = ""
    train_backbone: str = "small"
    train_steps: int = 2000
    secure_cookies: bool = False
    login_failures_per_name: int = 20
    login_failures_per_address: int = 100
    login_failure_window_s: int = 60

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Settings":
        """Read settings from ``env`` (default ``os.environ``).

        The secret key, when unset, is generated once and kept in ``<instance>/secret_key``
        so sessions and tokens survive restarts.
        """
        env = os.environ if env is None else env
        instance = Path(env.get("LOOPLABEL_INSTANCE") or "instance").resolve()
        database_url = env.get("DATABASE_URL") or f"sqlite:///{instance / 'looplabel.db'}"
        storage_url = env.get("STORAGE_URL") or f"file://{instance / 'storage'}"
        scheme = urlsplit(storage_url).scheme
        if scheme not in ("file", "s3", ""):
            raise SettingsError(
                f"STORAGE_URL must start with file:// or s3://, got {storage_url!r}"
            )
        return cls(
            instance_dir=instance,
            database_url=database_url,
            storage_url=storage_url,
            s3_endpoint_url=env.get("S3_ENDPOINT_URL") or None,
            redis_url=env.get("REDIS_URL") or None,
            secret_key=env.get("SECRET_KEY") or _instance_secret(instance),
            max_upload_mb=_int_env(env, "MAX_UPLOAD_MB", 2048),
            max_image_pixels=_int_env(env, "MAX_IMAGE_PIXELS", 20000 * 20000),
            max_channels=_int_env(env, "MAX_CHANNELS", 64),
            max_decoded_mb=_int_env(env, "MAX_DECODED_MB", 2048),
            max_body_kb=_int_env(env, "MAX_BODY_KB", 1024),
            max_crowd_body_kb=_int_env(env, "MAX_CROWD_BODY_KB", 16),
            leases_per_address_per_min=_int_env(env, "LEASES_PER_ADDRESS_PER_MIN", 40),
            leases_per_platform_per_min=_int_env(env, "LEASES_PER_PLATFORM_PER_MIN", 600),
            max_open_leases_per_worker=_int_env(env, "MAX_OPEN_LEASES_PER_WORKER", 3),
            trusted_proxy_hops=_int_env(env, "TRUSTED_PROXY_HOPS", 0, minimum=0),
            assignment_ttl_s=_int_env(env, "ASSIGNMENT_TTL_S", 3600, minimum=10),
            web_workers=_int_env(env, "WEB_WORKERS", 4),
            web_threads=_int_env(env, "WEB_THREADS", 4),
            log_level=(env.get("LOG_LEVEL") or "INFO").upper(),
            queue_prefix=env.get("QUEUE_PREFIX") or "",
            train_backbone=env.get("TRAIN_BACKBONE") or "small",
            train_steps=_int_env(env, "TRAIN_STEPS", 2000),
            secure_cookies=(env.get("SECURE_COOKIES") or "").lower() in ("1", "true", "yes"),
            login_failures_per_name=_int_env(env, "LOGIN_FAILURES_PER_NAME", 20),
            login_failures_per_address=_int_env(env, "LOGIN_FAILURES_PER_ADDRESS", 100),
            login_failure_window_s=_int_env(env, "LOGIN_FAILURE_WINDOW_S", 60),
        )

    def with_overrides(self, **changes) -> "Settings":
        """A copy with some fields replaced (tests and the CLI use this)."""
        return replace(self, **changes)

    def masked(self) -> dict[str, str]:
        """Every setting as text, with secrets and URL passwords masked, for ``looplabel config``."""
        shown = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS:
                value = "********" if value else "(unset)"
            elif isinstance(value, str) and "://" in value:
                value = mask_url_password(value)
            elif value is None:
                value = "(unset)"
            shown[f.name.upper()] = str(value)
        return shown

    def as_dict(self) -> dict:
        return asdict(self)


def mask_url_password(url: str) -> str:
    """Replace the password of ``scheme://user:password@host`` with ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _instance_secret(instance: Path) -> str:
    path = instance / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    instance.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    os.replace(tmp, path)
    return path.read_text().strip()
