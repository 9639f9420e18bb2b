"""The Stripe sandbox's hosted pages: Checkout (pay or decline, with a test card choice) and the
customer portal (cancel or renew, switch plan, change the card). Plain HTML forms, no script."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Response

# number -> (label, what it does at checkout, what it does on later charges)
TEST_CARDS: dict[str, tuple[str, str]] = {
    "4242424242424242": ("Visa •••• 4242", "always succeeds"),
    "4000000000000341": ("Visa •••• 0341", "pays the checkout, declines every later charge"),
    "4000000000009995": ("Visa •••• 9995", "declined: insufficient funds"),
    "4000000000000002": ("Visa •••• 0002", "declined: generic decline"),
}

# Payment methods that settle later (Checkout in payment mode only): IBAN -> (label, outcome).
DELAYED_METHODS: dict[str, tuple[str, str]] = {
    "DE89370400440532013000": ("SEPA Direct Debit •••• 3000", "settles later: paid"),
    "DE62370400440532013001": ("SEPA Direct Debit •••• 3001", "settles later: fails"),
}

_STYLE = """body{font:15px system-ui,sans-serif;background:#f4f5f7;color:#1f2430;margin:0}
main{max-width:520px;margin:48px auto;background:#fff;border:1px solid #d9dce3;border-radius:10px;padding:28px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 8px}.muted{color:#667085}
.tag{display:inline-block;background:#fff4d6;color:#6b4e00;border-radius:4px;padding:2px 8px;font-size:12px;
margin-bottom:14px}table{width:100%;border-collapse:collapse;margin:12px 0}
td{padding:6px 0;border-bottom:1px solid #eef0f3}td.amount{text-align:right}
tr.total td{font-weight:600;border-bottom:0}fieldset{border:1px solid #d9dce3;border-radius:8px;padding:10px 14px;
margin:14px 0}legend{padding:0 4px;color:#475467}label{display:block;padding:4px 0}
input[type=email]{font:inherit;width:100%;box-sizing:border-box;padding:7px 9px;border:1px solid #b6bac4;
border-radius:6px}.row{display:flex;gap:10px;margin-top:18px;flex-wrap:wrap}button{font:inherit;padding:8px 18px;
border-radius:6px;border:1px solid #b6bac4;background:#fff;cursor:pointer}
button.primary{background:#1f5fd1;border-color:#1f5fd1;color:#fff}
.error{background:#fdecec;color:#8a1c1c;border-radius:6px;padding:8px 12px;margin:12px 0}a{color:#1f5fd1}
.card{border:1px solid #eef0f3;border-radius:8px;padding:12px 14px;margin:10px 0}
select{font:inherit;padding:6px;max-width:100%}"""


def money(amount: int, currency: str) -> str:
    """An amount in the smallest unit as people read it ($49.00)."""
    symbol = {"usd": "$", "eur": "€", "gbp": "£"}.get(currency.lower())
    value = f"{amount / 100:,.2f}"
    return f"{symbol}{value}" if symbol else f"{value} {currency.upper()}"


def day(ts: int) -> str:
    """A timestamp as a date people read (7 Jan 2027)."""
    moment = datetime.fromtimestamp(ts, UTC)
    return f"{moment.day} {moment:%b %Y}"


def _page(title: str, body: str, status: int = 200) -> Response:
    text = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Stripe sandbox · {html.escape(title)}</title>
<style>{_STYLE}</style></head><body><main><span class="tag">Stripe sandbox (test mode, no real money)</span>
{body}</main></body></html>"""
    return Response(text, status=status, mimetype="text/html")


def _lines(items: list[dict[str, Any]], currency: str, total: int) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(i['description'])} × {i['quantity']}</td>"
        f"<td class=amount>{money(i['amount_total'], currency)}</td></tr>"
        for i in items
    )
    due = money(total, currency)
    return f'<table>{rows}<tr class="total"><td>Total due today</td><td class=amount>{due}</td></tr></table>'


def checkout_page(
    session: dict[str, Any], items: list[dict[str, Any]], *, email: str | None = None, error: str | None = None
) -> Response:
    """The hosted Checkout page of an open session: the items, an email, a test card, Pay and Decline."""
    subscription = session["mode"] == "subscription"
    email = email or session.get("customer_email") or ""
    methods = {**TEST_CARDS, **({} if subscription else DELAYED_METHODS)}
    cards = "".join(
        f'<label><input type="radio" name="card" value="{n}"{" checked" if i == 0 else ""}> '
        f'{html.escape(label)} <span class="muted">({html.escape(effect)})</span></label>'
        for i, (n, (label, effect)) in enumerate(methods.items())
    )
    cancel = session.get("cancel_url")
    back = f'<p><a href="{html.escape(cancel)}">← Back</a></p>' if cancel else ""
    problem = f'<div class="error" role="alert">{html.escape(error)}</div>' if error else ""
    verb = "Subscribe" if subscription else "Pay"
    body = f"""{back}<h1>{verb} to Morket</h1>
<p class="muted">{"Billed monthly until you cancel." if subscription else "One-time payment."}</p>
{_lines(items, session["currency"], session["amount_total"])}{problem}
<form method="post">
<label for="email">Email</label><input type="email" id="email" name="email" value="{html.escape(email)}">
<fieldset><legend>Test payment method</legend>{cards}</fieldset>
<div class="row"><button class="primary" type="submit" name="action" value="pay">{verb}</button>
<button type="submit" name="action" value="decline">Decline payment</button></div></form>"""
    return _page("Checkout", body, 402 if error else 200)


def closed_page(session: dict[str, Any]) -> Response:
    """What a finished or expired session's link shows."""
    state = "was paid" if session["status"] == "complete" else "has expired"
    return _page("Checkout", f"<h1>This checkout session {state}</h1>", 410 if session["status"] == "expired" else 200)


def portal_page(
    portal: dict[str, Any],
    customer: dict[str, Any],
    subscriptions: list[dict[str, Any]],
    plans: list[dict[str, Any]],
    invoices: list[dict[str, Any]],
    card: str,
    *,
    notice: str | None = None,
) -> Response:
    """The customer portal: each subscription with cancel / renew and a plan switch, the card, invoices."""
    blocks = []
    for sub in subscriptions:
        item = sub["items"]["data"][0]
        price = item["price"]
        ends = item["current_period_end"]
        state = sub["status"] + (" · cancels at period end" if sub["cancel_at_period_end"] else "")
        toggle = (
            '<button type="submit" name="action" value="renew">Renew plan</button>'
            if sub["cancel_at_period_end"]
            else '<button type="submit" name="action" value="cancel">Cancel plan</button>'
        )
        options = "".join(
            f'<option value="{p["id"]}"{" selected" if p["id"] == price["id"] else ""}>'
            f"{html.escape(p['nickname'] or p['id'])} ({money(p['unit_amount'], p['currency'])} / month)</option>"
            for p in plans
        )
        blocks.append(
            f"""<div class="card"><strong>{html.escape(price.get("nickname") or price["id"])}</strong>
<span class="muted">{money(price["unit_amount"], price["currency"])} / {price["recurring"]["interval"]} · {state}
· {"ends" if sub["cancel_at_period_end"] else "renews"} {day(ends)}</span>
<form method="post"><input type="hidden" name="subscription" value="{sub["id"]}"><div class="row">{toggle}
<select name="price" aria-label="Plan">{options}</select>
<button type="submit" name="action" value="switch">Switch plan</button></div></form></div>"""
        )
    subs = "".join(blocks) or '<p class="muted">No active subscription.</p>'
    cards = "".join(
        f'<option value="{n}"{" selected" if n == card else ""}>{html.escape(label)} ({html.escape(effect)})</option>'
        for n, (label, effect) in TEST_CARDS.items()
    )
    rows = "".join(
        f"<tr><td>{html.escape(i.get('number') or i['id'])}</td><td>{i['status']}</td>"
        f"<td class=amount>{money(i['amount_due'], i['currency'])}</td></tr>"
        for i in invoices
    )
    said = f'<div class="card" role="status">{html.escape(notice)}</div>' if notice else ""
    body = f"""<h1>Billing for {html.escape(customer.get("email") or customer["id"])}</h1>{said}
<h2>Plan</h2>{subs}
<h2>Payment method</h2><form method="post"><div class="row"><select name="card" aria-label="Card">{cards}</select>
<button type="submit" name="action" value="card">Use this card</button></div></form>
<h2>Invoices</h2><table>{rows or "<tr><td class=muted>None yet</td></tr>"}</table>
<p><a href="{html.escape(portal["return_url"] or "#")}">← Return to Morket</a></p>"""
    return _page("Billing", body)


def missing_page(what: str) -> Response:
    return _page("Not found", f"<h1>No such {html.escape(what)}</h1>", 404)
