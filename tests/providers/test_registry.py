"""The registry finds every adapter module, and a new module is a new provider."""

from __future__ import annotations

import sys
import textwrap

import pytest

import morket.providers
from morket.providers import registry
from morket.providers.base import Provider


def test_every_contract_operation_is_registered():
    keys = {op.key for op in registry.all_operations()}
    assert {
        "apollo.people_match", "apollo.organization_enrich", "hunter.domain_search", "hunter.email_finder",
        "hunter.email_verifier", "clearbit.person", "clearbit.company", "clearbit.combined", "http.request",
        "website.scrape",
    } <= keys  # fmt: skip
    assert registry.provider_for("hunter.email_finder").name == "hunter"
    assert registry.get_operation("clearbit.person").asynchronous
    assert registry.get_operation("hunter.email_verifier").validates


def test_unknown_names_raise_a_clear_error():
    with pytest.raises(KeyError, match="unknown operation 'hunter.nope'"):
        registry.get_operation("hunter.nope")
    with pytest.raises(KeyError, match="unknown provider 'nope'"):
        registry.get_provider("nope")


def test_adding_a_module_adds_a_provider(tmp_path):
    (tmp_path / "acmedata.py").write_text(
        textwrap.dedent(
            """
            from morket.providers.base import FieldSpec, InputSpec, Operation, Provider, Result
            from morket.providers.registry import register

            class Acme(Provider):
                def call(self, op, inputs, ctx, options=None):
                    return Result("hit", values={"size": len(inputs["domain"])})

            LOOKUP = Operation("acmedata.lookup", "acmedata", "Acme lookup", (InputSpec("domain", "Domain"),),
                               (FieldSpec("size", "Size", "number"),))
            register(Acme("acmedata", "Acme data", (LOOKUP,), "https://acme.invalid"))
            """
        )
    )
    morket.providers.__path__.append(str(tmp_path))
    try:
        registry.rediscover()
        provider = registry.provider_for("acmedata.lookup")
        assert isinstance(provider, Provider) and provider.label == "Acme data"
        result = provider.call(registry.get_operation("acmedata.lookup"), {"domain": "abc.io"}, None)
        assert result.values == {"size": 6}
        assert registry.get_provider("hunter")  # the others are still there
    finally:
        morket.providers.__path__.remove(str(tmp_path))
        sys.modules.pop("morket.providers.acmedata", None)
        registry.rediscover()
    with pytest.raises(KeyError):
        registry.get_provider("acmedata")


def test_base_url_and_rates_follow_the_settings():
    hunter = registry.get_provider("hunter")
    assert registry.base_url(hunter, {"HUNTER_URL": ""}) == "https://api.hunter.io"
    assert registry.base_url(hunter, {"HUNTER_URL": "http://127.0.0.1:9/hunter/"}) == "http://127.0.0.1:9/hunter"
    assert registry.platform_key(hunter, {"HUNTER_API_KEY": ""}) is None
    rates = registry.default_rates({"PROVIDER_RATES": ["hunter=15", "apollo=50", "bogus"]})
    assert rates["hunter"] == 15 and rates["apollo"] == 50


def test_the_sandbox_fixture_points_the_app_at_the_sandbox(app, sandbox):
    with app.app_context():
        hunter = registry.get_provider("hunter")
        assert registry.base_url(hunter) == sandbox.url("hunter")
        assert registry.platform_key(hunter) == "sandbox-hunter-key"


def test_a_second_provider_under_one_name_is_refused():
    hunter = registry.get_provider("hunter")
    clone = type(hunter)(hunter.name, "Another Hunter", hunter.operations, hunter.default_base_url)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(clone)
    assert registry.get_provider("hunter") is hunter
