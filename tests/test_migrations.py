"""Migrations: one head, a clean upgrade/downgrade cycle, and models that match the schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from tests.conftest import ROOT, _recreate_database


def _script() -> ScriptDirectory:
    cfg = Config(str(ROOT / "migrations" / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    return ScriptDirectory.from_config(cfg)


def test_single_migration_head():
    heads = _script().get_heads()
    assert len(heads) == 1, f"several migration heads: {heads}; merge or re-chain them"


def test_revisions_are_named_and_dated():
    for rev in _script().walk_revisions():
        assert rev.doc and rev.doc.strip(), f"revision {rev.revision} has no message"
        assert rev.revision[:8].isdigit(), f"revision id {rev.revision} does not start with its date"


def test_models_match_migrated_schema(app, db):
    """Autogenerate against the migrated test database finds nothing to add or drop."""
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn)
        diff = compare_metadata(ctx, db.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def test_downgrade_to_base_and_back(app, database_url):
    """Every migration can be undone and replayed on an empty database."""
    from flask_migrate import downgrade, upgrade

    scratch = make_url(database_url).set(database=make_url(database_url).database + "_mig")
    _recreate_database(scratch.set(database="postgres").render_as_string(hide_password=False), scratch.database)
    url = scratch.render_as_string(hide_password=False)
    from morket.extensions import db as _db

    engine = create_engine(url)
    with app.app_context():
        original = _db.engines[None]
        _db.engines[None] = engine  # point Flask-SQLAlchemy (and so Alembic) at the scratch DB
        try:
            directory = str(ROOT / "migrations")
            upgrade(directory=directory)
            downgrade(directory=directory, revision="base")
            upgrade(directory=directory)
        finally:
            _db.engines[None] = original
            engine.dispose()
