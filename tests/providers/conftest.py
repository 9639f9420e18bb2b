"""Provider adapters called through their real HTTP code against the local sandboxes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from morket.providers.base import CallContext
from tests.support.sandbox import SandboxServer

TEST_KEY = "sandbox-test-key-1a2b"


@pytest.fixture
def sb(sandbox_server: SandboxServer) -> Iterator[SandboxServer]:
    """The session's sandbox, reset before and after the test so settings never leak."""
    sandbox_server.reset()
    yield sandbox_server
    sandbox_server.reset()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.fixture
def make_ctx(sb: SandboxServer, http: httpx.Client) -> Callable[..., CallContext]:
    """``make_ctx("hunter", key=..., timeout=..., callback_url=...)``: a call context on the sandbox."""

    def _make(
        provider: str, key: str | None = TEST_KEY, timeout: float = 5.0, callback_url: str | None = None
    ) -> CallContext:
        return CallContext(
            client=http, api_key=key, base_url=sb.url(provider), timeout=timeout, callback_url=callback_url
        )

    return _make
