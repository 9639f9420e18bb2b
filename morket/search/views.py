"""Pages of search."""

from morket.search import bp  # noqa: F401 - the routes below attach to it
