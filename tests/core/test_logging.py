"""Structured JSON logs carry the request's ids and never a secret."""

import base64
import io
import json
import logging

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from morket.core.logging import REDACTED, JsonFormatter, log_security_event, redact

TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
PASSWORD_CHARS = TOKEN_CHARS + "!#$%()*+-./<=>?@[]^_`{|}~"

tokens = st.text(TOKEN_CHARS, min_size=16, max_size=48)
passwords = st.text(PASSWORD_CHARS, min_size=10, max_size=40)
surrounding = st.text(max_size=40)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@st.composite
def jwts(draw) -> str:
    payload = json.dumps({"sub": draw(st.integers(1, 10**9)), "ws": draw(st.integers(1, 10**6))}).encode()
    signature = draw(st.binary(min_size=32, max_size=32))
    return ".".join([_b64(b'{"alg":"HS256","typ":"JWT"}'), _b64(payload), _b64(signature)])


@st.composite
def secrets_in_text(draw) -> tuple[str, str]:
    """Return (text, secret): a secret in one of the shapes Morket handles, inside arbitrary text."""
    kind = draw(st.sampled_from(["bearer", "jwt", "api_key", "password", "json_password", "url"]))
    if kind == "bearer":
        secret = draw(tokens)
        middle = f"Authorization: Bearer {secret}"
    elif kind == "jwt":
        secret = draw(jwts())
        middle = f"token {secret} expired"
    elif kind == "api_key":
        secret = "mk_live_" + draw(tokens)
        middle = secret
    elif kind == "password":
        secret = draw(passwords)
        label = draw(st.sampled_from(["password", "PASSWORD", "passwd", "secret", "api_key", "token"]))
        sep = draw(st.sampled_from(["=", ": ", " = "]))
        middle = f"{label}{sep}{secret}"
    elif kind == "json_password":
        secret = draw(passwords) + " " + draw(passwords)
        middle = json.dumps({"password": secret})
    else:
        secret = draw(passwords).replace("@", "").replace("/", "") or "fallbackpw1234"
        middle = f"postgresql://morket:{secret}@db.internal/morket"
    before, after = draw(surrounding), draw(surrounding)
    assume(secret not in before and secret not in after)
    glue = st.sampled_from(["", " ", "\n", ", "])
    return before + draw(glue) + middle + draw(glue) + after, secret


@settings(max_examples=300, deadline=None)
@given(secrets_in_text())
def test_a_secret_never_survives_redaction(case):
    text, secret = case
    cleaned = redact(text)
    assert secret not in cleaned
    assert REDACTED in cleaned


def test_redact_replaces_secret_keys_at_any_depth():
    cleaned = redact(
        {"email": "ann@example.com", "password": "hunter2", "nested": [{"api_key": "abc"}, {"refresh_token": "r"}]}
    )
    assert cleaned == {
        "email": "ann@example.com",
        "password": REDACTED,
        "nested": [{"api_key": REDACTED}, {"refresh_token": REDACTED}],
    }


def test_redact_keeps_ordinary_text():
    text = "imported 1,204 rows into table 7 for ann@example.com"
    assert redact(text) == text


def test_a_log_record_in_a_request_is_one_json_line_with_ids_and_no_secret(app, db):
    from morket.accounts.models import User

    user = User(email="log@example.com", name="Log", password_hash="!")
    db.session.add(user)
    db.session.flush()
    formatter = JsonFormatter()
    with app.test_request_context("/w/acme/tables", headers={"X-Request-Id": "req-1234abcd"}):
        app.preprocess_request()
        from flask import g

        g._login_user = user
        g.log_workspace_id = 42
        record = logging.LogRecord(
            "morket.test", logging.WARNING, __file__, 1, "login for %s with password=%s", ("ann", "S3cret!pw"), None
        )
        record.data = {"password": "S3cret!pw", "authorization": "Bearer abcdefghijklmnop", "rows": 3}
        line = formatter.format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["request_id"] == "req-1234abcd"
    assert entry["user_id"] == user.id
    assert entry["workspace_id"] == 42
    assert entry["path"] == "/w/acme/tables"
    assert entry["level"] == "WARNING"
    assert entry["data"] == {"password": REDACTED, "authorization": REDACTED, "rows": 3}
    assert "S3cret!pw" not in line and "abcdefghijklmnop" not in line


