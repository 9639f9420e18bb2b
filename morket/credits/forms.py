"""Forms of the credits pages: the history filter (GET, no CSRF) and the admin console's adjustment."""

from __future__ import annotations

import secrets

from wtforms import Form, HiddenField, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, Regexp, ValidationError

from morket.credits.models import NOTE_MAX
from morket.credits.service import MAX_AMOUNT

BIGINT_MAX = 2**63 - 1
KIND_LABELS: dict[str, str] = {
    "debit": "Charges",
    "usage": "Own-key use",
    "grant": "Grants",
    "refund": "Refunds",
    "adjustment": "Adjustments",
}


class LedgerFilterForm(Form):
    """Which entries the history shows: one kind or all, and the keyset cursor of older pages."""

    kind = SelectField(
        "Show",
        choices=[SelectChoice("", "All entries"), *(SelectChoice(k, label) for k, label in KIND_LABELS.items())],
        default="",
    )
    before = IntegerField(
        "Older than",
        validators=[Optional(), NumberRange(min=1, max=BIGINT_MAX, message="That page does not exist.")],
    )


def _not_zero(form: Form, field: IntegerField) -> None:
    if field.data == 0:
        raise ValidationError("Enter a positive number to add credits or a negative one to remove them.")


class AdjustCreditsForm(Form):
    """Add or remove credits by hand. CSRF is checked for the whole console before its views run.

    ``request_id`` is drawn when the form is shown and becomes the entry's idempotency key, so a
    double-click or a resubmitted page adjusts once.
    """

    amount = IntegerField(
        "Credits",
        validators=[
            InputRequired(message="Enter a whole number of credits, like 500 or -200."),
            NumberRange(min=-MAX_AMOUNT, max=MAX_AMOUNT, message=f"Between -{MAX_AMOUNT:,} and {MAX_AMOUNT:,}."),
            _not_zero,
        ],
    )
    note = StringField(
        "Reason",
        validators=[
            DataRequired(message="Say why, for the workspace's history."),
            Length(max=NOTE_MAX, message=f"At most {NOTE_MAX} characters."),
        ],
    )
    request_id = HiddenField(validators=[DataRequired(), Regexp(r"^[0-9a-f]{32}$", message="Reload the page.")])

    @staticmethod
    def new_request_id() -> str:
        return secrets.token_hex(16)
