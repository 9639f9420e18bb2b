"""The one domain normaliser: the tricky inputs, and both callers (providers, scraping limits) agreeing."""

from __future__ import annotations

import httpx
import pytest

from morket.core.domains import registrable_domain
from morket.providers import registry
from morket.providers.base import CallContext


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://www.ACME.co.uk/path", "acme.co.uk"),
        ("www.shop.acme.co.uk", "acme.co.uk"),
        ("acme.com.", "acme.com"),
        ("  Acme.COM  ", "acme.com"),
        ("user@acme.com", "acme.com"),
        ("mailto:Sales@Acme.com?subject=hi", "acme.com"),
        ("http://user:secret@www.acme.com/", "acme.com"),
        ("acme.com:8080", "acme.com"),
        ("https://acme.com:8443/a?b=1#c", "acme.com"),
        ("//acme.com/about", "acme.com"),
        ("https://blog.eu.acme.com/post", "acme.com"),
        ("https://jobs.acme.com.au/", "acme.com.au"),
        # The public suffix list's private section counts: a GitHub Pages site is its owner's.
        ("https://acme.github.io/docs", "acme.github.io"),
        ("co.uk", "co.uk"),
        # Internationalised names: either spelling is one domain, in its ASCII form.
        ("https://www.bücher.de/", "xn--bcher-kva.de"),
        ("WWW.BÜCHER.DE", "xn--bcher-kva.de"),
        ("http://www.xn--bcher-kva.de/", "xn--bcher-kva.de"),
        ("faß.de", "xn--fa-hia.de"),
        # IP addresses come back as themselves, without port or brackets.
        ("http://192.168.0.1:8080/x", "192.168.0.1"),
        ("203.0.113.7", "203.0.113.7"),
        ("[2001:DB8::1]:443", "2001:db8::1"),
        ("http://[2001:db8::1]/", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        # Suffixes the list does not know keep their last two labels; one label stays as it is.
        ("http://p3.limited.test:8080/", "limited.test"),
        ("localhost", "localhost"),
        # Not a domain at all.
        ("", None),
        ("   ", None),
        (None, None),
        (42, None),
        ("hello world", None),
        ("acme..com", None),
        ("-acme.com", None),
        # Placeholders typed in a cell are not a host with a path.
        ("n/a", None),
        ("N/A", None),
        ("yes/no", None),
        ("http://localhost/status", "localhost"),
    ],
)
def test_registrable_domain(value, expected):
    assert registrable_domain(value) == expected


@pytest.fixture
def hunter_ctx(sandbox_server):
    """A call context on the Hunter sandbox, whose own log records the domain each call asked about."""
    sandbox_server.reset()
    with httpx.Client() as client:
        yield CallContext(client=client, api_key="sandbox-key-1a2b", base_url=sandbox_server.url("hunter"), timeout=5.0)
    sandbox_server.reset()


def test_providers_send_the_registrable_domain(sandbox_server, hunter_ctx):
    hunter = registry.get_provider("hunter")
    search = registry.get_operation("hunter.domain_search")
    for typed in ("https://careers.Always-Acme.co.uk/jobs?x=1", "ada@always-acme.co.uk", "always-acme.co.uk."):
        result = hunter.call(search, {"domain": typed}, hunter_ctx)
        # The sandbox answers with addresses at the domain it was asked about.
        assert result.outcome == "hit"
        assert {e["value"].rsplit("@", 1)[1] for e in result.values["emails"]} == {"always-acme.co.uk"}, typed
    assert len(sandbox_server.log("hunter")) == 3


def test_a_value_that_is_no_domain_is_refused_before_any_call(sandbox_server, hunter_ctx):
    hunter = registry.get_provider("hunter")
    result = hunter.call(registry.get_operation("hunter.domain_search"), {"domain": "acme dot com"}, hunter_ctx)
    assert result.outcome == "invalid_input"
    assert sandbox_server.log("hunter") == []