def test_an_exception_in_a_log_record_is_redacted_too():
    formatter = JsonFormatter()
    try:
        raise ValueError("bad token=mk_live_abcdefghijklmnop")
    except ValueError:
        import sys

        record = logging.LogRecord("morket.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = json.loads(formatter.format(record))
    assert "ValueError" in entry["exc"]
    assert "mk_live_abcdefghijklmnop" not in entry["exc"]


def test_security_events_go_to_the_security_logger_with_their_data(caplog):
    with caplog.at_level(logging.WARNING, logger="morket.security"):
        log_security_event("login_failed", email="ann@example.com", password="nope")
    record = caplog.records[-1]
    assert record.name == "morket.security"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["msg"] == "login_failed"
    assert entry["data"] == {"event": "login_failed", "email": "ann@example.com", "password": REDACTED}


# --- personal data through a real enrichment run -------------------------------------------------


@pytest.fixture
def production_logs(app):
    """Every log line written during the test as production writes them (configure_logging at
    INFO, JSON lines), into a StringIO; the root logger and the levels it sets are restored after."""
    from morket.core.logging import URL_LOGGERS, configure_logging

    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    named = ("werkzeug", "alembic.runtime.plugins", *URL_LOGGERS)
    saved_levels = {name: logging.getLogger(name).level for name in named}
    configure_logging("INFO")
    stream = io.StringIO()
    root.handlers[0].setStream(stream)
    yield stream
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    for name, level in saved_levels.items():
        logging.getLogger(name).setLevel(level)


def _findable_person() -> tuple[str, str, str]:
    """A person the sandbox's email finder finds (its answers derive from a hash of the inputs)."""
    from morket.providers.sandboxes import data

    for first in ("Philippa", "Ottoline", "Wilhelmina", "Cordelia", "Leopoldine", "Theodora"):
        for last in ("Quenneville", "Abernathy", "Marchetti", "Oyelaran"):
            domain = f"{last.lower()}-holdings.com"
            if data.person_found(first, last, domain):
                return first, last, domain
    raise AssertionError("the sandbox finds none of the candidates")


def test_an_enrichment_run_logs_no_personal_data_and_no_query_strings(app, db, sandbox, production_logs):
    from morket.enrichment import service
    from morket.tables import service as tables
    from tests.enrichment.test_engine_support import PEOPLE_COLUMNS, cells, enrichment_column, finish_run, grant
    from tests.factories import workspace_with_owner

    sandbox.reset()
    first, last, domain = _findable_person()
    workspace, owner = workspace_with_owner()
    grant(workspace, 100)
    table = tables.create_table(workspace, owner, "Prospects", columns=PEOPLE_COLUMNS)
    tables.insert_rows(workspace, owner, table, [{"First name": first, "Last name": last, "Domain": domain}])
    column = enrichment_column(workspace, owner, table, {c.name: c.id for c in table.live_columns})
    logging.getLogger("morket.enrichment").info("personal-data test: run starting")
    run = service.start_run(workspace, owner, table, column, scope="all")
    finish_run(run.id)

    [(cell, state)] = cells(table, column.id).values()
    assert state["status"] == "success"
    email = cell["value"]
    assert "@" in email
    # The provider really was sent the person's name (in the query string, as Hunter wants it).
    assert any(first in json.dumps(entry) for entry in sandbox.log("hunter"))
    lines = production_logs.getvalue().splitlines()
    assert any("personal-data test: run starting" in line for line in lines), "the capture sees nothing"
    for line in lines:
        for personal in (first, last, email, email.split("@")[0]):
            assert personal.lower() not in line.lower(), f"{personal!r} in a log line: {line}"
        assert "first_name=" not in line and "api_key=" not in line, line


def test_log_lines_keep_a_urls_path_but_not_its_query():
    record = logging.LogRecord(
        "httpx",
        logging.WARNING,
        __file__,
        1,
        "HTTP Request: GET %s",
        ("https://api.hunter.io/v2/email-finder?first_name=Ada&last_name=Lovelace",),
        None,
    )
    record.data = {"url": "https://example.com/team?email=ada%40example.com#top"}
    entry = json.loads(JsonFormatter().format(record))
    assert entry["msg"] == f"HTTP Request: GET https://api.hunter.io/v2/email-finder?{REDACTED}"
    assert entry["data"] == {"url": f"https://example.com/team?{REDACTED}#top"}
