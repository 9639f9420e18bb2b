"""The JSON API of billing under /api/v1."""
