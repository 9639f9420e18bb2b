"""A thin httpx adapter for the CRMs' REST APIs, in the style of ``morket/providers/_http.py``.

``CrmClient.request`` sends with the connection's access token: refreshed before it expires,
and once more after a 401 (Salesforce: ``INVALID_SESSION_ID``), then the call is retried once.
What the push and pull build on: ``request`` answers the CRM's own response, ``error_message``
reads the CRM's reason out of either error shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import httpx

from morket.core.errors import MorketError
from morket.crm import tokens
from morket.crm.providers import HUBSPOT, SALESFORCE_API_VERSION, get_spec

TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class CrmUnavailable(MorketError):
    """The CRM could not be reached or answered with an error Morket cannot act on."""

    status = 502
    code = "crm_unavailable"


def json_body(response: httpx.Response) -> Any:
    """The response's JSON, or None when it has none."""
    try:
        return response.json()
    except ValueError:
        return None


def error_message(response: httpx.Response) -> str:
    """The CRM's own reason for a failed call: HubSpot's ``message`` or Salesforce's first error."""
    body = json_body(response)
    if isinstance(body, list) and body and isinstance(body[0], dict):
        first = body[0]
        return f"{first.get('errorCode', '')}: {first.get('message', '')}".strip(": ")
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error_description") or body.get("error") or "")
    return f"HTTP {response.status_code}"


def session_expired(response: httpx.Response) -> bool:
    """Whether the CRM refused the access token (a 401; Salesforce says INVALID_SESSION_ID)."""
    return response.status_code == 401


class CrmClient:
    """Calls one connection's CRM; one ``httpx.Client`` (kept alive) per CrmClient."""

    def __init__(
        self,
        connection_id: int,
        settings: Mapping[str, Any],
        http: httpx.Client | None = None,
    ) -> None:
        self.connection_id = connection_id
        self.settings = settings
        self.http = http or httpx.Client(timeout=TIMEOUT)
        self._owns_http = http is None

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _url(self, token: tokens.LiveToken, path: str) -> str:
        if token.provider == HUBSPOT:
            spec = get_spec(HUBSPOT)
            return f"{spec.setting(self.settings, 'API_URL')}{path}"
        if path.startswith("/services/"):
            return f"{token.instance_url}{path}"
        return f"{token.instance_url}/services/data/v{SALESFORCE_API_VERSION}{path}"

    def _send(self, token: tokens.LiveToken, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {
            **kwargs.pop("headers", {}),
            "Authorization": f"Bearer {token.access_token}",
        }
        try:
            return self.http.request(method, self._url(token, path), headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise CrmUnavailable(f"Could not reach the CRM ({type(exc).__name__}); try again.") from None

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one call; refresh and retry once when the CRM says the session expired."""
        token = tokens.token_for_use(self.connection_id, self.settings)
        response = self._send(token, method, path, **dict(kwargs))
        if session_expired(response):
            token = tokens.refresh_access(self.connection_id, token.version, self.settings)
            response = self._send(token, method, path, **dict(kwargs))
        return response
