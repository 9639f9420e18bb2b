"""Pages of billing."""

from morket.billing import bp  # noqa: F401 - the routes below attach to it
