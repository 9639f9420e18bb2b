"""Local stand-ins for the external providers (Hunter, Apollo, Clearbit, the HubSpot and
Salesforce CRMs, language models behind the OpenAI and Anthropic APIs, Stripe, a web search API) with
synthetic data.

``python -m morket.providers.sandboxes --port 8900`` serves them all on one port; the tests and
``make run``'s sandbox mode point MORKET_<PROVIDER>_URL at ``http://HOST:PORT/<provider>``.
"""

from __future__ import annotations

from werkzeug.serving import BaseWSGIServer, make_server

from morket.providers.sandboxes import llm_research  # noqa: F401 - adds the research agent's rule
from morket.providers.sandboxes.apollo import ApolloSandbox
from morket.providers.sandboxes.clearbit import ClearbitSandbox
from morket.providers.sandboxes.hubspot import HubSpotSandbox
from morket.providers.sandboxes.hunter import HunterSandbox
from morket.providers.sandboxes.llm import AnthropicSandbox, OpenAISandbox
from morket.providers.sandboxes.salesforce import SalesforceSandbox
from morket.providers.sandboxes.server import KeepAliveHandler, QuietHandler, SandboxApp
from morket.providers.sandboxes.stripe import StripeSandbox
from morket.providers.sandboxes.websearch import WebSearchSandbox

__all__ = ["SandboxApp", "build_app", "serve"]


def build_app() -> SandboxApp:
    """The sandbox with every provider it imitates."""
    return SandboxApp(
        [
            HunterSandbox(),
            ApolloSandbox(),
            ClearbitSandbox(),
            HubSpotSandbox(),
            SalesforceSandbox(),
            OpenAISandbox(),
            AnthropicSandbox(),
            StripeSandbox(),
            WebSearchSandbox(),
        ]
    )


def serve(host: str = "127.0.0.1", port: int = 8900, *, quiet: bool = True) -> BaseWSGIServer:
    """A threaded werkzeug server for the sandbox (call ``serve_forever`` or run it in a thread)."""
    handler = QuietHandler if quiet else KeepAliveHandler
    server = make_server(host, port, build_app(), threaded=True, request_handler=handler)
    server.daemon_threads = True
    return server
