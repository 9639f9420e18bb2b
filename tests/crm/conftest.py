"""CRM fixtures: the app pointed at the HubSpot and Salesforce sandboxes, and the OAuth dance."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

CLIENTS = {
    "HUBSPOT_CLIENT_ID": "sandbox-morket-hubspot",
    "HUBSPOT_CLIENT_SECRET": "sandbox-hubspot-secret-0001",
    "SALESFORCE_CLIENT_ID": "sandbox-morket-salesforce",
    "SALESFORCE_CLIENT_SECRET": "sandbox-salesforce-secret-0001",
}


@dataclass
class CrmSandbox:
    """Control of the CRM sandboxes: their records, grants and settings, as a test reads them."""

    base: str
    http: httpx.Client

    def url(self, crm: str) -> str:
        return f"{self.base}/{crm}"

    def state(self, crm: str) -> dict[str, Any]:
        return self.http.get(f"{self.base}/_sandbox/{crm}/state").raise_for_status().json()

    def configure(self, crm: str, **values: Any) -> dict[str, Any]:
        return self.http.post(f"{self.base}/_sandbox/{crm}/config", json=values).raise_for_status().json()

    def expire(self, crm: str) -> int:
        return self.http.post(f"{self.base}/_sandbox/{crm}/expire").raise_for_status().json()["expired"]

    def reset(self, crm: str) -> None:
        self.http.post(f"{self.base}/_sandbox/{crm}/reset").raise_for_status()

    def consent(self, authorize_url: str, decision: str = "allow") -> str:
        """Open the consent page like a browser, press Allow or Deny; return where it redirects."""
        page = self.http.get(authorize_url)
        assert page.status_code == 200 and "Allow" in page.text, page.text[:300]
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.text))
        fields = {k: v.replace("&amp;", "&") for k, v in fields.items()}
        answer = self.http.post(authorize_url.split("?")[0], data={**fields, "decision": decision})
        assert answer.status_code == 302, answer.text
        return answer.headers["Location"]


@pytest.fixture
def crm(app, sandbox_server):
    """The app's CRM settings pointed at fresh HubSpot and Salesforce sandboxes (restored afterwards)."""
    settings = app.config["MORKET"]
    base = sandbox_server.base
    values = {
        **CLIENTS,
        "HUBSPOT_API_URL": f"{base}/hubspot",
        "HUBSPOT_AUTH_URL": f"{base}/hubspot",
        "SALESFORCE_LOGIN_URL": f"{base}/salesforce",
    }
    saved = {key: settings.get(key) for key in values}
    settings.update(values)
    http = httpx.Client(timeout=10)
    sandbox = CrmSandbox(base, http)
    sandbox.reset("hubspot")
    sandbox.reset("salesforce")
    yield sandbox
    settings.update(saved)
    http.close()


def connect(client, crm: CrmSandbox, slug: str, provider: str, decision: str = "allow"):
    """Press Connect on the Connections page, answer the CRM's consent page, follow the callback."""
    from tests.factories import csrf_token

    token = csrf_token(client, f"/w/{slug}/connections")
    resp = client.post(f"/w/{slug}/connections/{provider}/connect", headers={"X-CSRFToken": token})
    assert resp.status_code == 303, resp.get_data(as_text=True)[:500]
    authorize = resp.headers["Location"]
    back = crm.consent(authorize, decision)
    parts = urlsplit(back)
    return client.get(f"{parts.path}?{parts.query}"), parse_qs(urlsplit(authorize).query)
