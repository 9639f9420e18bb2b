"""Email: render, record and deliver after commit (SMTP, or the dev mailbox without it)."""
