"""Clearbit adapter against the Clearbit sandbox, including the 202 -> signed webhook flow."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from morket.providers import clearbit as clearbit_module
from morket.providers import registry
from morket.providers.base import CallContext
from tests.providers.conftest import TEST_KEY
from tests.support.sandbox import WebhookSink

clearbit = registry.get_provider("clearbit")
PERSON = registry.get_operation("clearbit.person")
COMPANY = registry.get_operation("clearbit.company")
COMBINED = registry.get_operation("clearbit.combined")


@pytest.fixture
def webhooks():
    sink = WebhookSink().start()
    yield sink
    sink.stop()


def test_person_company_and_combined_hits(sb, make_ctx):
    ctx = make_ctx("clearbit")
    person = clearbit.call(PERSON, {"email": "always.alan@bletchley.org"}, ctx)
    company = clearbit.call(COMPANY, {"domain": "always-bletchley.org"}, ctx)
    combined = clearbit.call(COMBINED, {"email": "always.alan@always-bletchley.org"}, ctx)

    assert person.outcome == "hit" and person.values["name"] == "Always Alan"
    assert person.values["company"] == "Bletchley" and person.values["linkedin"].startswith("https://www.linkedin.com/")
    assert company.outcome == "hit" and company.values["name"] == "Always Bletchley"
    assert isinstance(company.values["employees"], int)
    assert combined.outcome == "hit"
    assert combined.values["company_domain"] == "always-bletchley.org" and combined.values["industry"]
    assert [(e["operation"], e["path"]) for e in sb.log("clearbit")] == [
        ("person", "/v2/people/find"),
        ("company", "/v2/companies/find"),
        ("combined", "/v2/combined/find"),
    ]


def test_unknown_records_are_not_found(sb, make_ctx):
    ctx = make_ctx("clearbit")
    assert clearbit.call(PERSON, {"email": "nobody@acme.com"}, ctx).outcome == "not_found"
    missing = clearbit.call(COMPANY, {"domain": "nodata-acme.com"}, ctx)
    assert (missing.outcome, missing.http_status) == ("not_found", 404)


def test_invalid_input_and_bad_key(sb, make_ctx):
    invalid = clearbit.call(COMPANY, {"domain": "localhost"}, make_ctx("clearbit"))
    assert (invalid.outcome, invalid.http_status) == ("invalid_input", 422)
    key = "cb-live-secret-4321"
    refused = clearbit.call(PERSON, {"email": "ada@acme.com"}, make_ctx("clearbit", key=key))
    assert (refused.outcome, refused.http_status) == ("auth_error", 401) and key not in refused.message


def test_retryable_failures(sb, make_ctx):
    sb.configure("clearbit", error_rate=1.0, fail_status=502)
    assert clearbit.call(COMPANY, {"domain": "acme.com"}, make_ctx("clearbit")).outcome == "retryable"
    sb.configure("clearbit", error_rate=0.0, latency_ms=800)
    assert clearbit.call(COMPANY, {"domain": "acme.com"}, make_ctx("clearbit", timeout=0.2)).outcome == "retryable"
    sb.configure("clearbit", latency_ms=0, rate=0.5, burst=1)
    clearbit.call(COMPANY, {"domain": "acme.com"}, make_ctx("clearbit"))
    limited = clearbit.call(COMPANY, {"domain": "acme.com"}, make_ctx("clearbit"))
    assert (limited.outcome, limited.http_status) == ("rate_limited", 429) and limited.retry_after >= 1


def test_async_lookup_is_pending_then_a_signed_webhook_arrives(sb, make_ctx, webhooks):
    sb.configure("clearbit", **{"async": True, "latency_ms": 100})
    ctx = make_ctx("clearbit", callback_url=webhooks.url("/hooks/clearbit"))
    result = clearbit.call(PERSON, {"email": "always.grace@navy.mil"}, ctx)

    assert result.outcome == "pending" and result.http_status == 202 and not result.final
    assert result.callback_id and len(result.callback_id) >= 20
    (delivery,) = webhooks.wait_for(1)
    body = delivery["body"]
    expected = "sha1=" + hmac.new(TEST_KEY.encode(), body, hashlib.sha1).hexdigest()
    assert delivery["headers"]["X-Request-Signature"] == expected
    assert clearbit_module.verify_signature(TEST_KEY, body, delivery["headers"]["X-Request-Signature"])
    assert not clearbit_module.verify_signature("sandbox-other-key", body, expected)
    assert not clearbit_module.verify_signature(TEST_KEY, body + b" ", expected)

    payload = json.loads(body)
    assert payload["id"] == result.callback_id and payload["type"] == "person"
    callback_id, final = clearbit_module.result_from_webhook(payload)
    assert callback_id == result.callback_id
    sb.configure("clearbit", **{"async": False, "latency_ms": 0})
    direct = clearbit.call(PERSON, {"email": "always.grace@navy.mil"}, make_ctx("clearbit"))
    assert final.outcome == "hit" and final.values == direct.values

    statuses = [(e["operation"], e["status"]) for e in sb.log("clearbit")]
    assert ("person", 202) in statuses and ("webhook:person", 200) in statuses


def test_async_not_found_arrives_as_a_404_webhook(sb, make_ctx, webhooks):
    sb.configure("clearbit", **{"async": True})
    result = clearbit.call(
        COMBINED, {"email": "nobody@nodata-acme.com"}, make_ctx("clearbit", callback_url=webhooks.url())
    )
    assert result.outcome == "pending"
    payload = json.loads(webhooks.wait_for(1)[0]["body"])
    assert (payload["type"], payload["status"]) == ("person_company", 404)
    assert clearbit_module.result_from_webhook(payload)[1].outcome == "not_found"


def test_queued_without_a_webhook_is_retried_later(sb, make_ctx):
    sb.configure("clearbit", **{"async": True})
    result = clearbit.call(PERSON, {"email": "ada@acme.com"}, make_ctx("clearbit"))
    assert (result.outcome, result.http_status) == ("retryable", 202) and result.retry_after > 0


def test_real_hosts_are_used_when_no_base_url_is_configured(http):
    ctx = CallContext(client=http, api_key="k", base_url=registry.base_url(clearbit, {"CLEARBIT_URL": ""}))
    assert clearbit.url(PERSON, ctx) == "https://person.clearbit.com/v2/people/find"
    assert clearbit.url(COMPANY, ctx) == "https://company.clearbit.com/v2/companies/find"
    sandboxed = CallContext(client=http, api_key="k", base_url="http://127.0.0.1:9/clearbit")
    assert clearbit.url(COMBINED, sandboxed) == "http://127.0.0.1:9/clearbit/v2/combined/find"
