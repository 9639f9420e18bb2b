"""Apollo adapter against the Apollo sandbox."""

from __future__ import annotations

from morket.providers import registry

apollo = registry.get_provider("apollo")
MATCH = registry.get_operation("apollo.people_match")
ORG = registry.get_operation("apollo.organization_enrich")


def test_people_match_by_name_and_domain(sb, make_ctx):
    result = apollo.call(
        MATCH, {"first_name": "Grace", "last_name": "Hopper", "domain": "always-navy.mil"}, make_ctx("apollo")
    )
    assert result.outcome == "hit"
    assert result.values["email"] == "grace.hopper@always-navy.mil"
    assert result.values["organization_name"] == "Always Navy"
    assert result.values["title"] and result.values["seniority"] and result.values["country"]
    assert set(result.values) == set(MATCH.output_names)
    assert [(e["operation"], e["path"], e["status"]) for e in sb.log("apollo")] == [
        ("people_match", "/api/v1/people/match", 200)
    ]


def test_people_match_by_email_alone(sb, make_ctx):
    result = apollo.call(MATCH, {"email": "Always.Ada@Globex.io"}, make_ctx("apollo"))
    assert result.outcome == "hit" and result.values["email"] == "always.ada@globex.io"


def test_nobody_matching_is_not_found(sb, make_ctx):
    result = apollo.call(MATCH, {"email": "nobody@acme.com"}, make_ctx("apollo"))
    assert result.outcome == "not_found" and not result.billable


def test_organization_enrich_hit_and_unknown_domain(sb, make_ctx):
    ctx = make_ctx("apollo")
    found = apollo.call(ORG, {"domain": "http://always-initech.com/"}, ctx)
    unknown = apollo.call(ORG, {"domain": "nodata-initech.com"}, ctx)
    assert found.outcome == "hit"
    assert found.values["name"] == "Always Initech"
    assert isinstance(found.values["employees"], int) and isinstance(found.values["founded_year"], int)
    assert found.values["website_url"] == "https://www.always-initech.com"
    assert unknown.outcome == "not_found"


def test_too_little_to_match_on_is_refused_before_calling(sb, make_ctx):
    result = apollo.call(MATCH, {"first_name": "Ada"}, make_ctx("apollo"))
    assert result.outcome == "invalid_input" and "email" in result.message
    assert sb.log("apollo") == []


def test_invalid_input_from_apollo_is_final(sb, make_ctx):
    result = apollo.call(MATCH, {"email": "ada@localhost"}, make_ctx("apollo"))
    assert (result.outcome, result.http_status) == ("invalid_input", 422)
    assert "email" in result.message


def test_bad_key_is_an_auth_error_and_never_echoed(sb, make_ctx):
    key = "apollo-live-key-5678"
    result = apollo.call(ORG, {"domain": "acme.com"}, make_ctx("apollo", key=key))
    assert (result.outcome, result.http_status) == ("auth_error", 401)
    assert key not in result.message
    assert sb.log("apollo")[0]["key_hint"] == "…5678"


def test_server_errors_and_timeouts_are_retryable(sb, make_ctx):
    sb.configure("apollo", error_rate=1.0, fail_status=500)
    failed = apollo.call(ORG, {"domain": "acme.com"}, make_ctx("apollo"))
    assert (failed.outcome, failed.http_status) == ("retryable", 500)
    sb.configure("apollo", error_rate=0.0, latency_ms=800)
    slow = apollo.call(ORG, {"domain": "acme.com"}, make_ctx("apollo", timeout=0.2))
    assert slow.outcome == "retryable"


def test_rate_limited_with_retry_after(sb, make_ctx):
    sb.configure("apollo", rate=0.4, burst=1)
    ctx = make_ctx("apollo")
    apollo.call(ORG, {"domain": "acme.com"}, ctx)
    limited = apollo.call(ORG, {"domain": "acme.com"}, ctx)
    assert (limited.outcome, limited.http_status) == ("rate_limited", 429)
    assert 1 <= limited.retry_after <= 3


def test_quota_exhausted_waits_long(sb, make_ctx):
    sb.configure("apollo", quota=1)
    ctx = make_ctx("apollo")
    apollo.call(ORG, {"domain": "acme.com"}, ctx)
    limited = apollo.call(ORG, {"domain": "acme.com"}, ctx)
    assert limited.outcome == "rate_limited" and limited.retry_after >= 3600


def test_a_key_without_access_to_the_endpoint_is_an_auth_error(sb, make_ctx):
    sb.configure("apollo", error_rate=1.0, fail_status=403)
    result = apollo.call(MATCH, {"email": "ada@acme.com"}, make_ctx("apollo"))
    assert (result.outcome, result.http_status) == ("auth_error", 403)
