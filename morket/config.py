"""Typed settings read from ``MORKET_*`` environment variables.

Every setting is declared once in ``SETTINGS`` with its parser and default. A bad value
stops the process at start with a message that names the variable, never later at first use.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class ConfigError(RuntimeError):
    """A MORKET_* variable is missing or malformed."""


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true/false")


def _int(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got {raw.strip()!r}") from None


def _str(raw: str) -> str:
    return raw.strip()


def _list(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _float(raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {raw.strip()!r}") from None


def _master_key(raw: str) -> bytes | None:
    """The credentials master key: 32 bytes written as 64 hex digits or base64 (either alphabet)."""
    import base64
    import binascii

    text = raw.strip()
    if not text:
        return None
    key: bytes | None = None
    if len(text) == 64:
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = None
    if key is None:
        try:
            key = base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("expected 32 bytes as 64 hex digits or base64") from None
    if len(key) != 32:
        raise ValueError(f"the master key must be exactly 32 bytes, got {len(key)}")
    return key


def _db_url(raw: str) -> str:
    url = raw.strip()
    if not url:
        return url
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if not url.startswith("postgresql+psycopg://"):
        raise ValueError("expected a postgresql:// URL (Morket runs on PostgreSQL only)")
    return url


def _redis_url(raw: str) -> str:
    url = raw.strip()
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    return url


def _env(raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"development", "production", "test"}:
        raise ValueError("expected development, production or test")
    return value


@dataclass(frozen=True)
class Setting:
    key: str
    parse: Callable[[str], Any]
    default: str
    secret: bool = False
    help: str = ""


SETTINGS: tuple[Setting, ...] = (
    Setting("ENV", _env, "development", help="development, production or test"),
    Setting("SECRET_KEY", _str, "", secret=True, help="signs sessions, CSRF and links; required in production"),
    Setting("DATABASE_URL", _db_url, "", help="PostgreSQL URL; empty means embedded (make run)"),
    Setting("REDIS_URL", _redis_url, "", help="Redis/Valkey URL; empty means embedded (make run)"),
    Setting("BASE_URL", _str, "http://127.0.0.1:5000", help="public URL used in emailed links"),
    Setting("SMTP_HOST", _str, "", help="SMTP server; empty stores mail in the dev mailbox"),
    Setting("SMTP_PORT", _int, "587"),
    Setting("SMTP_USERNAME", _str, ""),
    Setting("SMTP_PASSWORD", _str, "", secret=True),
    Setting("SMTP_STARTTLS", _bool, "false"),
    Setting("MAIL_FROM", _str, "Morket <no-reply@morket.local>"),
    Setting("CORS_ORIGINS", _list, "", help="comma-separated origins allowed to call /api/v1"),
    Setting("JWT_SECRET", _str, "", secret=True, help="signs API access tokens; defaults to SECRET_KEY"),
    Setting("RATELIMIT_ENABLED", _bool, "true"),
    Setting("SECURE_COOKIES", _bool, "", help="defaults to true in production"),
    Setting("MAX_JSON_BYTES", _int, "1048576"),
    Setting("MAX_UPLOAD_BYTES", _int, "10485760"),
    Setting("IMPORT_MAX_BYTES", _int, "524288000", help="size cap of one CSV import (its own, above uploads)"),
    Setting("DATAOPS_DIR", _str, "", help="folder for uploaded and exported files, shared by web and workers"),
    Setting("EXPORT_BACKGROUND_ROWS", _int, "50000", help="exports of more rows run as a job and are emailed"),
    Setting("LOG_LEVEL", _str, "INFO"),
    Setting("SANDBOX_MODE", _bool, "false", help="label the UI as sandbox (demo providers)"),
    # Credentials and enrichment.
    Setting("MASTER_KEY", _master_key, "", secret=True, help="32-byte key (hex or base64) encrypting credentials"),
    Setting("APOLLO_URL", _str, "", help="Apollo API base URL; empty means the real api.apollo.io"),
    Setting("HUNTER_URL", _str, "", help="Hunter API base URL; empty means the real api.hunter.io"),
    Setting("CLEARBIT_URL", _str, "", help="one base URL for every Clearbit API; empty means the real hosts"),
    Setting("APOLLO_API_KEY", _str, "", secret=True, help="the platform's Apollo key (runs charge credits)"),
    Setting("HUNTER_API_KEY", _str, "", secret=True, help="the platform's Hunter key (runs charge credits)"),
    Setting("CLEARBIT_API_KEY", _str, "", secret=True, help="the platform's Clearbit key (runs charge credits)"),
    Setting("PROVIDER_RATES", _list, "", help="per-provider request rates, e.g. hunter=15,apollo=50 (per second)"),
    Setting("WELCOME_CREDITS", _int, "1000", help="credits granted to a new workspace"),
    Setting("ENRICHMENT_CACHE_TTL", _int, "2592000", help="seconds a provider hit or not-found is reused"),
    Setting("ENRICHMENT_CONFIRM_CREDITS", _int, "500", help="runs estimated above this ask for confirmation"),
    Setting("ENRICHMENT_LEASE_SECONDS", _int, "120", help="how long a worker holds a batch of rows"),
    Setting("ENRICHMENT_BATCH_ROWS", _int, "50", help="rows one worker claims at a time"),
    Setting("ENRICHMENT_CONCURRENCY", _int, "8", help="provider calls in flight inside one job"),
    Setting("ENRICHMENT_JOBS_PER_RUN", _int, "2", help="jobs working on one run at once"),
    Setting("ENRICHMENT_BACKOFF_SECONDS", _float, "2", help="first retry delay; doubles per attempt, with jitter"),
    Setting("ENRICHMENT_BREAKER_FAIL_MAX", _int, "5", help="failures in a row that open a provider's breaker"),
    Setting("ENRICHMENT_BREAKER_RESET_SECONDS", _float, "30", help="seconds an open breaker waits to probe"),
    # Scraping.
    Setting("CHROMIUM_PATH", _str, "", help="Chromium binary; empty tries /usr/bin/chromium, then Playwright's"),
    Setting("SCRAPE_ALLOWLIST", _list, "", help="host:port pairs a scrape may reach despite being private"),
    Setting("SCRAPE_RESPECT_ROBOTS", _bool, "true"),
    Setting("SCRAPE_PROXIES", _list, "", help="proxy URLs used in rotation; empty means direct"),
    Setting("SCRAPE_DOMAIN_RATE", _float, "1", help="pages per second per domain, shared by all workers"),
    Setting("SCRAPE_MAX_BYTES", _int, "10485760", help="largest page a scrape reads"),
    Setting("SCRAPE_PAGE_TIMEOUT", _float, "20", help="seconds one page may take"),
    Setting("SCRAPE_RECYCLE_PAGES", _int, "200", help="pages before a browser context is recycled"),
    Setting("SCRAPE_HOST_RESOLVER_RULES", _str, "", help="Chromium host resolver rules (local test sites only)"),
    Setting("SCRAPE_RECYCLE_MB", _int, "1024", help="browser memory growth (MB) that forces a relaunch"),
)


def load_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Parse every MORKET_* setting; raise ConfigError naming the first bad variable."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        name = f"MORKET_{setting.key}"
        raw = environ.get(name, setting.default)
        if raw.strip() == "" and setting.key == "SECURE_COOKIES":
            values[setting.key] = None
            continue
        try:
            values[setting.key] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{name} is invalid: {exc}") from None
    if values["SECURE_COOKIES"] is None:
        values["SECURE_COOKIES"] = values["ENV"] == "production"
    if values["ENV"] == "production":
        for key in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL"):
            if not values[key]:
                raise ConfigError(f"MORKET_{key} must be set in production")
        if len(values["SECRET_KEY"]) < 32:
            raise ConfigError("MORKET_SECRET_KEY must be at least 32 characters in production")
    if values["ENV"] == "production" and values["MASTER_KEY"] is None:
        raise ConfigError("MORKET_MASTER_KEY must be set in production (32 bytes, hex or base64)")
    if not values["SECRET_KEY"]:
        values["SECRET_KEY"] = "dev-insecure-secret-key-change-me-0123456789"  # noqa: S105 - refused in production
    if values["MASTER_KEY"] is None:
        # Development and tests only (refused in production above): a fixed key derived from SECRET_KEY.
        import hashlib

        values["MASTER_KEY"] = hashlib.sha256(b"morket-dev-master-key:" + values["SECRET_KEY"].encode()).digest()
    if not values["JWT_SECRET"]:
        values["JWT_SECRET"] = values["SECRET_KEY"]
    return values


def flask_config(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Translate Morket settings into the Flask and extension config keys."""
    cookie_secure = bool(settings["SECURE_COOKIES"])
    return {
        "MORKET": dict(settings),
        "ENV_NAME": settings["ENV"],
        "TESTING": settings["ENV"] == "test",
        "SECRET_KEY": settings["SECRET_KEY"],
        "SQLALCHEMY_DATABASE_URI": settings["DATABASE_URL"] or None,
        # Liveness of pooled connections is checked at checkout in morket.core.db (no round trip
        # for a recently used connection), instead of pool_pre_ping's SELECT 1 on every checkout.
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": False},
        "REDIS_URL": settings["REDIS_URL"],
        "SESSION_COOKIE_SECURE": cookie_secure,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": cookie_secure,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "WTF_CSRF_TIME_LIMIT": None,
        "MAX_CONTENT_LENGTH": settings["MAX_UPLOAD_BYTES"],
        "RATELIMIT_ENABLED": settings["RATELIMIT_ENABLED"],
        "RATELIMIT_STORAGE_URI": settings["REDIS_URL"] or "memory://",
        "RATELIMIT_HEADERS_ENABLED": True,
        "RATELIMIT_KEY_PREFIX": "morket-rl",
        "PREFERRED_URL_SCHEME": "https" if settings["ENV"] == "production" else "http",
    }
