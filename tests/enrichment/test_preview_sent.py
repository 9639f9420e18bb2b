"""The drawer's first-rows preview shows what each card's provider sends, not one rule for every domain."""

from __future__ import annotations

from morket.enrichment import panel_service
from morket.tables import service as tables
from tests.factories import workspace_with_owner


def _preview(card_key: str) -> list[dict]:
    workspace, owner = workspace_with_owner()
    table = tables.create_table(workspace, owner, "Sites", columns=[{"name": "Company domain", "type": "domain"}])
    tables.insert_rows(
        workspace, owner, table, [{"Company domain": "acct0.example.com"}, {"Company domain": "shop.acme.co.uk"}]
    )
    sample = panel_service.sample_table(workspace, owner, table)
    card = panel_service.get_card_or_404(workspace, card_key)
    chosen = {r.input: (r.column_id, r.derive) for r in panel_service.resolve_card(card, sample.roles) if r.column_id}
    return panel_service.preview_inputs(sample, chosen, kinds={spec.name: spec.kind for spec in card.needs})


def test_the_scrape_card_previews_the_site_it_will_read_subdomain_included(db):
    assert [row["domain"] for row in _preview("op:website.scrape")] == ["acct0.example.com", "shop.acme.co.uk"]


def test_a_data_provider_card_previews_the_registrable_domain_it_sends(db):
    assert [row["domain"] for row in _preview("op:hunter.domain_search")] == ["example.com", "acme.co.uk"]
