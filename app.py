"""WSGI and ``flask`` CLI entry point."""

from morket import create_app

app = create_app()
