"""The lockout is shared state in PostgreSQL: failures in one process lock the account in another."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from sqlalchemy import delete

from morket.accounts.models import User
from morket.core.security import hash_password
from morket.extensions import db
from tests.accounts.support import ROOT, browser, log_in
from tests.factories import PASSWORD

SECOND_PROCESS = r"""
import json, re, sys
from morket import create_app

app = create_app({"TESTING": True, "SERVER_NAME": "localhost"})
client = app.test_client()
page = client.get("/login").get_data(as_text=True)
token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
resp = client.post(
    "/login",
    data={"csrf_token": token, "email": sys.argv[1], "password": sys.argv[2]},
    environ_base={"REMOTE_ADDR": "198.51.100.9"},
)
print(json.dumps({"status": resp.status_code, "body": resp.get_data(as_text=True)}))
"""


def test_lockout_holds_in_another_process(app, database_url, services):
    email = f"lock-{uuid.uuid4().hex[:12]}@example.com"
    with app.app_context():
        user = User(email=email, name="Locked Out", password_hash=hash_password(PASSWORD))
        db.session.add(user)
        db.session.commit()
        user_id = user.id
    try:
        client = browser(app)
        statuses = [log_in(client, email, f"wrong password {i}").status_code for i in range(5)]
        assert statuses[-1] == 423

        env = {
            **os.environ,
            "MORKET_ENV": "test",
            "MORKET_DATABASE_URL": database_url,
            "MORKET_REDIS_URL": services["redis"],
        }
        done = subprocess.run(
            [sys.executable, "-c", SECOND_PROCESS, email, PASSWORD],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["status"] == 423, result["body"][:500]
        assert "Try again in" in result["body"]
    finally:
        with app.app_context():
            db.session.execute(delete(User).where(User.id == user_id))
            db.session.commit()
