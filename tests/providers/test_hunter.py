"""Hunter adapter against the Hunter sandbox: answers, misses and every failure class."""

from __future__ import annotations

import pytest

from morket.providers import registry
from tests.providers.conftest import TEST_KEY

hunter = registry.get_provider("hunter")
DOMAIN_SEARCH = registry.get_operation("hunter.domain_search")
FINDER = registry.get_operation("hunter.email_finder")
VERIFIER = registry.get_operation("hunter.email_verifier")


def test_domain_search_hit_returns_the_organization_and_its_emails(sb, make_ctx):
    result = hunter.call(DOMAIN_SEARCH, {"domain": "https://www.Always-Acme.com/about"}, make_ctx("hunter"))

    assert result.outcome == "hit" and result.billable
    assert result.values["organization"] == "Always Acme"
    assert result.values["pattern"] == "{first}.{last}"
    assert result.values["emails"] and all(e["value"].endswith("@always-acme.com") for e in result.values["emails"])
    log = sb.log("hunter")
    assert [(e["operation"], e["path"], e["status"]) for e in log] == [("domain_search", "/v2/domain-search", 200)]
    assert log[0]["key_hint"] == "…" + TEST_KEY[-4:]


def test_email_finder_hit_and_miss(sb, make_ctx):
    ctx = make_ctx("hunter")
    found = hunter.call(FINDER, {"domain": "always-acme.com", "first_name": "Ada", "last_name": "Lovelace"}, ctx)
    missed = hunter.call(FINDER, {"domain": "acme.com", "first_name": "Nobody", "last_name": "Here"}, ctx)

    assert found.outcome == "hit"
    assert found.values["email"] == "ada.lovelace@always-acme.com"
    assert 60 <= found.values["score"] <= 99 and found.values["position"]
    assert missed.outcome == "not_found" and not missed.billable and missed.values == {}
    assert [e["status"] for e in sb.log("hunter")] == [200, 200]


def test_domain_search_of_an_unknown_domain_is_not_found(sb, make_ctx):
    result = hunter.call(DOMAIN_SEARCH, {"domain": "nodata-corp.com"}, make_ctx("hunter"))
    assert result.outcome == "not_found" and result.final


def test_verifier_reports_each_status_as_a_hit(sb, make_ctx):
    ctx = make_ctx("hunter")
    valid = hunter.call(VERIFIER, {"email": "valid.person@acme.com"}, ctx)
    invalid = hunter.call(VERIFIER, {"email": "invalid.person@acme.com"}, ctx)
    assert VERIFIER.validates
    assert (valid.outcome, valid.values["status"]) == ("hit", "valid")
    assert (invalid.outcome, invalid.values["status"]) == ("hit", "invalid")


def test_bad_key_is_an_auth_error_and_the_key_is_never_echoed(sb, make_ctx):
    key = "live-secret-0000-9999"
    result = hunter.call(DOMAIN_SEARCH, {"domain": "acme.com"}, make_ctx("hunter", key=key))
    assert (result.outcome, result.http_status) == ("auth_error", 401)
    assert key not in (result.message or "") and result.final
    assert sb.log("hunter")[0]["status"] == 401


def test_missing_key_fails_without_calling_hunter(sb, make_ctx):
    result = hunter.call(DOMAIN_SEARCH, {"domain": "acme.com"}, make_ctx("hunter", key=None))
    assert result.outcome == "auth_error"
    assert sb.log("hunter") == []


def test_bad_input_is_final(sb, make_ctx):
    ctx = make_ctx("hunter")
    refused = hunter.call(DOMAIN_SEARCH, {"domain": "localhost"}, ctx)
    assert (refused.outcome, refused.http_status) == ("invalid_input", 400)
    assert "domain" in refused.message
    # Missing inputs and text that is no domain never reach Hunter (no request, nothing billed by them).
    assert hunter.call(DOMAIN_SEARCH, {"domain": "not a domain"}, ctx).outcome == "invalid_input"
    missing = hunter.call(FINDER, {"domain": "acme.com", "first_name": "Ada"}, ctx)
    assert missing.outcome == "invalid_input" and "last_name" in missing.message
    not_email = hunter.call(VERIFIER, {"email": "nobody-at-all"}, ctx)
    assert not_email.outcome == "invalid_input"
    assert len(sb.log("hunter")) == 1


def test_server_errors_are_retryable(sb, make_ctx):
    sb.configure("hunter", error_rate=1.0, fail_status=503)
    result = hunter.call(DOMAIN_SEARCH, {"domain": "acme.com"}, make_ctx("hunter"))
    assert (result.outcome, result.http_status) == ("retryable", 503)
    assert not result.final


def test_a_timeout_is_retryable(sb, make_ctx):
    sb.configure("hunter", latency_ms=500)
    result = hunter.call(DOMAIN_SEARCH, {"domain": "acme.com"}, make_ctx("hunter", timeout=0.2))
    assert result.outcome == "retryable" and "0.2s" in result.message


def test_an_unreachable_host_is_retryable_and_redacted(http):
    from morket.devservices import free_port
    from morket.providers.base import CallContext

    key = "sandbox-very-secret-key"
    ctx = CallContext(client=http, api_key=key, base_url=f"http://127.0.0.1:{free_port()}", timeout=1)
    result = hunter.call(DOMAIN_SEARCH, {"domain": "acme.com"}, ctx)
    assert result.outcome == "retryable" and key not in result.message


def test_rate_limit_answers_429_with_retry_after(sb, make_ctx):
    sb.configure("hunter", rate=0.5, burst=1)
    ctx = make_ctx("hunter")
    first = hunter.call(DOMAIN_SEARCH, {"domain": "acme.com"}, ctx)
    second = hunter.call(DOMAIN_SEARCH, {"domain": "acme.com"}, ctx)
    assert first.outcome in ("hit", "not_found")
    assert (second.outcome, second.http_status) == ("rate_limited", 429)
    assert 1 <= second.retry_after <= 2
    assert [e["status"] for e in sb.log("hunter")][1] == 429


def test_the_key_in_hunters_url_stays_out_of_the_logs(sb, make_ctx):
    """httpx logs each request URL at INFO; Hunter's key is in that URL, and Morket's log format hides it."""
    import logging

    from morket.core.logging import JsonFormatter

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("httpx")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        hunter.call(DOMAIN_SEARCH, {"domain": "acme.com"}, make_ctx("hunter"))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    assert lines and "domain-search" in lines[0]
    assert all(TEST_KEY not in line for line in lines)


@pytest.mark.parametrize(
    ("status", "outcome", "retry_after"),
    [(403, "rate_limited", 1.0), (429, "rate_limited", 60.0), (451, "not_found", None), (202, "retryable", 5.0),
     (222, "retryable", None), (422, "invalid_input", None), (500, "retryable", None)],
)  # fmt: skip
def test_each_documented_status_is_classified(sb, make_ctx, status, outcome, retry_after):
    sb.configure("hunter", error_rate=1.0, fail_status=status)
    result = hunter.call(VERIFIER, {"email": "ada@acme.com"}, make_ctx("hunter"))
    assert (result.outcome, result.http_status, result.retry_after) == (outcome, status, retry_after)
