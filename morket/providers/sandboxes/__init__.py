"""Local stand-ins for the external providers (Hunter, Apollo, Clearbit) with synthetic data.

``python -m morket.providers.sandboxes --port 8900`` serves them all on one port; the tests and
``make run``'s sandbox mode point MORKET_<PROVIDER>_URL at ``http://HOST:PORT/<provider>``.
"""

from morket.providers.sandboxes.server import SandboxApp, build_app, serve

__all__ = ["SandboxApp", "build_app", "serve"]
