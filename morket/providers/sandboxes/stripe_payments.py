"""The Stripe sandbox's payments: Checkout sessions and their hosted page, charges, payment
intents, refunds and disputes.

A mixin of ``StripeSandbox`` (``stripe.py``): it uses that class's store (``objects``), clock
(``_now``), events (``_emit``) and listing helpers, always under its lock.
"""

from __future__ import annotations

import copy
import secrets
from typing import Any

from werkzeug.wrappers import Request, Response

from morket.providers.sandboxes import stripe_pages
from morket.providers.sandboxes.stripe_api import (
    ALNUM,
    DAY,
    DECLINES,
    DEFAULT_CARD,
    LATER_DECLINES,
    Params,
    StripeError,
    missing,
    new_id,
)

SESSION_TTL = DAY  # an open Checkout session expires a day after it was made, as Stripe's do


class PaymentsMixin:
    objects: dict[str, dict[str, dict[str, Any]]]
    cards: dict[str, str]
    # -- checkout -------------------------------------------------------------------------------

    def _session_create(self, p: Params, request: Request) -> dict[str, Any]:
        mode = p.text("mode", required=True)
        if mode not in ("payment", "subscription"):
            raise StripeError(400, "Invalid mode: must be one of payment or subscription", param="mode")
        raw_items = p.get("line_items")
        if not raw_items:
            raise missing("line_items")
        if not isinstance(raw_items, list):
            raise StripeError(400, "Invalid array", param="line_items")
        items = [self._line_item(i, raw, mode) for i, raw in enumerate(raw_items)]
        if len({i["currency"] for i in items}) > 1:
            raise StripeError(400, "All prices must be in the same currency.", param="line_items")
        customer = p.text("customer")
        if customer:
            self._get("customer", customer, "customer")
        success = p.url("success_url", required=True)
        cancel = p.url("cancel_url")
        now = self._now(customer)
        expires = p.integer("expires_at") or now + SESSION_TTL
        ident = "cs_test_" + "".join(secrets.choice(ALNUM) for _ in range(58))
        total = sum(i["amount_total"] for i in items)
        sub_data = p.get("subscription_data") if isinstance(p.get("subscription_data"), dict) else {}
        pi_data = p.get("payment_intent_data") if isinstance(p.get("payment_intent_data"), dict) else {}
        session = {
            "id": ident, "object": "checkout.session", "amount_subtotal": total, "amount_total": total,
            "cancel_url": cancel, "client_reference_id": p.text("client_reference_id"),
            "created": now, "currency": items[0]["currency"], "customer": customer,
            "customer_creation": None if customer else "if_required", "customer_details": None,
            "customer_email": p.text("customer_email"), "expires_at": expires, "invoice": None, "livemode": False,
            "locale": p.text("locale"), "metadata": p.mapping("metadata"), "mode": mode, "payment_intent": None,
            "payment_method_types": ["card"], "payment_status": "unpaid", "status": "open", "subscription": None,
            "success_url": success, "ui_mode": "hosted",
            "url": f"{request.host_url}{self.name}/checkout/{ident}",
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        }  # fmt: skip
        self.session_items[ident] = items
        self.session_extra[ident] = {"subscription_metadata": dict(sub_data.get("metadata") or {}),
                                      "payment_metadata": dict(pi_data.get("metadata") or {})}  # fmt: skip
        return self._store(session)

    def _line_item(self, index: int, raw: Any, mode: str) -> dict[str, Any]:
        param = f"line_items[{index}]"
        if not isinstance(raw, dict) or not raw.get("price"):
            raise missing(f"{param}[price]")
        price = self.objects["price"].get(raw["price"])
        if price is None:
            raise StripeError(400, f"No such price: '{raw['price']}'", code="resource_missing", param=f"{param}[price]")
        if not price["active"]:
            raise StripeError(400, f"The price `{price['id']}` is not active.", param=f"{param}[price]")
        if mode == "subscription" and price["type"] != "recurring":
            raise StripeError(400, "You must provide at least one recurring price in `subscription` mode when "
                              "using prices.", param="line_items")  # fmt: skip
        if mode == "payment" and price["type"] == "recurring":
            raise StripeError(400, "You specified `payment` mode but passed a recurring price. Either switch to "
                              "`subscription` mode or use only one-time prices.", param="line_items")  # fmt: skip
        try:
            quantity = int(raw.get("quantity", "1"))
        except ValueError:
            raise StripeError(400, f"Invalid integer: {raw.get('quantity')}", param=f"{param}[quantity]") from None
        if quantity < 1:
            raise StripeError(400, "Quantity must be at least 1.", param=f"{param}[quantity]")
        amount = price["unit_amount"] * quantity
        product = self.objects["product"].get(price["product"]) or {}
        return {"id": new_id("li", 24), "object": "item", "amount_discount": 0, "amount_subtotal": amount,
                "amount_tax": 0, "amount_total": amount, "currency": price["currency"],
                "description": product.get("name") or price["id"], "price": copy.deepcopy(price),
                "quantity": quantity}  # fmt: skip

    def _session_get(self, p: Params, ident: str, request: Request) -> dict[str, Any]:
        self._open_session(ident)  # past its expires_at an open session reads as expired
        return self._get("checkout.session", ident)

    def _session_list(self, p: Params, request: Request) -> dict[str, Any]:
        want = {k: p.text(k) for k in ("customer", "payment_intent", "subscription", "status")}
        return self._listing(p, list(self.objects["checkout.session"].values()), "/v1/checkout/sessions",
                             lambda s: all(not v or s[k] == v for k, v in want.items()))  # fmt: skip

    def _session_line_items(self, p: Params, ident: str, request: Request) -> dict[str, Any]:
        self._get("checkout.session", ident)
        return self._listing(p, list(reversed(self.session_items[ident])), f"/v1/checkout/sessions/{ident}/line_items")

    def _session_expire(self, p: Params, ident: str, request: Request) -> dict[str, Any]:
        session = self._get("checkout.session", ident)
        if session["status"] != "open":
            raise StripeError(400, f"Only Checkout Sessions with a status in [\"open\"] can be expired. This "
                              f"Checkout Session has a status of \"{session['status']}\".")  # fmt: skip
        session["status"] = "expired"
        self._emit("checkout.session.expired", session, self._now(session["customer"]))
        return session

    def _open_session(self, ident: str) -> dict[str, Any] | None:
        session = self.objects["checkout.session"].get(ident)
        if session and session["status"] == "open" and self._now(session["customer"]) >= session["expires_at"]:
            session["status"] = "expired"
            self._emit("checkout.session.expired", session, self._now(session["customer"]))
        return session

    def _checkout_page(self, request: Request, ident: str) -> Response:
        session = self._open_session(ident)
        if session is None:
            return stripe_pages.missing_page("checkout session")
        if session["status"] != "open":
            return stripe_pages.closed_page(session)
        return stripe_pages.checkout_page(session, self.session_items[ident], email=self._email_of(session))

    def _email_of(self, session: dict[str, Any]) -> str | None:
        customer = self.objects["customer"].get(session["customer"] or "")
        return session["customer_email"] or (customer or {}).get("email")

    def _checkout_submit(self, request: Request, ident: str) -> Response:
        session = self._open_session(ident)
        if session is None:
            return stripe_pages.missing_page("checkout session")
        if session["status"] != "open":
            return stripe_pages.closed_page(session)
        action = request.form.get("action")
        card = request.form.get("card") or DEFAULT_CARD
        if action == "decline":
            card = "4000000000000002"
        elif action != "pay" or card not in stripe_pages.TEST_CARDS and card not in stripe_pages.DELAYED_METHODS:
            return stripe_pages.checkout_page(
                session, self.session_items[ident], email=self._email_of(session), error="Choose a test card and Pay."
            )
        error = self._submit_checkout(session, card, request.form.get("email"))
        if error:
            email = request.form.get("email") or self._email_of(session)
            return stripe_pages.checkout_page(session, self.session_items[ident], email=email, error=error)
        target = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
        return Response("", status=303, headers={"Location": target})

    def _submit_checkout(self, session: dict[str, Any], card: str, email: str | None) -> str | None:
        """Pay ``session`` with ``card``: None when paid, else the decline message (the session stays open)."""
        delayed = card in stripe_pages.DELAYED_METHODS
        if card not in stripe_pages.TEST_CARDS and not delayed:
            raise ValueError(
                f"card must be one of {', '.join([*stripe_pages.TEST_CARDS, *stripe_pages.DELAYED_METHODS])}"
            )
        if delayed and session["mode"] != "payment":
            return "SEPA Direct Debit is offered for one-time payments only."
        email = (email or "").strip() or session["customer_email"]
        extra = self.session_extra.get(session["id"], {})
        customer_id = session["customer"]
        decline = DECLINES.get(card)
        if decline:
            if session["mode"] == "payment":
                self._charge(customer_id, session["amount_total"], session["currency"], card, first=True,
                             metadata=extra.get("payment_metadata", {}), description=None)  # fmt: skip
            return decline[1]
        if customer_id is None:
            customer_id = self._customer(email or "buyer@example.com", None, {}, None)["id"]
            self._emit("customer.created", self.objects["customer"][customer_id], self._now(customer_id))
        if not delayed:
            self.cards[customer_id] = card
        customer = self.objects["customer"][customer_id]
        now = self._now(customer_id)
        session.update(
            customer=customer_id, status="complete", payment_status="unpaid" if delayed else "paid",
            customer_details={"address": None, "email": customer["email"] or email, "name": customer["name"],
                              "phone": None, "tax_exempt": "none", "tax_ids": []},
        )  # fmt: skip
        if session["mode"] == "payment":
            intent, _ = self._charge(
                customer_id, session["amount_total"], session["currency"], card, first=True,
                metadata=extra.get("payment_metadata", {}), description="Morket credits", pending=delayed,
            )  # fmt: skip
            session["payment_intent"] = intent["id"]
            if delayed:
                extra["delayed"] = card
        else:
            items = self.session_items[session["id"]]
            sub = self._subscribe(customer_id, items, extra.get("subscription_metadata", {}), now, card)
            session.update(subscription=sub["id"], invoice=sub["latest_invoice"])
        self._emit("checkout.session.completed", session, now)
        return None

    # -- payments -------------------------------------------------------------------------------

    def _settle(self, session: dict[str, Any]) -> dict[str, Any]:
        """Settle a checkout paid by a delayed method: paid or failed per the IBAN (events sent)."""
        extra = self.session_extra.get(session["id"], {})
        iban = extra.pop("delayed", None)
        if iban is None:
            raise ValueError("this session has no payment waiting to settle")
        intent = self.objects["payment_intent"][session["payment_intent"]]
        charge = self.objects["charge"][intent["latest_charge"]]
        now = self._now(session["customer"])
        ok = iban == "DE89370400440532013000"
        if ok:
            charge.update(status="succeeded", paid=True)
            intent.update(status="succeeded", amount_received=intent["amount"], payment_method=charge["payment_method"])
            session["payment_status"] = "paid"
        else:
            message = "The customer's account has insufficient funds to cover this payment."
            charge.update(status="failed", failure_code="insufficient_funds", failure_message=message)
            error = {"type": "card_error", "code": "insufficient_funds", "message": message, "charge": charge["id"]}
            intent.update(status="requires_payment_method", last_payment_error=error)
        self._emit("charge.succeeded" if ok else "charge.failed", charge, now)
        self._emit("payment_intent.succeeded" if ok else "payment_intent.payment_failed", intent, now)
        self._emit(f"checkout.session.async_payment_{'succeeded' if ok else 'failed'}", session, now)
        return session

    def _charge(self, customer: str | None, amount: int, currency: str, card: str, *, first: bool,
                metadata: dict[str, str], description: str | None,
                pending: bool = False) -> tuple[dict, dict]:  # fmt: skip
        """A payment intent and its charge, succeeded or declined per the card, or processing for a
        method that settles later (events sent)."""
        now = self._now(customer)
        decline = (DECLINES if first else LATER_DECLINES).get(card)
        intent_id, charge_id = new_id("pi", 24), new_id("ch", 24)
        method = ("pm_sepa_" if pending else "pm_card_") + card[-4:]
        charge = {
            "id": charge_id, "object": "charge", "amount": amount, "amount_captured": 0 if decline else amount,
            "amount_refunded": 0, "balance_transaction": None, "billing_details": {"email": None, "name": None},
            "captured": not decline, "created": now, "currency": currency, "customer": customer,
            "description": description, "disputed": False,
            "failure_code": "card_declined" if decline else None, "failure_message": decline[1] if decline else None,
            "livemode": False, "metadata": dict(metadata),
            "outcome": {"network_status": "declined_by_network" if decline else "approved_by_network",
                        "reason": decline[0] if decline else None,
                        "type": "issuer_declined" if decline else "authorized"},
            "paid": not decline, "payment_intent": intent_id, "payment_method": method,
            "payment_method_details": {"card": {"brand": "visa", "country": "US", "exp_month": 12, "exp_year": 2034,
                                                "funding": "credit", "last4": card[-4:]}, "type": "card"},
            "receipt_url": None, "refunded": False,
            "refunds": {"object": "list", "data": [], "has_more": False, "url": f"/v1/charges/{charge_id}/refunds"},
            "status": "failed" if decline else "succeeded",
        }  # fmt: skip
        error = None
        if decline:
            error = {"type": "card_error", "code": "card_declined", "decline_code": decline[0], "message": decline[1],
                     "charge": charge_id, "payment_method": {"id": method, "object": "payment_method"}}  # fmt: skip
        intent = {
            "id": intent_id, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
            "amount_received": 0 if decline else amount, "capture_method": "automatic",
            "client_secret": f"{intent_id}_secret_{new_id('x', 24)[2:]}", "confirmation_method": "automatic",
            "created": now, "currency": currency, "customer": customer, "description": description,
            "last_payment_error": error, "latest_charge": charge_id, "livemode": False, "metadata": dict(metadata),
            "payment_method": None if decline else method, "payment_method_types": ["card"],
            "status": "requires_payment_method" if decline else "succeeded",
        }  # fmt: skip
        if pending:
            sepa = {"bank_code": "37040044", "country": "DE", "last4": card[-4:]}
            charge.update(
                status="pending", paid=False, payment_method_details={"type": "sepa_debit", "sepa_debit": sepa}
            )
            intent.update(status="processing", amount_received=0, payment_method_types=["sepa_debit"])
        self._store(charge)
        self._store(intent)
        if pending:
            self._emit("charge.pending", charge, now)
            self._emit("payment_intent.processing", intent, now)
            return intent, charge
        self._emit("charge.failed" if decline else "charge.succeeded", charge, now)
        self._emit("payment_intent.payment_failed" if decline else "payment_intent.succeeded", intent, now)
        return intent, charge

    def _payment_intent_create(self, p: Params, request: Request) -> dict[str, Any]:
        """An off-session charge of the customer's saved card (the one its last checkout paid with)."""
        customer = p.text("customer", required=True)
        self._get("customer", customer, "customer")  # type: ignore[attr-defined]
        amount = p.integer("amount", required=True, minimum=50)
        currency = (p.text("currency", required=True) or "").lower()
        if p.boolean("confirm") is not True or p.boolean("off_session") is not True:
            raise StripeError(400, "This sandbox makes off-session charges only: pass confirm=true and "
                              "off_session=true.", param="confirm")  # fmt: skip
        card = self.cards.get(str(customer))
        if card is None:
            raise StripeError(400, "The customer has no saved payment method to charge off-session.",
                              code="resource_missing", param="customer")  # fmt: skip
        intent, _ = self._charge(str(customer), int(amount or 0), currency, card, first=False,
                                 metadata=p.mapping("metadata"), description=p.text("description"))  # fmt: skip
        if intent["status"] != "succeeded":
            error = intent["last_payment_error"]
            raise StripeError(402, error["message"], type_="card_error", code="card_declined",
                              decline_code=error["decline_code"])  # fmt: skip
        return intent

    def _payment_intent_get(self, p: Params, ident: str, request: Request) -> dict[str, Any]:
        return self._get("payment_intent", ident)

    def _charge_get(self, p: Params, ident: str, request: Request) -> dict[str, Any]:
        return self._get("charge", ident)

    def _refund_create(self, p: Params, request: Request) -> dict[str, Any]:
        charge_id, intent_id = p.text("charge"), p.text("payment_intent")
        if not charge_id and not intent_id:
            raise StripeError(400, "One of the following params should be provided for this request: "
                              "payment_intent or charge.", code="parameter_missing")  # fmt: skip
        if intent_id:
            intent = self._get("payment_intent", intent_id, "payment_intent")
            if intent["status"] != "succeeded":
                raise StripeError(400, f"This PaymentIntent ({intent_id}) does not have a successful charge to "
                                  "refund.", param="payment_intent")  # fmt: skip
            charge_id = charge_id or intent["latest_charge"]
        charge = self._get("charge", charge_id or "", "charge")
        left = charge["amount"] - charge["amount_refunded"]
        if charge["refunded"] or left <= 0:
            raise StripeError(400, f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
        amount = p.integer("amount", minimum=1)
        amount = left if amount is None else amount
        if amount > left:
            raise StripeError(
                400,
                f"Refund amount ({stripe_pages.money(amount, charge['currency'])}) is greater than unrefunded amount "
                f"on charge ({stripe_pages.money(left, charge['currency'])})",
                code="amount_too_large", param="amount",
            )  # fmt: skip
        reason = p.text("reason")
        if reason not in (None, "duplicate", "fraudulent", "requested_by_customer"):
            raise StripeError(400, "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer",
                              param="reason")  # fmt: skip
        now = self._now(charge["customer"])
        refund = self._store({
            "id": new_id("re", 24), "object": "refund", "amount": amount, "balance_transaction": None,
            "charge": charge["id"], "created": now, "currency": charge["currency"],
            "destination_details": {"card": {"type": "refund"}, "type": "card"}, "metadata": p.mapping("metadata"),
            "payment_intent": charge["payment_intent"], "reason": reason, "receipt_number": None,
            "status": "succeeded",
        })  # fmt: skip
        previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        charge["refunds"]["data"].insert(0, copy.deepcopy(refund))
        self._emit("charge.refunded", charge, now, previous)
        self._emit("refund.created", refund, now)
        return refund

    def _refund_get(self, p: Params, ident: str, request: Request) -> dict[str, Any]:
        return self._get("refund", ident)

    def _refund_list(self, p: Params, request: Request) -> dict[str, Any]:
        charge, intent = p.text("charge"), p.text("payment_intent")
        return self._listing(
            p, list(self.objects["refund"].values()), "/v1/refunds",
            lambda r: (not charge or r["charge"] == charge) and (not intent or r["payment_intent"] == intent),
        )  # fmt: skip

    def _dispute(self, charge: dict[str, Any], reason: str) -> dict[str, Any]:
        now = self._now(charge["customer"])
        dispute = self._store({
            "id": new_id("dp", 24), "object": "dispute", "amount": charge["amount"], "charge": charge["id"],
            "created": now, "currency": charge["currency"], "evidence_details": {"due_by": now + 7 * DAY,
            "has_evidence": False, "past_due": False, "submission_count": 0}, "is_charge_refundable": False,
            "livemode": False, "metadata": {}, "payment_intent": charge["payment_intent"], "reason": reason,
            "status": "needs_response",
        })  # fmt: skip
        charge["disputed"] = True
        self._emit("charge.dispute.created", dispute, now)
        return dispute

    def _dispute_get(self, p: Params, ident: str, request: Request) -> dict[str, Any]:
        return self._get("dispute", ident)
