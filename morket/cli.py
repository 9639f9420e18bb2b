"""``flask`` CLI commands."""

from __future__ import annotations

import click
from flask import Flask


def register_cli(app: Flask) -> None:
    """Attach Morket's commands to ``flask``."""

    @app.cli.command("set-admin")
    @click.argument("email")
    @click.option("--revoke", is_flag=True, help="Remove the platform-admin flag instead.")
    def set_admin(email: str, revoke: bool) -> None:
        """Grant (or revoke) the platform-admin flag for the user with EMAIL."""
        from morket.accounts.service import get_user_by_email
        from morket.extensions import db

        user = get_user_by_email(email)
        if user is None:
            raise click.ClickException(f"no user with email {email}")
        user.is_platform_admin = not revoke
        db.session.commit()
        click.echo(f"{user.email} is {'no longer ' if revoke else ''}a platform admin")
