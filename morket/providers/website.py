"""Website: scrape a company's own site for its name, contacts and technologies.

The scraping work completes this adapter by running the scrape through its service; until it
does, every call is a final, clearly worded failure rather than a retry that can never succeed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from morket.providers.base import CallContext, FieldSpec, InputSpec, Operation, Provider, Result
from morket.providers.registry import register

NAME = "website"

SCRAPE = Operation(
    key="website.scrape",
    provider=NAME,
    label="Website: scrape the company's site",
    inputs=(InputSpec("domain", "Company domain or URL", kind="domain"),),
    outputs=(
        FieldSpec("name", "Company name"),
        FieldSpec("description", "Description"),
        FieldSpec("emails", "Emails", "json"),
        FieldSpec("phones", "Phones", "json"),
        FieldSpec("socials", "Social profiles", "json"),
        FieldSpec("address", "Address"),
        FieldSpec("technologies", "Technologies", "json"),
    ),
)


class WebsiteProvider(Provider):
    """Reads the company's public pages; needs no API key."""

    def call(
        self, op: Operation, inputs: Mapping[str, Any], ctx: CallContext, options: Mapping[str, Any] | None = None
    ) -> Result:
        """Not available yet: a final failure the user can read."""
        return Result("invalid_input", message="website scraping is not available yet")


PROVIDER = register(
    WebsiteProvider(
        name=NAME,
        label="Website",
        operations=(SCRAPE,),
        default_base_url="",
        default_rate=5.0,
        requires_key=False,
    )
)
