"""htmx helpers: decide page or fragment (docs/ARCHITECTURE.md §3) and render the answer."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, make_response, render_template, request


def wants_fragment(target: str | None = None) -> bool:
    """True for an htmx request that is not boosted (boosted requests get whole pages).

    With ``target``, only when the request swaps the element of that id (``HX-Target``): a page
    whose parts are swapped separately answers each part only to the request that asked for it.
    """
    if request.headers.get("HX-Request") != "true" or request.headers.get("HX-Boosted") == "true":
        return False
    return target is None or request.headers.get("HX-Target") == target


def render_page_or_fragment(
    page: str,
    status: int = 200,
    /,
    *,
    hx_fragment: str | None = None,
    hx_target: str | None = None,
    **context: Any,
) -> Response:
    """Render the template ``page``, or ``hx_fragment`` for a fragment request (``wants_fragment(hx_target)``).

    Without ``hx_fragment`` the template is rendered as it is (an endpoint that only htmx calls
    names its partial as the page). The answer varies on ``HX-Request`` always, and on the other
    headers that chose it, so that no cache hands a page to a swap or a fragment to a browser.
    ``page`` and ``status`` are positional and the options carry an ``hx_`` prefix, so that any
    other name (``page``, ``target``, ``status`` ...) is free for the template.
    """
    template = page
    if hx_fragment is not None and wants_fragment(hx_target):
        template = hx_fragment
    response = make_response(render_template(template, **context), status)
    response.vary.add("HX-Request")
    if hx_fragment is not None:
        response.vary.add("HX-Boosted")
        if hx_target is not None:
            response.vary.add("HX-Target")
    return response


def add_toast(response: Response, message: str, kind: str = "success") -> Response:
    """Ask the page to show ``message`` as a toast once htmx has swapped ``response`` in.

    The shell listens for ``HX-Trigger: {"morket:toast": {"toasts": [{message, kind}]}}``
    (``static/js/shell.js``); toasts already asked for on the response are kept.
    """
    try:
        triggers = json.loads(response.headers.get("HX-Trigger") or "{}")
    except ValueError:
        triggers = {name.strip(): None for name in response.headers["HX-Trigger"].split(",")}
    if not isinstance(triggers, dict):
        triggers = {}
    asked = triggers.get("morket:toast") or {}
    toasts = [*asked.get("toasts", []), {"message": message, "kind": kind}]
    triggers["morket:toast"] = {"toasts": toasts}
    response.headers["HX-Trigger"] = json.dumps(triggers)
    return response
