"""Pull pages: import from HubSpot or Salesforce into a table (choose, preview, start, progress)."""

from __future__ import annotations
