"""Extractors and normalisers on snapshots (no browser), the registry, fingerprints and the proxy rotation."""

from __future__ import annotations

import socket

import pytest

from morket.core.domains import registrable_domain
from morket.core.errors import ValidationFailed
from morket.scraping.extractors import all_extractors, get_extractor
from morket.scraping.extractors.normalise import (
    clean_text,
    normalise_email,
    normalise_phone,
    normalise_url,
    social_profile,
)
from morket.scraping.politeness import ProxyPicker, pick_fingerprint


def test_registry_finds_every_module():
    assert [e.name for e in all_extractors()] == ["company", "generic", "team"]
    with pytest.raises(ValidationFailed, match="choose one of company, generic, team"):
        get_extractor("nope")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("mailto:Sales@Acme.COM?subject=hi", "sales@acme.com"),
        ("logo@2x.png", None),
        ("you@example.com", None),
        ("not an email", None),
    ],
)
def test_emails(raw, expected):
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("tel:+1 (415) 555-0100", "US", "+14155550100"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("12", "US", None),
        ("+1 000", "US", None),
    ],
)
def test_phones(raw, region, expected):
    assert normalise_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://www.linkedin.com/company/acme/?trk=x", ("linkedin", "acme", "https://www.linkedin.com/company/acme")),
        ("https://twitter.com/AcmeHQ", ("twitter", "AcmeHQ", "https://x.com/AcmeHQ")),
        ("https://x.com/intent/tweet?text=hi", None),
        ("https://github.com/acme-inc", ("github", "acme-inc", "https://github.com/acme-inc")),
        ("https://www.youtube.com/@acme", ("youtube", "@acme", "https://www.youtube.com/@acme")),
        ("https://acme.com/about", None),
    ],
)
def test_social_profiles(url, expected):
    assert social_profile(url) == expected


def test_urls_and_text():
    assert normalise_url("HTTPS://Acme.COM:8443/a?b=1#frag") == "https://acme.com:8443/a?b=1"
    assert normalise_url("javascript:alert(1)") is None
    assert normalise_url("acme.com") == "https://acme.com/"
    assert clean_text("<img src=x onerror=alert(1)>Hi <b>there</b>") == "Hi there"


def test_company_from_a_snapshot():
    snapshot = {
        "url": "https://www.acme.co.uk/",
        "title": "Home - Acme Ltd",
        "lang": "en-GB",
        "metas": [["description", "We make <b>anvils</b>."]],
        "links": [
            {"href": "mailto:hello@acme.co.uk", "text": "mail"},
            {"href": "https://www.acme.co.uk/jobs/", "text": "Join us"},
            {"href": "https://facebook.com/sharer.php?u=x", "text": "share"},
        ],
        "tel": ["020 7946 0958"],
        "jsonld": [
            {"@graph": [{"@type": ["Organization"], "name": "Acme Ltd", "sameAs": "https://instagram.com/acme"}]}
        ],
        "scripts": ["https://cdn.shopify.com/s/x.js"],
        "globals": {"jQuery": True},
        "markers": {},
    }
    data = get_extractor("company").extract(snapshot)
    assert data["name"] == "Acme Ltd"
    assert data["description"] == "We make anvils."
    assert data["emails"] == ["hello@acme.co.uk"]
    assert data["phones"] == ["+442079460958"]
    assert data["socials"] == {"instagram": "https://www.instagram.com/acme"}
    assert data["careers_url"] == "https://www.acme.co.uk/jobs/"
    assert data["technologies"] == ["Shopify", "jQuery"]


def test_domains_and_fingerprints():
    assert registrable_domain("https://www.shop.acme.co.uk/x") == "acme.co.uk"
    assert registrable_domain("http://p3.limited.test:8080/") == "limited.test"
    prints = {pick_fingerprint() for _ in range(50)}
    assert len(prints) > 5
    for fp in prints:
        assert (fp.locale.startswith("en-US")) == fp.timezone.startswith("America/")


def test_proxy_rotation_skips_dead_proxies(app):
    redis = app.extensions["morket_redis"]
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        alive = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
        picker = ProxyPicker(redis, (alive, dead))
        assert {picker.pick() for _ in range(4)} == {alive, dead}
        assert picker.health_check(timeout=1.0) == {alive: True, dead: False}
        assert {picker.pick() for _ in range(4)} == {alive}
    assert ProxyPicker(redis, ()).pick() is None
