"""Typed settings read from ``MORKET_*`` environment variables.

Every setting is declared once in ``SETTINGS`` with its parser and default. A bad value
stops the process at start with a message that names the variable, never later at first use.

In development, a process started without MORKET_DATABASE_URL or MORKET_REDIS_URL (the
``flask`` CLI in a second terminal) takes the settings a running ``make run`` chose from
``var/env`` (see ``with_run_env``); a variable that is set always wins.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
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


def _networks(raw: str) -> list[Any]:
    """Comma-separated networks in CIDR form (a bare address is one host), IPv4 or IPv6."""
    import ipaddress

    networks = []
    for part in _list(raw):
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"expected networks like 10.0.0.0/8 or ::1, got {part!r}") from None
    return networks


def _float(raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {raw.strip()!r}") from None


def _seconds_list(raw: str) -> list[float]:
    """Comma-separated positive numbers of seconds (a retry schedule)."""
    values = [_float(part) for part in _list(raw)]
    if not values or any(v <= 0 for v in values):
        raise ValueError("expected positive numbers of seconds, e.g. 5,300,1800")
    return values


def parse_master_key(raw: str) -> bytes | None:
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


def _http_url(raw: str) -> str:
    url = raw.strip()
    if url and not url.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
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
    Setting(
        "OPENSEARCH_URL", _http_url, "", secret=True, help="OpenSearch URL for search; empty searches in PostgreSQL"
    ),
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
    Setting("LIVE_STREAMS", _int, "4", help="live grid streams open at once per web process (each holds a thread)"),
    Setting("LIVE_STREAM_SECONDS", _int, "120", help="a live grid stream ends after this long; the browser reconnects"),
    Setting("LIVE_HEARTBEAT_SECONDS", _int, "5", help="seconds between heartbeats; a closed tab frees its slot"),
    Setting("LOG_LEVEL", _str, "INFO"),
    Setting("METRICS_TOKEN", _str, "", secret=True, help="bearer token a Prometheus scraper sends to /metrics"),
    Setting("METRICS_ALLOW", _networks, "", help="networks (CIDRs) whose scrapers /metrics answers without a token"),
    Setting("SANDBOX_MODE", _bool, "false", help="label the UI as sandbox (demo providers)"),
    # Credentials and enrichment.
    Setting("MASTER_KEY", parse_master_key, "", secret=True, help="32-byte key (hex or base64) encrypting credentials"),
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
    # CRM connections (OAuth apps registered with each CRM; sandbox mode points the URLs at the sandboxes).
    Setting("HUBSPOT_API_URL", _str, "https://api.hubapi.com", help="HubSpot API base URL"),
    Setting("HUBSPOT_AUTH_URL", _str, "https://app.hubspot.com", help="where HubSpot's consent page lives"),
    Setting("HUBSPOT_CLIENT_ID", _str, "", help="the HubSpot app's client id; empty disables HubSpot connections"),
    Setting("HUBSPOT_CLIENT_SECRET", _str, "", secret=True, help="the HubSpot app's client secret"),
    Setting("SALESFORCE_LOGIN_URL", _str, "https://login.salesforce.com", help="Salesforce login host"),
    Setting("SALESFORCE_CLIENT_ID", _str, "", help="the connected app's consumer key; empty disables Salesforce"),
    Setting("SALESFORCE_CLIENT_SECRET", _str, "", secret=True, help="the connected app's consumer secret"),
    Setting("CRM_REFRESH_MARGIN", _float, "300", help="seconds before expiry at which a CRM token is refreshed"),
    Setting("CRM_SCHEMA_CACHE_SECONDS", _int, "300", help="seconds a CRM's objects and fields are reused"),
    # Scraping.
    Setting("CHROMIUM_PATH", _str, "", help="Chromium binary; empty tries /usr/bin/chromium, then Playwright's"),
    Setting("SCRAPE_ALLOWLIST", _list, "", help="host:port pairs a scrape may reach despite being private"),
    Setting("SCRAPE_RESPECT_ROBOTS", _bool, "true"),
    Setting("SCRAPE_PROXIES", _list, "", help="proxy URLs used in rotation; empty means direct"),
    Setting(
        "SCRAPE_EGRESS_PROXY",
        _str,
        "",
        help="external egress proxy URL for the scrape browser; empty starts Morket's own per scrape worker",
    ),
    Setting("SCRAPE_DOMAIN_RATE", _float, "1", help="pages per second per domain, shared by all workers"),
    Setting("SCRAPE_MAX_BYTES", _int, "10485760", help="largest page a scrape reads"),
    Setting("SCRAPE_PAGE_TIMEOUT", _float, "20", help="seconds one page may take"),
    Setting("SCRAPE_RECYCLE_PAGES", _int, "200", help="pages before a browser context is recycled"),
    Setting("SCRAPE_HOST_RESOLVER_RULES", _str, "", help="MAP rules for the egress proxy's resolver (test sites)"),
    Setting("SCRAPE_RECYCLE_MB", _int, "1024", help="browser memory growth (MB) that forces a relaunch"),
    # Language models (AI columns): the platform's default endpoint, charged in platform credits.
    Setting("AI_KIND", _str, "openai", help="the default endpoint's API: openai (any compatible server) or anthropic"),
    Setting("AI_BASE_URL", _str, "", help="the default endpoint's base URL; empty means no platform default"),
    Setting("AI_API_KEY", _str, "", secret=True, help="the platform's key for the default endpoint"),
    Setting("AI_MODEL", _str, "gpt-4o-mini", help="the default endpoint's default model"),
    Setting("AI_MODELS", _list, "", help="more models workspaces may pick on the default endpoint"),
    Setting(
        "AI_ALLOW_LOOPBACK",
        _bool,
        "false",
        help="let workspace model endpoints use loopback addresses (development, sandbox and tests only)",
    ),
    Setting("AI_ENDPOINT_ALLOWLIST", _list, "", help="host:port pairs a model endpoint may use though private"),
    # The research agent: a Brave-compatible web search API (the operator's) and its page budget.
    Setting("WEBSEARCH_URL", _str, "https://api.search.brave.com", help="web search API base (Brave's contract)"),
    Setting("WEBSEARCH_API_KEY", _str, "", secret=True, help="the web search API's key; empty: only company sites"),
    Setting("RESEARCH_PAGE_MAX_BYTES", _int, "1048576", help="largest page the research agent reads"),
    # Outbound webhooks.
    Setting(
        "WEBHOOK_ALLOW_HTTP_LOOPBACK",
        _bool,
        "false",
        help="let webhook endpoints use http:// on a loopback address (development and tests only)",
    ),
    Setting(
        "WEBHOOK_RETRY_SCHEDULE",
        _seconds_list,
        "5,300,1800,7200,18000,36000,23400",
        help="seconds before each retry of a failed delivery (jittered); when it runs out the endpoint is disabled",
    ),
    Setting("WEBHOOK_TIMEOUT", _float, "10", help="seconds a webhook receiver has to answer"),
    Setting("WEBHOOK_ROTATION_OVERLAP", _int, "86400", help="seconds the previous secret still signs after a rotation"),
    Setting("WEBHOOK_ROW_BATCH", _int, "500", help="row ids carried by one row event at most"),
    # Billing (Stripe). Empty keys leave billing off: every workspace is on the free plan.
    Setting("STRIPE_SECRET_KEY", _str, "", secret=True, help="Stripe secret API key (sk_live_… or sk_test_…)"),
    Setting("STRIPE_WEBHOOK_SECRET", _str, "", secret=True, help="signing secret (whsec_…) of the webhook endpoint"),
    Setting("STRIPE_API_BASE", _str, "", help="Stripe API base URL; empty means the real api.stripe.com (sandbox)"),
    Setting("STRIPE_PRICE_STARTER", _str, "price_morket_starter", help="Stripe price id of the Starter plan"),
    Setting("STRIPE_PRICE_PRO", _str, "price_morket_pro", help="Stripe price id of the Pro plan"),
    Setting("STRIPE_PRICE_TEAM", _str, "price_morket_team", help="Stripe price id of the Team plan"),
    Setting("STRIPE_PRICE_PACK_5K", _str, "price_morket_pack_5k", help="Stripe price id of the 5,000-credit pack"),
    Setting("STRIPE_PRICE_PACK_25K", _str, "price_morket_pack_25k", help="Stripe price id of the 25,000-credit pack"),
    Setting("BILLING_GRACE_DAYS", _int, "7", help="days a workspace keeps its plan after a renewal payment fails"),
)


RUN_PID_KEY = "MORKET_RUN_PID"


def var_dir(environ: Mapping[str, str]) -> Path:
    """Where make run keeps its state: MORKET_VAR_DIR, else ``var`` in the checkout."""
    return Path(environ.get("MORKET_VAR_DIR") or Path(__file__).resolve().parent.parent / "var").resolve()


def run_env_path(environ: Mapping[str, str]) -> Path:
    """The file in which a running make run lists the settings it chose (``var/env``)."""
    return var_dir(environ) / "env"


def write_run_env(path: Path, values: Mapping[str, str]) -> None:
    """Write ``values`` and this process's id to ``path`` atomically, readable by its owner only."""
    lines = ["# Written by make run while it runs (removed when it stops): the settings it chose."]
    lines += [f"{key}={shlex.quote(value)}" for key, value in sorted({**values, RUN_PID_KEY: str(os.getpid())}.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(partial, path)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_run_env(path: Path) -> dict[str, str] | None:
    """The settings in ``path``; None when there is no such file or the make run that wrote it is gone."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, quoted = line.strip().partition("=")
        if sep and not key.startswith("#"):
            values[key] = "".join(shlex.split(quoted))
    pid = values.pop(RUN_PID_KEY, "")
    if not pid.isdigit() or not _process_alive(int(pid)):
        return None
    return values


def with_run_env(environ: Mapping[str, str]) -> Mapping[str, str]:
    """``environ`` completed from a running make run's ``var/env`` when a service URL is missing.

    Development only: tests and production never read the file. Variables already set win.
    """
    if (environ.get("MORKET_ENV") or "development").strip().lower() != "development":
        return environ
    if all((environ.get(f"MORKET_{key}") or "").strip() for key in ("DATABASE_URL", "REDIS_URL")):
        return environ
    found = read_run_env(run_env_path(environ))
    if not found:
        return environ
    merged = dict(environ)
    for key, value in found.items():
        if key.startswith("MORKET_") and not (merged.get(key) or "").strip():
            merged[key] = value
    return merged


def missing_service_message(name: str, environ: Mapping[str, str] | None = None) -> str:
    """Say that the variable ``name`` is unset, and how to get it, for a process that needs it."""
    path = run_env_path(os.environ if environ is None else environ)
    if path.exists():
        found = f"{path} was left by a make run that is no longer running"
    else:
        found = f"no make run is running (it lists its servers in {path})"
    return f"{name} is not set and {found}: start `make run` (in another terminal), or set {name}"


def load_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Parse every MORKET_* setting; raise ConfigError naming the first bad variable.

    Without ``environ``: the process environment, completed by ``with_run_env``.
    """
    environ = with_run_env(os.environ) if environ is None else environ
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
