"""The JSON API of search under /api/v1."""
