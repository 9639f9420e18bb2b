"""Pages of ai."""

from morket.ai import bp  # noqa: F401 - the routes below attach to it
