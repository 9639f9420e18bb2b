"""Shared helpers of the natural-language filter tests: a sample companies table and the sandbox LLM
as the platform default endpoint."""

from __future__ import annotations

import itertools
from typing import Any

from morket.tables import service as tables

_n = itertools.count(1)

COLUMNS = [
    {"name": "Company", "type": "text"},
    {"name": "Domain", "type": "domain"},
    {"name": "Country", "type": "text"},
    {"name": "City", "type": "text"},
    {"name": "Employees", "type": "number"},
    {"name": "Revenue", "type": "currency"},
    {"name": "Founded", "type": "date"},
    {"name": "Email", "type": "email"},
    {"name": "Industry", "type": "single_select", "config": {"options": ["Software", "Retail", "Finance"]}},
    {"name": "Tags", "type": "multi_select", "config": {"options": ["SaaS", "B2B", "AI"]}},
    {"name": "Customer", "type": "checkbox"},
    {"name": "Description", "type": "long_text"},
    {"name": "Job title", "type": "text"},
]

# Company, Country, City, Employees, Revenue, Founded, Email, Industry, Tags, Customer, Description, Job title
_ROWS = [
    ("Acme GmbH", "Germany", "Berlin", 120, 5_000_000, "2012-03-01", None, "Software", "SaaS, B2B", True,
     "Robots for warehouses", "CEO"),
    ("Bosch Labs", "Germany", "Munich", 30, 800_000, "2019-07-15", "info@boschlabs.de", "Finance", "B2B", False,
     "Payments", "CTO"),
    ("Globex", "United States", "Austin", 800, 90_000_000, "1999-01-10", "hello@globex.com", "Retail", "", True,
     "Stores", "VP Sales"),
    ("Initech", "France", "Paris", 55, 2_000_000, "2016-05-05", None, "Software", "AI", False,
     "Printers and robots", "Head of Growth"),
    ("Umbrella", "Germany", "Hamburg", 60, 12_000_000, "2008-11-11", "contact@umbrella.de", "Finance", "SaaS", False,
     "", "CFO"),
    ("Hooli", "United States", "Palo Alto", 5000, 400_000_000, "2004-02-02", None, "Software", "SaaS, AI", True,
     "Search", "CEO"),
    ("Tiny Co", "France", "Lyon", 5, 50_000, "2021-09-09", "tiny@tiny.fr", "Retail", "", False, "Shoes", "Founder"),
    ("Kraftwerk AG", "Germany", "Düsseldorf", 75, 3_000_000, "2014-06-06", None, "Software", "B2B", False,
     "Sound", "CEO"),
    ("Wayne", "United Kingdom", "London", 200, 70_000_000, "1990-04-04", None, "Finance", "", True, "", "Owner"),
]  # fmt: skip
NAMES = ("Company", "Country", "City", "Employees", "Revenue", "Founded", "Email", "Industry", "Tags", "Customer",
         "Description", "Job title")  # fmt: skip


def companies(workspace, owner):
    """A sample table of nine companies; domains derived from the names."""
    table = tables.create_table(workspace, owner, f"Companies {next(_n)}", columns=COLUMNS)
    rows: list[dict[str, Any]] = []
    for values in _ROWS:
        row = {name: value for name, value in zip(NAMES, values, strict=True) if value not in (None, "")}
        row["Domain"] = values[0].split()[0].lower() + ".com"
        rows.append(row)
    tables.insert_rows(workspace, owner, table, rows)
    return table


def sandbox_llm(app, sandbox_server, monkeypatch):
    """The platform default endpoint on the sandbox's OpenAI API; loopback endpoints allowed."""
    settings = app.config["MORKET"]
    monkeypatch.setitem(settings, "AI_KIND", "openai")
    monkeypatch.setitem(settings, "AI_BASE_URL", sandbox_server.url("openai") + "/v1")
    monkeypatch.setitem(settings, "AI_API_KEY", "sandbox-platform-key")
    monkeypatch.setitem(settings, "AI_MODEL", "sandbox-small")
    monkeypatch.setitem(settings, "AI_MODELS", [])
    monkeypatch.setitem(settings, "AI_ALLOW_LOOPBACK", True)
    sandbox_server.reset()
    yield sandbox_server
    sandbox_server.reset()


def matching(workspace, owner, table, view) -> set[str]:
    """The Company names the view shows."""
    rows = tables.read_window(workspace, owner, table, view, 0, 100)
    index = [c.name for c in table.live_columns].index("Company")
    return {r.cells[index] for r in rows}
