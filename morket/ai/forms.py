"""WTForms for the AI models page; the service re-checks every rule."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from morket.ai.service import KIND_LABELS, MODEL_MAX, NAME_MAX, SECRET_MAX, URL_MAX


def _squash(value: object) -> object:
    return " ".join(value.split()) if isinstance(value, str) else value


class CreateEndpointForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired("Enter a name."), Length(max=NAME_MAX)], filters=[_squash])
    kind = SelectField(
        "API", choices=[SelectChoice(value, label) for value, label in KIND_LABELS.items()], default="openai"
    )
    base_url = StringField(
        "Base URL", validators=[Optional(), Length(max=URL_MAX)], filters=[_squash],
        render_kw={"placeholder": "https://api.openai.com/v1", "spellcheck": "false", "inputmode": "url"},
    )  # fmt: skip
    model = StringField(
        "Default model", validators=[DataRequired("Enter a model name."), Length(max=MODEL_MAX)], filters=[_squash],
        render_kw={"placeholder": "gpt-4o-mini", "spellcheck": "false"},
    )  # fmt: skip
    models = StringField(
        "Other models", validators=[Optional(), Length(max=2000)],
        render_kw={"placeholder": "gpt-4.1-mini, gpt-4o", "spellcheck": "false"},
    )  # fmt: skip
    # A password input: the browser masks it and WTForms never writes the value back into the page.
    api_key = PasswordField(
        "API key",
        validators=[DataRequired("Enter the API key."), Length(max=SECRET_MAX)],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
