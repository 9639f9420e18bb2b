"""WTForms for the webhooks page; the service re-checks every rule."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectMultipleField, StringField, widgets
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from morket.webhooks.delivery import URL_MAX
from morket.webhooks.service import DESCRIPTION_MAX, EVENT_TYPES


class EndpointForm(FlaskForm):
    url = StringField(
        "Endpoint URL",
        validators=[DataRequired("Enter the URL that receives the events."), Length(max=URL_MAX)],
        render_kw={"placeholder": "https://example.com/webhooks/morket", "spellcheck": "false", "inputmode": "url"},
    )
    description = StringField(
        "Description",
        validators=[Optional(), Length(max=DESCRIPTION_MAX, message=f"Use at most {DESCRIPTION_MAX} characters.")],
    )
    event_types = SelectMultipleField(
        "Events to send",
        choices=[SelectChoice(value, label) for value, label in EVENT_TYPES.items()],
        validators=[DataRequired("Choose at least one event.")],
        option_widget=widgets.CheckboxInput(),
        widget=widgets.ListWidget(prefix_label=False),
    )
    enabled = BooleanField("Enabled", default=True)
