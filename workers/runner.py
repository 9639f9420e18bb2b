"""The one function RQ runs: give a job an app context and a session committed on success."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, has_app_context

_app: Flask | None = None


def worker_app() -> Flask:
    """Return this process's app, created once on first use (never at import)."""
    global _app
    if _app is None:
        from morket import create_app

        _app = create_app()
    return _app


def run_job(func_path: str, args: list[Any]) -> Any:
    """Run ``func_path(*args)`` in an app context; commit when it returns, roll back if it raises."""
    from morket.core.jobs import relay_committed, resolve_func
    from morket.extensions import db

    app = current_app._get_current_object() if has_app_context() else worker_app()
    with app.app_context():
        func = resolve_func(func_path)
        try:
            result = func(*args)
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
        relay_committed()
        return result
