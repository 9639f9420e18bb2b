"""WTForms for the credentials page; the service re-checks every rule."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from morket.credentials.service import LABEL_MAX, SECRET_MAX


class CreateCredentialForm(FlaskForm):
    provider = SelectField("Provider")
    label = StringField(
        "Label",
        validators=[Optional(), Length(max=LABEL_MAX, message=f"Use at most {LABEL_MAX} characters.")],
        filters=[lambda value: " ".join(value.split()) if isinstance(value, str) else value],
    )
    # A password input: the browser masks it and WTForms never writes the value back into the page.
    secret = PasswordField(
        "API key",
        validators=[
            DataRequired("Enter the API key."),
            Length(max=SECRET_MAX, message=f"Use at most {SECRET_MAX} characters."),
        ],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
