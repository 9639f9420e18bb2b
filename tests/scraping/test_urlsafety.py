"""The SSRF check: schemes, every kind of internal address (IPv4 and IPv6), and the host+port allowlist."""

from __future__ import annotations

import pytest

from morket.core.urlsafety import UnsafeUrl, check_url
from morket.scraping.netguard import HostRules, RequestGuard


def resolving_to(*addresses: str):
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://127.1.2.3:8080/x", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://10.0.0.5/", "private"),
        ("http://172.16.3.4/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://100.100.100.200/", "internal"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fd00:ec2::254]/", "cloud metadata"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "metadata"),
        ("http://[2002:7f00:1::]/", "loopback"),
        ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),
        ("http://224.0.0.1/", "multicast"),
    ],
)
def test_internal_addresses_are_refused(url, reason):
    with pytest.raises(UnsafeUrl) as exc:
        check_url(url)
    assert reason in exc.value.message
    assert exc.value.status == 422


def test_names_are_judged_by_every_address_they_resolve_to():
    assert [str(a) for a in check_url("https://acme.com/", resolver=resolving_to("93.184.215.14"))] == ["93.184.215.14"]
    with pytest.raises(UnsafeUrl, match="private"):
        check_url("https://acme.com/", resolver=resolving_to("93.184.215.14", "10.1.2.3"))
    with pytest.raises(UnsafeUrl, match="loopback"):
        check_url("https://acme.com/", resolver=resolving_to("2606:2800:220:1::", "::1"))


def test_numeric_host_spellings_resolve_to_what_they_are():
    # 2130706433 and 0x7f.1 are 127.0.0.1 to the system resolver.
    for url in ("http://2130706433/", "http://0x7f.1/", "http://localhost/"):
        with pytest.raises(UnsafeUrl, match="loopback"):
            check_url(url)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://acme.com/", "gopher://x/", "javascript:alert(1)", "http://", "http:///x"]
)
def test_only_http_urls_with_a_host(url):
    with pytest.raises(UnsafeUrl):
        check_url(url)


def test_allowlist_names_host_and_port():
    allow = ["127.0.0.1:8123", "*.test:9000"]
    assert check_url("http://127.0.0.1:8123/", allowlist=allow) is not None
    with pytest.raises(UnsafeUrl, match="loopback"):
        check_url("http://127.0.0.1:8124/", allowlist=allow)
    rules = HostRules("MAP *.test 127.0.0.1")
    assert check_url("http://acme.test:9000/", allowlist=allow, resolver=rules.resolve)
    with pytest.raises(UnsafeUrl, match="loopback"):
        check_url("http://acme.test:9001/", allowlist=allow, resolver=rules.resolve)
    # A host without a port names nothing.
    with pytest.raises(UnsafeUrl):
        check_url("http://127.0.0.1:80/", allowlist=["127.0.0.1"])


def test_unresolvable_names_are_refused():
    with pytest.raises(UnsafeUrl, match="could not be resolved"):
        check_url("http://no-such-host.invalid/")


def test_request_guard_lets_local_schemes_through_and_caches_decisions():
    calls = []

    class Rules(HostRules):
        def resolve(self, host, port):
            calls.append(host)
            return ["10.0.0.1"]

    guard = RequestGuard(frozenset(), Rules(""))
    assert guard.refusal("data:text/plain,hi") is None
    assert "private" in guard.refusal("https://acme.com/a")
    assert "private" in guard.refusal("https://acme.com/b")
    assert calls == ["acme.com"]
