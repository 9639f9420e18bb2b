"""Forms of the inbound source pages (the mapping editor's per-column paths are read by the view)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from morket.inbound.service import NAME_MAX


class CreateSourceForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired("Name the source."), Length(max=NAME_MAX)])
    require_signature = BooleanField("Accept only Standard Webhooks signatures")


class SampleForm(FlaskForm):
    sample = TextAreaField("Sample payload (JSON)", validators=[DataRequired("Paste a JSON object or array.")])
