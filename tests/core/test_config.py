"""Settings fail fast at start, naming the variable that is wrong."""

import pytest

from morket.config import ConfigError, load_settings

PRODUCTION = {
    "MORKET_ENV": "production",
    "MORKET_SECRET_KEY": "s" * 40,
    "MORKET_DATABASE_URL": "postgresql://db.internal/morket",
    "MORKET_REDIS_URL": "redis://cache.internal:6379/0",
    "MORKET_MASTER_KEY": "ab" * 32,
}


def test_a_non_numeric_port_names_the_variable():
    with pytest.raises(ConfigError, match="MORKET_SMTP_PORT") as info:
        load_settings({"MORKET_SMTP_PORT": "abc"})
    assert "abc" in str(info.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MORKET_ENV", "staging"),
        ("MORKET_DATABASE_URL", "mysql://localhost/morket"),
        ("MORKET_REDIS_URL", "http://localhost:6379"),
        ("MORKET_RATELIMIT_ENABLED", "maybe"),
        ("MORKET_MAX_JSON_BYTES", "1MB"),
        ("MORKET_METRICS_ALLOW", "10.0.0.0/8, prometheus.internal"),
    ],
)
def test_each_bad_value_names_its_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})


def test_production_without_a_secret_key_refuses_to_start():
    env = {k: v for k, v in PRODUCTION.items() if k != "MORKET_SECRET_KEY"}
    with pytest.raises(ConfigError, match="MORKET_SECRET_KEY"):
        load_settings(env)


def test_production_with_a_short_secret_key_refuses_to_start():
    with pytest.raises(ConfigError, match="MORKET_SECRET_KEY"):
        load_settings({**PRODUCTION, "MORKET_SECRET_KEY": "short"})


def test_production_without_a_database_names_it():
    env = {k: v for k, v in PRODUCTION.items() if k != "MORKET_DATABASE_URL"}
    with pytest.raises(ConfigError, match="MORKET_DATABASE_URL"):
        load_settings(env)


def test_production_settings_turn_on_secure_cookies_and_normalise_urls():
    settings = load_settings(PRODUCTION)
    assert settings["SECURE_COOKIES"] is True
    assert settings["DATABASE_URL"] == "postgresql+psycopg://db.internal/morket"
    assert settings["JWT_SECRET"] == settings["SECRET_KEY"]


def test_development_defaults_start_without_any_variable():
    settings = load_settings({})
    assert settings["ENV"] == "development"
    assert settings["SMTP_PORT"] == 587
    assert settings["SECURE_COOKIES"] is False


def test_production_without_a_master_key_refuses_to_start():
    settings = {k: v for k, v in PRODUCTION.items() if k != "MORKET_MASTER_KEY"}
    with pytest.raises(ConfigError, match="MORKET_MASTER_KEY"):
        load_settings(settings)


@pytest.mark.parametrize("raw", ["ab" * 31, "c2hvcnQ=", "not base64 at all!", "ab" * 33])
def test_a_master_key_that_is_not_32_bytes_names_the_variable(raw):
    with pytest.raises(ConfigError, match="MORKET_MASTER_KEY"):
        load_settings({"MORKET_MASTER_KEY": raw})


def test_a_master_key_reads_as_hex_or_base64():
    import base64

    key = bytes(range(32))
    assert load_settings({"MORKET_MASTER_KEY": key.hex()})["MASTER_KEY"] == key
    assert load_settings({"MORKET_MASTER_KEY": base64.b64encode(key).decode()})["MASTER_KEY"] == key
    assert load_settings({"MORKET_MASTER_KEY": base64.urlsafe_b64encode(key).decode().rstrip("=")})["MASTER_KEY"] == key
