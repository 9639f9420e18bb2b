"""Setting up enrichment columns: the setup is checked against the provider registry and the table."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from morket.core.errors import NotFound, ValidationFailed
from morket.enrichment import columns
from morket.enrichment.schemas import ColumnSetup
from morket.tables import service as tables
from morket.tables import storage
from tests.factories import workspace_with_owner

PEOPLE = (
    {"name": "First name", "type": "text"},
    {"name": "Last name", "type": "text"},
    {"name": "Domain", "type": "domain"},
    {"name": "Title", "type": "text"},
)


@pytest.fixture
def people(db):
    """A workspace, its owner and a small people table."""
    workspace, owner = workspace_with_owner()
    table = tables.create_table(workspace, owner, "People", columns=PEOPLE)
    tables.insert_rows(workspace, owner, table, [{"First name": "Ada", "Last name": "Lovelace", "Domain": "a.io"}])
    ids = {c.name: c.id for c in table.live_columns}
    return workspace, owner, table, ids


def waterfall(ids: dict[str, int], **overrides: Any) -> ColumnSetup:
    """The email waterfall of the issue: Hunter's finder, then Apollo, verified by Hunter."""
    payload = {
        "name": "Work email",
        "steps": [{"operation": "hunter.email_finder"}, {"operation": "apollo.people_match"}],
        "target": "email",
        "inputs": {"first_name": ids["First name"], "last_name": ids["Last name"], "domain": ids["Domain"]},
        "outputs": [{"field": "title", "new_column": "Job title"}],
        "validation": {"operation": "hunter.email_verifier", "input": "email", "field": "status", "accept": ["valid"]},
    }
    payload.update({k: v(ids) if callable(v) else v for k, v in overrides.items()})
    return ColumnSetup.model_validate(payload)


def test_create_waterfall_column_with_a_new_output_column(db, people):
    workspace, owner, table, ids = people
    column = columns.create_enrichment_column(workspace, owner, table, waterfall(ids))
    names = [c.name for c in table.live_columns]
    assert names[-2:] == ["Work email", "Job title"]
    assert column.type == "enrichment"
    config = columns.column_config(column)
    assert [s.operation for s in config.steps] == ["hunter.email_finder", "apollo.people_match"]
    assert config.validation.operation == "hunter.email_verifier"
    new = next(c for c in table.live_columns if c.name == "Job title")
    assert [(o.field, o.column_id) for o in config.outputs] == [("title", new.id)]
    assert config.auto_run is False and config.overwrite is False
    # The physical columns exist: the enrichment column holds JSON.
    store = storage.storage_for(table)
    assert store.types[column.id] == "enrichment" and store.types[new.id] == "text"


def test_output_into_an_existing_column(db, people):
    workspace, owner, table, ids = people
    setup = waterfall(ids, outputs=[{"field": "title", "column_id": ids["Title"]}])
    column = columns.create_enrichment_column(workspace, owner, table, setup)
    assert columns.column_config(column).outputs[0].column_id == ids["Title"]
    assert len(table.live_columns) == 5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"steps": [{"operation": "hunter.nothing"}]}, "Unknown provider operation"),
        ({"target": "organization"}, "does not deliver the field"),
        ({"inputs": lambda ids: {"first_name": ids["First name"]}}, "needs a column for"),
        ({"inputs": lambda ids: {"nickname": ids["Title"]}}, "No step of this waterfall reads"),
        ({"outputs": [{"field": "shoe_size", "new_column": "Shoes"}]}, "delivers the field"),
        ({"outputs": [{"field": "title", "new_column": "Domain"}]}, "already a column named"),
        (
            {"validation": {"operation": "hunter.email_finder", "input": "email", "field": "status"}},
            "cannot validate",
        ),
        ({"condition": {"op": "and", "conditions": [{"column_id": 999999, "operator": "is_empty"}]}}, "Run condition"),
        ({"steps": [{"operation": "hunter.email_finder"}, {"operation": "hunter.email_finder"}]}, "appears once"),
    ],
)
def test_bad_setups_are_refused_and_nothing_is_written(db, people, overrides, message):
    workspace, owner, table, ids = people
    before = [c.name for c in table.live_columns]
    with pytest.raises(ValidationFailed) as caught:
        columns.create_enrichment_column(workspace, owner, table, waterfall(ids, **overrides))
    assert message in caught.value.message
    assert [c.name for c in table.live_columns] == before


def test_unknown_input_column_is_refused(db, people):
    workspace, owner, table, ids = people
    inputs = {"first_name": ids["First name"], "last_name": ids["Last name"], "domain": 10**12}
    with pytest.raises(ValidationFailed, match="not in this table"):
        columns.create_enrichment_column(workspace, owner, table, waterfall(ids, inputs=inputs))


def test_outputs_cannot_target_computed_columns_or_collide(db, people):
    workspace, owner, table, ids = people
    first = columns.create_enrichment_column(workspace, owner, table, waterfall(ids, outputs=[]))
    setup = waterfall(ids, name="Second", outputs=[{"field": "title", "column_id": first.id}])
    with pytest.raises(ValidationFailed, match="computed"):
        columns.create_enrichment_column(workspace, owner, table, setup)
    twice = [{"field": "title", "column_id": ids["Title"]}, {"field": "linkedin_url", "column_id": ids["Title"]}]
    with pytest.raises(ValidationFailed, match="same column"):
        columns.create_enrichment_column(workspace, owner, table, waterfall(ids, name="Third", outputs=twice))


