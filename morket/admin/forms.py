"""Admin console forms."""

from __future__ import annotations

from wtforms import Form, IntegerField, SearchField
from wtforms.validators import Length, NumberRange, Optional

from morket.admin.service import MAX_PER_PAGE


class SearchListForm(Form):
    """The search box and page number of a list (GET, read-only, so no CSRF token)."""

    q = SearchField("Search", validators=[Optional(), Length(max=100, message="Search for at most 100 characters.")])
    page = IntegerField("Page", default=1, validators=[Optional(), NumberRange(min=1, max=100_000)])
    per_page = IntegerField("Per page", validators=[Optional(), NumberRange(min=1, max=MAX_PER_PAGE)])
