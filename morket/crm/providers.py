"""The CRMs Morket connects to: their OAuth endpoints, scopes and objects, read from config.

Production reaches the real hosts (the defaults in ``morket.config``); development, tests and the
demo point ``MORKET_HUBSPOT_*_URL`` and ``MORKET_SALESFORCE_LOGIN_URL`` at the sandboxes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

HUBSPOT, SALESFORCE = "hubspot", "salesforce"
SALESFORCE_API_VERSION = "62.0"
# Salesforce hands back the org's instance URL; tokens go only to hosts under these domains.
SALESFORCE_HOST_SUFFIXES = (".salesforce.com", ".force.com", ".salesforce.mil", ".sfcrmproducts.cn")


@dataclass(frozen=True)
class CrmObject:
    """One object Morket reads and writes: its API name, label and the path of its fields."""

    name: str
    label: str


@dataclass(frozen=True)
class CrmSpec:
    """What differs between the CRMs: names, scopes, objects and where each endpoint lives."""

    name: str
    label: str
    scopes: tuple[str, ...]
    objects: tuple[CrmObject, ...]
    gives: str  # what connecting gives, for the empty state

    def setting(self, settings: Mapping[str, Any], key: str) -> str:
        return str(settings.get(f"{self.name.upper()}_{key}") or "").rstrip("/")

    def configured(self, settings: Mapping[str, Any]) -> bool:
        """Whether this server has an OAuth app for the CRM (a client id and secret)."""
        return bool(self.setting(settings, "CLIENT_ID") and self.setting(settings, "CLIENT_SECRET"))

    def authorize_url(self, settings: Mapping[str, Any]) -> str:
        if self.name == HUBSPOT:
            return self.setting(settings, "AUTH_URL") + "/oauth/authorize"
        return self.setting(settings, "LOGIN_URL") + "/services/oauth2/authorize"

    def token_url(self, settings: Mapping[str, Any]) -> str:
        if self.name == HUBSPOT:
            return self.setting(settings, "API_URL") + "/oauth/v1/token"
        return self.setting(settings, "LOGIN_URL") + "/services/oauth2/token"

    def is_sandbox(self, settings: Mapping[str, Any]) -> bool:
        """Whether the CRM's URLs point at a local sandbox rather than the real service."""
        key = "API_URL" if self.name == HUBSPOT else "LOGIN_URL"
        host = urlsplit(self.setting(settings, key)).hostname or ""
        return host in ("127.0.0.1", "localhost", "::1")


SPECS: dict[str, CrmSpec] = {
    HUBSPOT: CrmSpec(
        name=HUBSPOT,
        label="HubSpot",
        scopes=(
            "oauth",
            "crm.objects.contacts.read",
            "crm.objects.contacts.write",
            "crm.objects.companies.read",
            "crm.objects.companies.write",
            "crm.schemas.contacts.read",
            "crm.schemas.companies.read",
        ),
        objects=(CrmObject("contacts", "Contacts"), CrmObject("companies", "Companies")),
        gives="Send enriched rows to HubSpot contacts and companies by email or a unique property, "
        "with no duplicates, and pull lists back into a table.",
    ),
    SALESFORCE: CrmSpec(
        name=SALESFORCE,
        label="Salesforce",
        scopes=("api", "refresh_token"),
        objects=(CrmObject("Contact", "Contacts"), CrmObject("Lead", "Leads"), CrmObject("Account", "Accounts")),
        gives="Upsert contacts, leads and accounts by an external-id field, and import the results of a "
        "query into a table.",
    ),
}


def get_spec(name: str) -> CrmSpec | None:
    """The CRM called ``name``, or None."""
    return SPECS.get(name)


def instance_url_allowed(url: str, settings: Mapping[str, Any]) -> bool:
    """Whether Salesforce's ``instance_url`` may receive our tokens.

    https on a Salesforce domain; or, where the login URL itself is a local sandbox, the same
    origin as that sandbox (the sandbox is its own instance).
    """
    parts = urlsplit(url)
    spec = SPECS[SALESFORCE]
    if spec.is_sandbox(settings):
        login = urlsplit(spec.setting(settings, "LOGIN_URL"))
        return (parts.scheme, parts.netloc) == (login.scheme, login.netloc)
    host = (parts.hostname or "").lower()
    return parts.scheme == "https" and host.endswith(SALESFORCE_HOST_SUFFIXES) and not parts.username
