"""Show a service's error on the page form that caused it."""

from __future__ import annotations

from wtforms import Form
from wtforms.fields import HiddenField

from morket.core.errors import MorketError


def show_error_on_form(form: Form, exc: MorketError, *, codes_in_fields: bool = False) -> None:
    """Put ``exc`` on the visible fields of ``form`` it names, else on the form as a whole.

    Each named field gets the service's messages for it; with ``codes_in_fields`` (a service whose
    ``fields`` hold short codes for the API, not sentences) the first one gets ``exc.message``. A
    name that is no field of the form, or a hidden one, would leave the error unseen: when no
    named field can show it, ``exc.message`` goes on the form.
    """
    named = [name for name in exc.fields if name in form and not isinstance(form[name], HiddenField)]
    if not named:
        form.form_errors.append(exc.message)
    elif codes_in_fields:
        form[named[0]].errors = [*form[named[0]].errors, exc.message]
    else:
        for name in named:
            form[name].errors = [*form[name].errors, *exc.fields[name]]
