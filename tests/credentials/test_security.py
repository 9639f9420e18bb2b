"""A stored provider key appears nowhere but in its ciphertext: no log line, page, API answer, job or row.

Keys are entered through the page and the API (including refused attempts), used by a run's
resolve_key, then every independent record is searched for the plaintext: log records as the
JSON formatter writes them (and the raw records), every workspace page and API listing a
manager can open, the outbox's job arguments, everything in Redis and every row of every table.
"""

from __future__ import annotations

import io
import json
import logging

import pytest
from sqlalchemy import inspect, select, text

from morket.core.logging import JsonFormatter
from morket.core.models import OutboxMessage
from morket.credentials import service
from tests.credentials.conftest import bearer
from tests.factories import csrf_token, login

PAGE_SECRET = "sk-test-PAGEsecret-41f7b9d2c6e0"
API_SECRET = "sk-test-APIsecret-8d1e0c57b3a9"
REFUSED_SECRETS = ("sk-test-DUPsecret-5a2e9f0c1b7d", "sk-test-BAD secret-77e1", "sk-test-EXTRAsecret-0f3c")
SECRETS = (PAGE_SECRET, API_SECRET, *REFUSED_SECRETS)


@pytest.fixture
def json_log():
    """Capture every record at DEBUG as the production JSON formatter writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _assert_clean(where: str, blob: str | bytes) -> None:
    for secret in SECRETS:
        needle = secret.encode() if isinstance(blob, bytes) else secret
        assert needle not in blob, f"a provider key leaked into {where}"
        # The distinctive middle of the key, in case something re-encodes or truncates around it.
        middle = secret.split("-")[2]
        assert (middle.encode() if isinstance(blob, bytes) else middle) not in blob, f"part of a key in {where}"


def _enter_keys(client, new_client, team, access_token) -> None:
    slug = team.workspace.slug
    login(client, team["owner"])
    token = csrf_token(client, f"/w/{slug}/credentials")
    resp = client.post(
        f"/w/{slug}/credentials", data={"csrf_token": token, "provider": "hunter", "secret": PAGE_SECRET}
    )
    assert resp.status_code == 303
    # Refused attempts: a second key for the provider, a malformed key, an unauthorised role.
    resp = client.post(
        f"/w/{slug}/credentials", data={"csrf_token": token, "provider": "hunter", "secret": REFUSED_SECRETS[0]}
    )
    assert resp.status_code == 409
    resp = client.post(
        f"/w/{slug}/credentials", data={"csrf_token": token, "provider": "apollo", "secret": REFUSED_SECRETS[1]}
    )
    assert resp.status_code == 422
    member = new_client()
    login(member, team["member"])
    member_token = csrf_token(member, f"/w/{slug}/")
    resp = member.post(
        f"/w/{slug}/credentials", data={"csrf_token": member_token, "provider": "apollo", "secret": REFUSED_SECRETS[0]}
    )
    assert resp.status_code == 403

    access = access_token(team["admin"], team.workspace)
    resp = client.post("/api/v1/credentials", json={"provider": "apollo", "secret": API_SECRET}, headers=bearer(access))
    assert resp.status_code == 201
    resp = client.post(
        "/api/v1/credentials",
        json={"provider": "clearbit", "secret": REFUSED_SECRETS[2], "api_key": REFUSED_SECRETS[2]},
        headers=bearer(access),
    )
    assert resp.status_code == 422
    resp = client.post(
        "/api/v1/credentials", json={"provider": "apollo", "secret": REFUSED_SECRETS[0]}, headers=bearer(access)
    )
    assert resp.status_code == 409


def _pages(app, client, slug: str) -> list[str]:
    """Every workspace page that takes only the slug, plus the account pages, as the owner sees them."""
    paths = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.arguments - {"slug"}:
            continue
        if rule.rule.startswith("/w/<slug>"):
            paths.append(rule.rule.replace("<slug>", slug))
        elif rule.rule in {"/w", "/account", "/"}:
            paths.append(rule.rule)
    assert f"/w/{slug}/credentials" in paths
    return paths


def _api_listings(app) -> list[str]:
    return [
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/") and "GET" in rule.methods and not rule.arguments
    ]


def test_keys_appear_in_no_log_page_response_job_or_row(
    app, client, new_client, db, team, access_token, caplog, json_log, services
):
    caplog.set_level(logging.DEBUG)
    _enter_keys(client, new_client, team, access_token)
    # A run resolves the keys (the only way a secret leaves the service), then the listings are read.
    assert service.resolve_key(team.workspace.id, "hunter", actor_id=team["owner"].id, run_id=1)[1] == "own"
    assert service.resolve_key(team.workspace.id, "apollo", run_id=1)[1] == "own"
    db.session.commit()

    slug = team.workspace.slug
    rendered = set()
    for path in _pages(app, client, slug):
        # Pages of other capabilities are checked for errors by the route matrix; here a page that
        # cannot render cannot leak, so only what rendered is searched.
        try:
            resp = client.get(path, follow_redirects=True)
        except Exception:  # noqa: BLE001, S112
            continue
        if resp.status_code < 500:
            rendered.add(path)
        _assert_clean(f"the page {path}", resp.get_data(as_text=True))
    core = {f"/w/{slug}/{page}" for page in ("", "credentials", "members", "api-keys", "settings")}
    assert core <= rendered, f"these pages did not render: {core - rendered}"
    html = client.get(f"/w/{slug}/credentials").get_data(as_text=True)
    assert "••••b3a9" in html and "••••c6e0" in html, "the masked keys should be listed"

    access = access_token(team["owner"], team.workspace)
    for path in _api_listings(app):
        try:
            resp = client.get(path, headers=bearer(access))
        except Exception:  # noqa: BLE001, S112
            continue
        _assert_clean(f"the API answer {path}", resp.get_data(as_text=True))
    listed = client.get("/api/v1/credentials", headers=bearer(access)).get_json()["data"]
    assert sorted(c["masked"] for c in listed) == ["••••b3a9", "••••c6e0"]

    outbox = db.session.scalars(select(OutboxMessage)).all()
    _assert_clean("an outbox job", json.dumps([[m.func, m.job_id, m.args] for m in outbox]))

    import redis

    conn = redis.Redis.from_url(services["redis"])
    for key in conn.scan_iter(count=500):
        kind = conn.type(key).decode()
        if kind == "string":
            value = conn.get(key) or b""
        elif kind == "hash":
            value = b"".join(k + v for k, v in conn.hgetall(key).items())
        elif kind == "list":
            value = b"".join(conn.lrange(key, 0, -1))
        elif kind == "set":
            value = b"".join(conn.smembers(key))
        elif kind == "zset":
            value = b"".join(conn.zrange(key, 0, -1))
        else:
            value = b""
        _assert_clean(f"the Redis key {key!r}", key + value)
    conn.close()

    for table in inspect(db.session.connection()).get_table_names():
        rows = db.session.execute(text(f'SELECT t::text FROM "{table}" t')).scalars().all()  # noqa: S608 - catalog names
        _assert_clean(f"the table {table}", "\n".join(rows))

    assert json_log.getvalue(), "the JSON log captured nothing; the check would prove nothing"
    _assert_clean("a JSON log line", json_log.getvalue())
    for record in caplog.records:
        _assert_clean(f"the log record {record.name}", record.getMessage() + repr(record.__dict__.get("data")))


def test_log_redaction_covers_the_field_names_keys_arrive_in():
    """Should a form or JSON body ever be logged, its ``secret`` / ``api_key`` fields are redacted."""
    from morket.core.logging import REDACTED, redact

    body = {"provider": "hunter", "secret": PAGE_SECRET, "api_key": API_SECRET, "nested": {"Secret": PAGE_SECRET}}
    assert redact(body) == {
        "provider": "hunter",
        "secret": REDACTED,
        "api_key": REDACTED,
        "nested": {"Secret": REDACTED},
    }
    for line in (f"secret={PAGE_SECRET}", f'"api_key": "{API_SECRET}"', f"provider=hunter&secret={PAGE_SECRET}"):
        _assert_clean("a redacted line", redact(line))