def test_the_model_refuses_shapeless_bodies():
    with pytest.raises(ValidationError):
        ColumnSetup.model_validate({"name": "x", "steps": [], "target": "email"})
    with pytest.raises(ValidationError):
        steps = [{"operation": "hunter.email_finder"}]
        ColumnSetup.model_validate({"name": "x", "steps": steps, "target": "email", "outputs": [{"field": "a"}]})


def test_update_replaces_setup_and_renames(db, people):
    workspace, owner, table, ids = people
    column = columns.create_enrichment_column(workspace, owner, table, waterfall(ids))
    condition = {"op": "and", "conditions": [{"column_id": ids["Domain"], "operator": "is_not_empty"}]}
    setup = waterfall(
        ids,
        name="Email",
        steps=[{"operation": "hunter.email_finder"}],
        outputs=[],
        validation=None,
        condition=condition,
        auto_run=True,
    )
    columns.update_enrichment_column(workspace, owner, table, column.id, setup)
    config = columns.column_config(column)
    assert column.name == "Email"
    assert [s.operation for s in config.steps] == ["hunter.email_finder"]
    assert config.condition == condition and config.auto_run is True and config.validation is None
    assert columns.has_auto_run(table)


def test_update_refuses_reading_its_own_cells(db, people):
    workspace, owner, table, ids = people
    column = columns.create_enrichment_column(workspace, owner, table, waterfall(ids))
    inputs = {"first_name": ids["First name"], "last_name": ids["Last name"], "domain": column.id}
    with pytest.raises(ValidationFailed, match="its own cells"):
        columns.update_enrichment_column(workspace, owner, table, column.id, waterfall(ids, inputs=inputs))


def test_other_workspaces_cannot_touch_the_column(db, people):
    workspace, owner, table, ids = people
    column = columns.create_enrichment_column(workspace, owner, table, waterfall(ids))
    other, stranger = workspace_with_owner()
    with pytest.raises(NotFound):
        columns.get_enrichment_column_or_404(other, table, column.id)
    with pytest.raises(NotFound):
        columns.update_enrichment_column(other, stranger, table, column.id, waterfall(ids))
    with pytest.raises(NotFound):
        columns.create_enrichment_column(other, stranger, table, waterfall(ids))
    # A plain column is not an enrichment column.
    with pytest.raises(NotFound):
        columns.get_enrichment_column_or_404(workspace, table, ids["Domain"])


def test_api_key_actor_creates_without_undo(db, people):
    workspace, _owner, table, ids = people
    column = columns.create_enrichment_column(workspace, None, table, waterfall(ids))
    assert column.type == "enrichment"
    assert [c.name for c in table.live_columns][-1] == "Job title"


def test_auto_run_picks_up_saved_pasted_and_added_rows(db, people, app):
    from sqlalchemy import func, select

    from morket.enrichment.models import EnrichmentRun, EnrichmentRunRow
    from morket.tables import editing

    workspace, owner, table, ids = people

    def runs() -> list[EnrichmentRun]:
        return list(db.session.scalars(select(EnrichmentRun).where(EnrichmentRun.table_id == table.id)))

    # Without an auto-run column nothing starts.
    (row_id,) = db.session.scalars(select(storage.storage_for(table).rows.c.id)).all()
    editing.save_cell(workspace, owner, table, row_id, ids["Domain"], "b.io")
    assert runs() == []
    columns.create_enrichment_column(workspace, owner, table, waterfall(ids, auto_run=True))
    editing.save_cell(workspace, owner, table, row_id, ids["Domain"], "c.io")
    assert [(r.scope, r.total) for r in runs()] == [("auto", 1)]
    added = editing.add_rows(workspace, owner, table, 2)
    pasted = editing.paste_block(workspace, owner, table, None, added, ids["First name"], [["Grace"], ["Alan"]])
    assert pasted.changed == 2
    covered = db.session.scalars(
        select(EnrichmentRunRow.row_id).join(EnrichmentRun, EnrichmentRun.id == EnrichmentRunRow.run_id)
    ).all()
    assert set(added) <= set(covered)
    assert db.session.scalar(select(func.count()).select_from(EnrichmentRun)) >= 2


def test_generic_http_step_takes_inputs_and_fields_from_its_options(db, people):
    workspace, owner, table, ids = people
    step = {
        "operation": "http.request",
        "options": {"url": "https://api.example.com/c?domain={{domain}}", "outputs": {"industry": "$.industry"}},
    }
    setup = {"name": "Industry", "steps": [step], "target": "industry", "inputs": {"domain": ids["Domain"]}}
    column = columns.create_enrichment_column(workspace, owner, table, ColumnSetup.model_validate(setup))
    assert columns.column_config(column).steps[0].options["outputs"] == {"industry": "$.industry"}
    with pytest.raises(ValidationFailed, match="needs a column for: Domain"):
        bad = {**setup, "name": "Again", "inputs": {}}
        columns.create_enrichment_column(workspace, owner, table, ColumnSetup.model_validate(bad))
    with pytest.raises(ValidationFailed, match="url is required"):
        bad = {**setup, "name": "Again", "steps": [{"operation": "http.request", "options": {"outputs": {}}}]}
        columns.create_enrichment_column(workspace, owner, table, ColumnSetup.model_validate(bad))
    with pytest.raises(ValidationFailed, match="does not deliver"):
        bad = {**setup, "name": "Again", "target": "size"}
        columns.create_enrichment_column(workspace, owner, table, ColumnSetup.model_validate(bad))
