"""models of enrichment (filled in with the capability)."""
