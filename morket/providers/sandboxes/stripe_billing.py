"""The Stripe sandbox's billing life cycle: subscriptions, invoices, test clocks (renewals,
failed payments, dunning and cancellation), events and the customer portal.

A mixin of ``StripeSandbox`` (``stripe.py``): it uses that class's store (``objects``), clock
(``_now``), events (``_emit``), payments (``_charge``) and listing helpers, always under its lock.
"""

from __future__ import annotations

import copy
import time
from typing import Any
from urllib.parse import quote

from werkzeug.wrappers import Request, Response

from morket.providers.sandboxes import stripe_pages
from morket.providers.sandboxes.stripe_api import (
    DAY,
    DEFAULT_CARD,
    LATER_DECLINES,
    Params,
    StripeError,
    add_interval,
    missing,
    new_id,
    no_such,
)

LIVE = ("active", "past_due", "trialing")
PRORATIONS = ("create_prorations", "none", "always_invoice")


class BillingMixin:
    objects: dict[str, dict[str, dict[str, Any]]]
    cards: dict[str, str]
    past_due_since: dict[str, int]
    grace_days: float
    retry_days: float
    name: str

    # -- subscriptions --------------------------------------------------------------------------

    def _subscribe(self, customer: str, items: list[dict[str, Any]], metadata: dict[str, str], now: int,
                   card: str) -> dict[str, Any]:  # fmt: skip
        """A subscription to ``items`` from ``now``, its first invoice created and paid (events sent)."""
        sub_id = new_id("sub", 24)
        interval = items[0]["price"]["recurring"]["interval"]
        end = add_interval(now, interval)
        data = [
            {"id": new_id("si"), "object": "subscription_item", "created": now, "current_period_start": now,
             "current_period_end": end, "discounts": [], "metadata": {}, "price": copy.deepcopy(i["price"]),
             "quantity": i["quantity"], "subscription": sub_id, "tax_rates": []}
            for i in items
        ]  # fmt: skip
        sub = self._store({
            "id": sub_id, "object": "subscription", "application": None, "billing_cycle_anchor": now,
            "cancel_at": None, "cancel_at_period_end": False, "canceled_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "collection_method": "charge_automatically", "created": now, "currency": items[0]["currency"],
            "customer": customer, "days_until_due": None, "default_payment_method": "pm_card_" + card[-4:],
            "description": None, "discounts": [], "ended_at": None,
            "items": {"object": "list", "data": data, "has_more": False,
                      "url": f"/v1/subscription_items?subscription={sub_id}"},
            "latest_invoice": None, "livemode": False, "metadata": dict(metadata), "pending_update": None,
            "schedule": None, "start_date": now, "status": "active",
            "test_clock": self.objects["customer"][customer]["test_clock"], "trial_end": None, "trial_start": None,
        })  # fmt: skip
        invoice = self._invoice(sub, "subscription_create", now, now, now)
        sub["latest_invoice"] = invoice["id"]
        self._emit("customer.subscription.created", sub, now)
        self._finalize(invoice, now)
        self._collect(invoice, first=True)
        return sub

    def _subscription_get(self, p: Params, ident: str, request: Request) -> dict[str, Any]:
        return self._get("subscription", ident)

    def _subscription_list(self, p: Params, request: Request) -> dict[str, Any]:
        customer, status, price, clock = p.text("customer"), p.text("status"), p.text("price"), p.text("test_clock")
        if status not in (None, "all", "active", "past_due", "canceled", "unpaid", "incomplete", "trialing",
                          "incomplete_expired", "paused", "ended"):  # fmt: skip
            raise StripeError(400, f"Invalid status: {status}", param="status")

        def keep(s: dict[str, Any]) -> bool:
            if customer and s["customer"] != customer or clock and s["test_clock"] != clock:
                return False
            if price and all(i["price"]["id"] != price for i in s["items"]["data"]):
                return False
            if status in (None,):
                return s["status"] != "canceled"
            return status == "all" or s["status"] == status or status == "ended" and s["status"] == "canceled"

        return self._listing(p, list(self.objects["subscription"].values()), "/v1/subscriptions", keep)

    def _subscription_update(self, p: Params, ident: str, request: Request) -> dict[str, Any]:
        sub = self._get("subscription", ident)
        if sub["status"] == "canceled" and any(k not in ("metadata", "cancellation_details") for k in p.values):
            raise StripeError(400, "A canceled subscription can only update its cancellation_details and metadata.")
        previous: dict[str, Any] = {}
        flag = p.boolean("cancel_at_period_end")
        if flag is not None and flag != sub["cancel_at_period_end"]:
            previous.update(cancel_at_period_end=sub["cancel_at_period_end"], cancel_at=sub["cancel_at"])
            self._set_cancel_at_period_end(sub, flag)
        if "metadata" in p:
            previous["metadata"] = dict(sub["metadata"])
            merged = {**sub["metadata"], **p.mapping("metadata")}
            sub["metadata"] = {k: v for k, v in merged.items() if v != ""}
        items = p.get("items")
        behavior = p.text("proration_behavior") or "create_prorations"
        if behavior not in PRORATIONS:
            raise StripeError(400, f"Invalid proration_behavior: must be one of {', '.join(PRORATIONS)}",
                              param="proration_behavior")  # fmt: skip
        if items:
            if not isinstance(items, list) or not isinstance(items[0], dict) or not items[0].get("price"):
                raise missing("items[0][price]")
            previous["items"] = copy.deepcopy(sub["items"])
            self._switch_price(sub, items[0]["price"], "items[0][price]")
        if previous:
            now = self._now(sub["customer"])
            self._emit("customer.subscription.updated", sub, now, previous)
            if "items" in previous and behavior == "always_invoice":
                self._prorate(sub, previous["items"]["data"][0]["price"], now)
        return sub

    def _set_cancel_at_period_end(self, sub: dict[str, Any], flag: bool) -> None:
        sub["cancel_at_period_end"] = flag
        sub["cancel_at"] = sub["items"]["data"][0]["current_period_end"] if flag else None
        sub["canceled_at"] = self._now(sub["customer"]) if flag else None
        sub["cancellation_details"]["reason"] = "cancellation_requested" if flag else None

    def _switch_price(self, sub: dict[str, Any], price_id: str, param: str) -> None:
        price = self.objects["price"].get(price_id)
        if price is None:
            raise StripeError(400, f"No such price: '{price_id}'", code="resource_missing", param=param)
        if price["type"] != "recurring" or not price["active"]:
            raise StripeError(400, f"The price `{price_id}` is not an active recurring price.", param=param)
        sub["items"]["data"][0]["price"] = copy.deepcopy(price)

    def _subscription_cancel(self, p: Params, ident: str, request: Request) -> dict[str, Any]:
        sub = self._get("subscription", ident)
        if sub["status"] == "canceled":
            raise no_such("subscription", ident)
        self._end(sub, self._now(sub["customer"]), "cancellation_requested")
        return sub

    def _end(self, sub: dict[str, Any], at: int, reason: str) -> None:
        sub.update(status="canceled", canceled_at=sub["canceled_at"] or at, ended_at=at, cancel_at=None)
        sub["cancellation_details"]["reason"] = reason
        self.past_due_since.pop(sub["id"], None)
        self._emit("customer.subscription.deleted", sub, at)

    # -- invoices -------------------------------------------------------------------------------

    def _invoice(self, sub: dict[str, Any], reason: str, at: int, start: int, end: int,
                 adjust: Any = None) -> dict[str, Any]:  # fmt: skip
        """A draft invoice for the subscription's current period (``invoice.created`` sent);
        ``adjust(lines)`` may replace its lines (a proration's)."""
        customer = self.objects["customer"][sub["customer"]]
        number = f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
        customer["next_invoice_sequence"] += 1
        ident = new_id("in", 24)
        lines = []
        for item in sub["items"]["data"]:
            price = item["price"]
            amount = price["unit_amount"] * item["quantity"]
            product = self.objects["product"].get(price["product"]) or {}
            each = stripe_pages.money(price["unit_amount"], price["currency"])
            lines.append({
                "id": new_id("il", 24), "object": "line_item", "amount": amount, "currency": price["currency"],
                "description": f"{item['quantity']} × {product.get('name', price['id'])} (at {each} / "
                               f"{price['recurring']['interval']})",
                "discount_amounts": [], "discountable": True, "discounts": [], "invoice": ident, "livemode": False,
                "metadata": {}, "quantity": item["quantity"],
                "period": {"start": item["current_period_start"], "end": item["current_period_end"]},
                "parent": {"type": "subscription_item_details", "invoice_item_details": None,
                           "subscription_item_details": {"invoice_item": None, "proration": False,
                                                         "proration_details": {"credited_items": None},
                                                         "subscription": sub["id"], "subscription_item": item["id"]}},
                "pricing": {"type": "price_details",
                            "price_details": {"price": price["id"], "product": price["product"]},
                            "unit_amount_decimal": str(price["unit_amount"])},
                "subscription": sub["id"], "taxes": [],
            })  # fmt: skip
        if adjust is not None:
            lines = adjust(lines)
        total = sum(line["amount"] for line in lines)
        due = max(0, total)
        invoice = self._store({
            "id": ident, "object": "invoice", "account_country": "US", "account_name": "Morket (sandbox)",
            "amount_due": due, "amount_overpaid": 0, "amount_paid": 0, "amount_remaining": due,
            "amount_shipping": 0, "attempt_count": 0, "attempted": False, "auto_advance": True,
            "automatically_finalizes_at": None, "billing_reason": reason, "collection_method": "charge_automatically",
            "created": at, "currency": sub["currency"], "customer": customer["id"], "customer_email": customer["email"],
            "customer_name": customer["name"], "default_payment_method": None, "description": None, "discounts": [],
            "due_date": None, "effective_at": None, "ending_balance": None, "hosted_invoice_url": None,
            "invoice_pdf": None, "lines": {"object": "list", "data": lines, "has_more": False,
                                           "url": f"/v1/invoices/{ident}/lines"},
            "livemode": False, "metadata": {}, "next_payment_attempt": None, "number": number,
            "parent": {"type": "subscription_details", "quote_details": None,
                       "subscription_details": {"metadata": dict(sub["metadata"]), "subscription": sub["id"]}},
            "payments": {"object": "list", "data": [], "has_more": False,
                         "url": f"/v1/invoice_payments?invoice={ident}"},
            "period_end": end, "period_start": start, "starting_balance": 0, "status": "draft",
            "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None, "paid_at": None,
                                   "voided_at": None},
            "subscription": sub["id"], "subtotal": total, "subtotal_excluding_tax": total,
            "test_clock": customer["test_clock"], "total": total, "total_discount_amounts": [],
            "total_excluding_tax": total, "total_taxes": [], "webhooks_delivered_at": None,
        })  # fmt: skip
        self._emit("invoice.created", invoice, at)
        return invoice

    def _prorate(self, sub: dict[str, Any], old_price: dict[str, Any], at: int) -> None:
        """A plan switched mid-period, invoiced at once (``always_invoice``): a credit line for the
        old price's unused time and a line for the new price's remaining time, both ``proration``;
        the invoice is finalized and paid (its total charged, or nothing when it is not positive)."""
        item = sub["items"]["data"][0]
        new_price = item["price"]
        if new_price["id"] == old_price["id"]:
            return
        start, end = item["current_period_start"], item["current_period_end"]
        share = max(0.0, min(1.0, (end - at) / max(1, end - start)))

        def prorations(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
            found = []
            for price, sign, label in ((old_price, -1, "Unused time on"), (new_price, 1, "Remaining time on")):
                line = copy.deepcopy(lines[0])
                product = self.objects["product"].get(price["product"]) or {}
                amount = sign * round(price["unit_amount"] * item["quantity"] * share)
                name = product.get("name", price["id"])
                line.update(id=new_id("il", 24), amount=amount, description=f"{label} {name}",
                            period={"start": at, "end": end})  # fmt: skip
                line["parent"]["subscription_item_details"]["proration"] = True
                line["pricing"]["price_details"] = {"price": price["id"], "product": price["product"]}
                line["pricing"]["unit_amount_decimal"] = str(price["unit_amount"])
                found.append(line)
            return found

        invoice = self._invoice(sub, "subscription_update", at, at, at, adjust=prorations)
        sub["latest_invoice"] = invoice["id"]
        self._finalize(invoice, at)
        if invoice["amount_due"] > 0:
            self._collect(invoice, first=False)
            return
        invoice.update(status="paid")  # nothing to charge: paid as it is finalized
        invoice["status_transitions"]["paid_at"] = at
        self._emit("invoice.paid", invoice, at)
        self._emit("invoice.payment_succeeded", invoice, at)

    def _finalize(self, invoice: dict[str, Any], at: int) -> None:
        invoice.update(status="open", effective_at=at, ending_balance=0)
        invoice["status_transitions"]["finalized_at"] = at
        self._emit("invoice.finalized", invoice, at)

    def _collect(self, invoice: dict[str, Any], *, first: bool) -> bool:
        """Charge the customer's card for an open invoice: paid (``invoice.paid``) or failed."""
        customer = invoice["customer"]
        at = self._now(customer)
        card = self.cards.get(customer, DEFAULT_CARD)
        amount = invoice["amount_remaining"]
        intent, _ = self._charge(customer, amount, invoice["currency"], card, first=first, metadata={},
                                 description=f"Invoice {invoice['number']}")  # fmt: skip
        ok = intent["status"] == "succeeded"
        invoice["attempt_count"] += 1
        invoice["attempted"] = True
        invoice["payments"]["data"].insert(0, {
            "id": new_id("inpay", 24), "object": "invoice_payment", "amount_paid": amount if ok else None,
            "amount_requested": amount, "created": at, "currency": invoice["currency"], "invoice": invoice["id"],
            "is_default": True, "livemode": False,
            "payment": {"type": "payment_intent", "payment_intent": intent["id"]},
            "status": "paid" if ok else "canceled", "status_transitions": {"canceled_at": None if ok else at,
                                                                           "paid_at": at if ok else None},
        })  # fmt: skip
        if ok:
            invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0,
                           next_payment_attempt=None)  # fmt: skip
            invoice["status_transitions"]["paid_at"] = at
            self._emit("invoice.paid", invoice, at)
            self._emit("invoice.payment_succeeded", invoice, at)
        else:
            self._emit("invoice.payment_failed", invoice, at)
        return ok

    def _invoice_get(self, p: Params, ident: str, request: Request) -> dict[str, Any]:
        return self._get("invoice", ident)

    def _invoice_list(self, p: Params, request: Request) -> dict[str, Any]:
        want = {k: p.text(k) for k in ("customer", "subscription", "status")}
        return self._listing(p, list(self.objects["invoice"].values()), "/v1/invoices",
                             lambda i: all(not v or i[k] == v for k, v in want.items()))  # fmt: skip

    def _invoice_pay(self, p: Params, ident: str, request: Request) -> dict[str, Any]:
        invoice = self._get("invoice", ident)
        if invoice["status"] == "paid":
            raise StripeError(400, "Invoice is already paid", code="invoice_already_paid")
        if invoice["status"] != "open":
            raise StripeError(400, f"You can only pay an open invoice. This invoice is {invoice['status']}.",
                              code="invoice_not_editable")  # fmt: skip
        if not self._collect(invoice, first=False):
            code, message = LATER_DECLINES[self.cards.get(invoice["customer"], DEFAULT_CARD)]
            raise StripeError(402, message, type_="card_error", code="card_declined", decline_code=code)
        sub = self.objects["subscription"].get(invoice["subscription"] or "")
        if sub and sub["status"] == "past_due" and sub["latest_invoice"] == invoice["id"]:
            self._recovered(sub, self._now(sub["customer"]))
        return invoice

    # -- test clocks and renewals ---------------------------------------------------------------

    def _clock_create(self, p: Params, request: Request) -> dict[str, Any]:
        frozen = p.integer("frozen_time", required=True, minimum=0)
        now = int(time.time())
        return self._store({
            "id": new_id("clock", 24), "object": "test_helpers.test_clock", "created": now,
            "deletes_after": now + 30 * DAY, "frozen_time": frozen, "livemode": False, "name": p.text("name"),
            "status": "ready", "status_details": {},
        })  # fmt: skip

    def _clock_get(self, p: Params, ident: str, request: Request) -> dict[str, Any]:
        return self._get("test_helpers.test_clock", ident)

    def _clock_list(self, p: Params, request: Request) -> dict[str, Any]:
        return self._listing(p, list(self.objects["test_helpers.test_clock"].values()), "/v1/test_helpers/test_clocks")

    def _clock_delete(self, p: Params, ident: str, request: Request) -> dict[str, Any]:
        self._get("test_helpers.test_clock", ident)
        del self.objects["test_helpers.test_clock"][ident]
        return {"id": ident, "object": "test_helpers.test_clock", "deleted": True}

    def _clock_advance(self, p: Params, ident: str, request: Request) -> dict[str, Any]:
        clock = self._get("test_helpers.test_clock", ident)
        target = p.integer("frozen_time", required=True)
        if target <= clock["frozen_time"]:
            raise StripeError(400, "The frozen_time must be after the current frozen_time of the test clock.",
                              param="frozen_time")  # fmt: skip
        customers = {c["id"] for c in self.objects["customer"].values() if c["test_clock"] == ident}
        while True:
            due = [
                (at, order, kind, sub)
                for sub in self.objects["subscription"].values()
                if sub["customer"] in customers and sub["status"] in LIVE
                for at, order, kind in self._due(sub)
                if at <= target
            ]
            if not due:
                break
            at, _, kind, sub = min(due, key=lambda d: (d[0], d[1]))
            clock["frozen_time"] = at
            self._happen(kind, sub, at)
        clock["frozen_time"] = target
        self._emit("test_helpers.test_clock.ready", clock, target)
        return clock

    def _due(self, sub: dict[str, Any]) -> list[tuple[int, int, str]]:
        """What will happen to a live subscription next: (when, tie order, what)."""
        happenings = [(sub["items"]["data"][0]["current_period_end"], 2, "renew")]
        since = self.past_due_since.get(sub["id"])
        if since is not None:
            happenings.append((since + int(self.grace_days * DAY), 1, "cancel_unpaid"))
            invoice = self.objects["invoice"].get(sub["latest_invoice"] or "")
            if invoice and invoice["status"] == "open" and invoice["next_payment_attempt"]:
                happenings.append((invoice["next_payment_attempt"], 0, "retry"))
        return happenings

    def _happen(self, kind: str, sub: dict[str, Any], at: int) -> None:
        if kind == "cancel_unpaid":
            self._end(sub, at, "payment_failed")
            return
        if kind == "retry":
            invoice = self.objects["invoice"][sub["latest_invoice"]]
            if self._collect(invoice, first=False):
                self._recovered(sub, at)
            else:
                self._schedule_retry(invoice, sub, at)
            return
        if sub["cancel_at_period_end"]:
            self._end(sub, at, "cancellation_requested")
            return
        previous = {"items": copy.deepcopy(sub["items"]), "latest_invoice": sub["latest_invoice"]}
        for item in sub["items"]["data"]:
            item["current_period_start"] = item["current_period_end"]
            item["current_period_end"] = add_interval(
                item["current_period_end"], item["price"]["recurring"]["interval"]
            )
        start = previous["items"]["data"][0]["current_period_start"]
        invoice = self._invoice(sub, "subscription_cycle", at, start, at)
        sub["latest_invoice"] = invoice["id"]
        self._emit("customer.subscription.updated", sub, at, previous)
        self._finalize(invoice, at)
        if self._collect(invoice, first=False):
            return
        if sub["status"] == "active":
            sub["status"] = "past_due"
            self.past_due_since[sub["id"]] = at
            self._emit("customer.subscription.updated", sub, at, {"status": "active"})
        self._schedule_retry(invoice, sub, at)

    def _schedule_retry(self, invoice: dict[str, Any], sub: dict[str, Any], at: int) -> None:
        nxt = at + int(self.retry_days * DAY)
        ends = self.past_due_since.get(sub["id"], at) + int(self.grace_days * DAY)
        invoice["next_payment_attempt"] = nxt if nxt < ends else None

    def _recovered(self, sub: dict[str, Any], at: int) -> None:
        sub["status"] = "active"
        self.past_due_since.pop(sub["id"], None)
        self._emit("customer.subscription.updated", sub, at, {"status": "past_due"})

    # -- events -----------------------------------------------------------------------------------

    def _event_get(self, p: Params, ident: str, request: Request) -> dict[str, Any]:
        return self._get("event", ident)

    def _event_list(self, p: Params, request: Request) -> dict[str, Any]:
        one = p.text("type")
        many = p.get("types")
        patterns = [one] if one else ([many] if isinstance(many, str) else list(many or []))

        def keep(event: dict[str, Any]) -> bool:
            kind = event["type"]
            return not patterns or any(
                kind.startswith(pat[:-1]) if pat.endswith("*") else kind == pat for pat in patterns
            )

        return self._listing(p, list(self.objects["event"].values()), "/v1/events", keep)

    # -- the customer portal ---------------------------------------------------------------------

    def _portal_create(self, p: Params, request: Request) -> dict[str, Any]:
        customer = p.text("customer", required=True)
        self._get("customer", customer or "", "customer")
        ident = new_id("bps", 24)
        return self._store({
            "id": ident, "object": "billing_portal.session", "configuration": "bpc_sandbox",
            "created": self._now(customer), "customer": customer, "flow": None, "livemode": False,
            "locale": p.text("locale"), "on_behalf_of": None, "return_url": p.url("return_url"),
            "url": f"{request.host_url}{self.name}/portal/{ident}",
        })  # fmt: skip

    def _portal_page(self, request: Request, ident: str) -> Response:
        portal = self.objects["billing_portal.session"].get(ident)
        customer = self.objects["customer"].get(portal["customer"]) if portal else None
        if portal is None or customer is None:
            return stripe_pages.missing_page("portal session")
        subs = [s for s in reversed(self.objects["subscription"].values())
                if s["customer"] == customer["id"] and s["status"] in LIVE]  # fmt: skip
        plans = [x for x in self.objects["price"].values() if x["type"] == "recurring" and x["active"]]
        invoices = [i for i in reversed(self.objects["invoice"].values()) if i["customer"] == customer["id"]]
        card = self.cards.get(customer["id"], DEFAULT_CARD)
        return stripe_pages.portal_page(portal, customer, subs, plans, invoices, card,
                                        notice=request.args.get("notice"))  # fmt: skip

    def _portal_submit(self, request: Request, ident: str) -> Response:
        portal = self.objects["billing_portal.session"].get(ident)
        if portal is None:
            return stripe_pages.missing_page("portal session")
        customer = portal["customer"]
        action = request.form.get("action")
        notice = "Nothing changed."
        if action == "card" and request.form.get("card") in stripe_pages.TEST_CARDS:
            self.cards[customer] = request.form["card"]
            notice = "Card updated."
        elif action in ("cancel", "renew", "switch"):
            sub = self.objects["subscription"].get(request.form.get("subscription", ""))
            if sub is None or sub["customer"] != customer or sub["status"] not in LIVE:
                return stripe_pages.missing_page("subscription")
            previous = {"cancel_at_period_end": sub["cancel_at_period_end"], "items": copy.deepcopy(sub["items"])}
            try:
                if action == "switch":
                    self._switch_price(sub, request.form.get("price", ""), "price")
                else:
                    self._set_cancel_at_period_end(sub, action == "cancel")
            except StripeError as exc:
                notice = str(exc)
            else:
                now = self._now(customer)
                self._emit("customer.subscription.updated", sub, now, previous)
                if action == "switch":  # the portal's configuration here: proration_behavior=always_invoice
                    self._prorate(sub, previous["items"]["data"][0]["price"], now)
                notice = {"cancel": "Your plan will be canceled at the end of the period.",
                          "renew": "Your plan will renew.", "switch": "Plan changed."}[action]  # fmt: skip
        location = f"{request.host_url}{self.name}/portal/{ident}?notice={quote(notice)}"
        return Response("", status=303, headers={"Location": location})
