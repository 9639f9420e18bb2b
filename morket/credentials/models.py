"""models of credentials (filled in with the capability)."""
