"""The JSON API of ai under /api/v1."""
