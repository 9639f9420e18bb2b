"""API auth."""
