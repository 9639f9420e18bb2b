"""Views (being built)."""
