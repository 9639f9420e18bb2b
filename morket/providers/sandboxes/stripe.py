"""Stripe as Morket uses it, under ``/stripe``: point the official client at it with
``stripe.StripeClient("sk_test_…", base_addresses={"api": "http://HOST:PORT/stripe"})``.

Keys: ``sk_test_…``, ``rk_test_…`` or ``sandbox-…`` (Bearer); anything else is a 401. Bodies are
form-encoded with bracket keys, answers are Stripe's JSON shapes (after Stripe's published
fixtures, API version ``2026-10-28.endive``: subscription periods live on the items,
``current_period_start/end``; an invoice names its subscription in ``parent.subscription_details``
and, as the fixtures still show, in ``subscription``; read ``sub["items"]``, since ``.items`` is
the dict method).

**API** (``/v1/…``): customers (create, retrieve, update, list by ``email``, delete: their
subscriptions end); products and prices (a fixed catalogue, plus create;
``GET /v1/prices?lookup_keys[]=…&active=true&expand[]=data.product``); checkout sessions (create
``mode=subscription|payment`` with ``line_items``, ``customer`` or ``customer_email``,
``client_reference_id``, ``success_url`` (``{CHECKOUT_SESSION_ID}`` is filled in), ``cancel_url``,
``metadata``, ``subscription_data[metadata]``, ``payment_intent_data[metadata]``; retrieve, list,
``/line_items``, ``/expire``; an open session expires a day after it was made, by its customer's
clock, with ``checkout.session.expired``); billing portal sessions; subscriptions (retrieve, list
by ``customer``/``status``, update ``cancel_at_period_end``, ``metadata``, ``items[0][price]`` with
``proration_behavior``: ``always_invoice`` invoices the prorations at once (the old price's unused
time credited, the new one's remaining time charged, both ``proration`` lines; paid as usual, or
paid as it is finalized when the total is not positive), ``none`` and ``create_prorations`` (no
pending items here) prorate nothing; ``DELETE`` cancels now); invoices (retrieve, list by
``customer``/``subscription``/``status``, ``/pay``); payment intents (create an off-session
charge of a customer's saved card: ``customer``, ``amount``, ``currency``, ``confirm=true``,
``off_session=true``, ``metadata``; a decline is a 402 ``card_error`` and
``payment_intent.payment_failed``) and charges (retrieve);
refunds (create by ``payment_intent`` or ``charge``, optional ``amount``; retrieve, list); disputes
(retrieve); events (retrieve, list by ``type`` with ``*`` wildcards or ``types[]``); test clocks
(``/v1/test_helpers/test_clocks`` create, retrieve, list, ``/advance``, delete). Lists are newest
first with ``limit`` (1-100), ``starting_after``/``ending_before`` and ``has_more``. ``expand[]``
replaces any id field (``subscription``, ``latest_invoice``, ``customer``, ``payment_intent``,
``data.product``, up to four levels). Unknown parameters, missing ones and unknown ids are
400/404 ``{"error": {"type", "code", "message", "param"}}``; a declined ``/pay`` is a 402
``card_error``. A POST with ``Idempotency-Key`` answers the first response again for the same key
and parameters (header ``Idempotent-Replayed: true``) and a 400 ``idempotency_error`` for other
parameters. The server-wide knobs apply too (``POST /_sandbox/config`` with ``"provider":
"stripe"``: latency, error rate, a rate limit answered 429 ``rate_limit``; default 50 requests a
second). Use the client's default HTTP client: ``stripe.HTTPXClient`` passes raw bytes as
``data=``, which httpx deprecates (an error under the test suite's warning filter).

**Catalogue** (price id = ``price_`` + lookup key; amounts in cents, USD): monthly plans
``morket_starter`` (4,900; metadata ``plan=starter``, ``monthly_credits=5000``), ``morket_pro``
(14,900; ``pro``, 20000), ``morket_team`` (49,900; ``team``, 100000); one-time credit packs
``morket_pack_5k`` (5,000; ``credits=5000``) and ``morket_pack_25k`` (20,000; ``credits=25000``).

**Hosted pages.** A session's ``url`` is ``/stripe/checkout/<id>``: the items, an email, a test
card (4242 always succeeds; 0341 pays the checkout and declines every later charge; 9995 and
0002 decline) and two buttons, Pay/Subscribe and "Decline payment". Paying completes the session
and redirects (303) to ``success_url``; a decline re-shows the page (402) with Stripe's message,
the session stays open, and in payment mode ``payment_intent.payment_failed`` is sent. Events of
a paid checkout: ``customer.created`` (when Checkout made the customer); for a subscription
``invoice.created``, ``customer.subscription.created``, ``invoice.finalized``; then
``charge.succeeded``, ``payment_intent.succeeded``, for a subscription ``invoice.paid`` and
``invoice.payment_succeeded``, and last ``checkout.session.completed`` (``payment_status=paid``;
``payment_intent`` set in payment mode, ``subscription`` and ``invoice`` in subscription mode).
The portal session's ``url`` is ``/stripe/portal/<id>``: cancel at period end or renew, switch
plan (prorated with ``always_invoice``, as a portal configured so: the proration invoice is paid at
once), change the test card, the invoices, and a link back to ``return_url``.

**Life cycle.** Customers made with ``test_clock=<clock id>`` live on that clock's time. Advancing
the clock past a period end renews each subscription: a new invoice (``subscription_cycle``)
paid with the customer's card (``invoice.paid``, ``customer.subscription.updated`` with the new
period) or failed (``invoice.payment_failed``, status ``past_due``); a failed invoice is retried
every ``retry_days`` (a success makes it ``active`` again) and ``grace_days`` after the first
failure the subscription is canceled (``customer.subscription.deleted``, reason
``payment_failed``). ``cancel_at_period_end`` ends it at the period end instead of renewing.
A refund sends ``charge.refunded`` and ``refund.created``; a full refund makes ``refunded`` true;
more than what is left is a 400 (``amount_too_large`` / ``charge_already_refunded``).

**Test controls** (``/_sandbox/stripe/…``, JSON bodies):

- ``POST config``: ``webhook_url`` (where events go; none: kept, not sent), ``webhook_secret``
  (default ``whsec_sandbox_morket``; a list signs with each, as during a rotation),
  ``retry_delays`` (seconds between attempts after a non-2xx, default ``[0.5, 2, 5]``),
  ``duplicates`` (extra copies of every event), ``grace_days`` (7), ``retry_days`` (3).
  ``GET state``: object counts and these settings. ``POST reset``.
- ``GET deliveries``: every attempt (event, type, attempt, status, error). ``POST
  webhooks/wait`` ``{"timeout": 5}``: until nothing is queued or in flight.
- ``POST webhooks/hold``: keep new events back; ``POST webhooks/release`` ``{"order":
  "created"|"reverse"|"shuffle", "seed": n}`` sends them. ``POST webhooks/shuffle``
  ``{"seed": n}``: the next batch (one call's events) goes out shuffled. ``POST
  events/<evt>/resend`` ``{"times": n}``: send an event again n times.
- ``POST checkout/<cs>/complete`` ``{"card", "email"}`` and ``checkout/<cs>/decline``: what the
  page's buttons do. ``POST checkout/<cs>/settle``: a payment by SEPA Direct Debit (offered in
  payment mode: IBAN ``DE89370400440532013000`` settles paid, ``DE62370400440532013001`` fails)
  completes the session with ``payment_status=unpaid`` (``charge.pending``,
  ``payment_intent.processing``, ``checkout.session.completed``); settling sends
  ``checkout.session.async_payment_succeeded`` (now ``paid``) or ``…_failed``.
  ``POST customers/<cus>/card`` ``{"card": "4000000000000341"}``: the card
  later charges use. ``POST charges/<ch>/dispute`` ``{"reason": "fraudulent"}``: sends
  ``charge.dispute.created``.

Webhooks are signed ``Stripe-Signature: t=…,v1=…`` (see ``stripe_hooks``); verify them with
``stripe.Webhook.construct_event(body, header, secret)``. Under ``make run`` (sandbox mode, no
``MORKET_STRIPE_SECRET_KEY`` of your own) events go to ``MORKET_STRIPE_SANDBOX_WEBHOOK_URL`` (the web
server's ``/billing/stripe/webhook``) signed with ``MORKET_STRIPE_WEBHOOK_SECRET``. State lives in
memory per process.
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import string
import threading
import time
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from morket.providers.sandboxes import stripe_pages
from morket.providers.sandboxes.server import Call, ProviderSandbox, json_response
from morket.providers.sandboxes.stripe_api import (
    API_VERSION,
    DEFAULT_CARD,
    KINDS,
    LIST_MAX,
    Params,
    StripeError,
    missing,
    new_id,
    no_such,
    parse_form,
)
from morket.providers.sandboxes.stripe_billing import BillingMixin
from morket.providers.sandboxes.stripe_hooks import DEFAULT_SECRET, WebhookDispatcher
from morket.providers.sandboxes.stripe_payments import PaymentsMixin

KEY_PREFIXES = ("sk_test_", "rk_test_", "sandbox-")
EXPAND_DEPTH = 4
IDEMPOTENCY_KEPT = 10_000  # keys remembered (Stripe keeps them 24 hours); the oldest go first
# Fields an ``expand[]`` path may walk through: checked before a call changes anything.
EXPANDABLE = frozenset({
    "customer", "subscription", "latest_invoice", "invoice", "payment_intent", "latest_charge", "charge", "product",
    "price", "default_price", "data", "items", "lines", "test_clock", "refunds", "payments", "payment", "parent",
    "subscription_details", "pricing", "price_details", "default_payment_method",
})  # fmt: skip

# product id, name, price id, lookup key, amount, interval (None: one-time), metadata
CATALOGUE = (
    ("prod_morket_starter", "Starter", "price_morket_starter", "morket_starter", 4900, "month",
     {"plan": "starter", "monthly_credits": "5000"}),
    ("prod_morket_pro", "Pro", "price_morket_pro", "morket_pro", 14900, "month",
     {"plan": "pro", "monthly_credits": "20000"}),
    ("prod_morket_team", "Team", "price_morket_team", "morket_team", 49900, "month",
     {"plan": "team", "monthly_credits": "100000"}),
    ("prod_morket_pack_5k", "5,000 credits", "price_morket_pack_5k", "morket_pack_5k", 5000, None,
     {"credits": "5000"}),
    ("prod_morket_pack_25k", "25,000 credits", "price_morket_pack_25k", "morket_pack_25k", 20000, None,
     {"credits": "25000"}),
)  # fmt: skip

Route = tuple[str, re.Pattern[str], str, set[str]]


def _route(method: str, pattern: str, op: str, allowed: str = "") -> Route:
    return (method, re.compile("^" + pattern + "$"), op, set(allowed.split()))


_PAGE = ("limit", "starting_after", "ending_before")
_L = " ".join(_PAGE)
ROUTES: list[Route] = [
    _route("POST", "/v1/customers", "customer_create", "email name description metadata test_clock phone"),
    _route("GET", "/v1/customers", "customer_list", f"email test_clock {_L}"),
    _route("GET", r"/v1/customers/(cus_\w+|[^/]+)", "customer_get"),
    _route("POST", r"/v1/customers/([^/]+)", "customer_update", "email name description metadata phone"),
    _route("DELETE", r"/v1/customers/([^/]+)", "customer_delete"),
    _route("POST", "/v1/products", "product_create", "name description metadata active id"),
    _route("GET", "/v1/products", "product_list", f"active {_L}"),
    _route("GET", r"/v1/products/([^/]+)", "product_get"),
    _route("POST", "/v1/prices", "price_create",
           "currency unit_amount product product_data recurring lookup_key metadata nickname active"),
    _route("GET", "/v1/prices", "price_list", f"active lookup_keys product type currency {_L}"),
    _route("GET", r"/v1/prices/([^/]+)", "price_get"),
    _route("POST", "/v1/checkout/sessions", "session_create",
           "mode line_items customer customer_email client_reference_id success_url cancel_url metadata "
           "subscription_data payment_intent_data expires_at payment_method_types allow_promotion_codes "
           "billing_address_collection locale customer_creation ui_mode"),
    _route("GET", "/v1/checkout/sessions", "session_list", f"customer payment_intent subscription status {_L}"),
    _route("GET", r"/v1/checkout/sessions/([^/]+)", "session_get"),
    _route("GET", r"/v1/checkout/sessions/([^/]+)/line_items", "session_line_items", _L),
    _route("POST", r"/v1/checkout/sessions/([^/]+)/expire", "session_expire"),
    _route("POST", "/v1/billing_portal/sessions", "portal_create",
           "customer return_url configuration locale flow_data"),
    _route("GET", "/v1/subscriptions", "subscription_list", f"customer status price test_clock {_L}"),
    _route("GET", r"/v1/subscriptions/([^/]+)", "subscription_get"),
    _route("POST", r"/v1/subscriptions/([^/]+)", "subscription_update",
           "cancel_at_period_end metadata items proration_behavior cancellation_details"),
    _route("DELETE", r"/v1/subscriptions/([^/]+)", "subscription_cancel", "invoice_now prorate cancellation_details"),
    _route("GET", "/v1/invoices", "invoice_list", f"customer subscription status {_L}"),
    _route("GET", r"/v1/invoices/([^/]+)", "invoice_get"),
    _route("POST", r"/v1/invoices/([^/]+)/pay", "invoice_pay", "payment_method off_session"),
    _route("POST", "/v1/payment_intents", "payment_intent_create",
           "amount currency customer confirm off_session payment_method description metadata"),
    _route("GET", r"/v1/payment_intents/([^/]+)", "payment_intent_get"),
    _route("GET", r"/v1/charges/([^/]+)", "charge_get"),
    _route("POST", "/v1/refunds", "refund_create", "charge payment_intent amount reason metadata"),
    _route("GET", "/v1/refunds", "refund_list", f"charge payment_intent {_L}"),
    _route("GET", r"/v1/refunds/([^/]+)", "refund_get"),
    _route("GET", r"/v1/disputes/([^/]+)", "dispute_get"),
    _route("GET", "/v1/events", "event_list", f"type types {_L}"),
    _route("GET", r"/v1/events/([^/]+)", "event_get"),
    _route("POST", "/v1/test_helpers/test_clocks", "clock_create", "frozen_time name"),
    _route("GET", "/v1/test_helpers/test_clocks", "clock_list", _L),
    _route("GET", r"/v1/test_helpers/test_clocks/([^/]+)", "clock_get"),
    _route("POST", r"/v1/test_helpers/test_clocks/([^/]+)/advance", "clock_advance", "frozen_time"),
    _route("DELETE", r"/v1/test_helpers/test_clocks/([^/]+)", "clock_delete"),
    _route("GET", r"/checkout/([^/]+)", "checkout_page"),
    _route("POST", r"/checkout/([^/]+)", "checkout_submit"),
    _route("GET", r"/portal/([^/]+)", "portal_page"),
    _route("POST", r"/portal/([^/]+)", "portal_submit"),
]  # fmt: skip
PAGES = {"checkout_page", "checkout_submit", "portal_page", "portal_submit"}
_ADMIN_ID = re.compile(r"^(events|checkout|customers|charges)/([^/]+)/(\w+)$")


class StripeSandbox(PaymentsMixin, BillingMixin, ProviderSandbox):
    name = "stripe"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.hooks = WebhookDispatcher()
        self.reset()

    # -- state --------------------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self.hooks.reset()
            # make run's sandbox mode names Morket's webhook endpoint and secret in the environment.
            self.hooks.configure({
                "webhook_url": os.environ.get("MORKET_STRIPE_SANDBOX_WEBHOOK_URL") or None,
                "webhook_secret": os.environ.get("MORKET_STRIPE_WEBHOOK_SECRET") or DEFAULT_SECRET,
            })  # fmt: skip
            self.objects: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS.values()}
            self.cards: dict[str, str] = {}  # customer -> test card number later charges use
            self.session_items: dict[str, list[dict[str, Any]]] = {}
            self.session_extra: dict[str, dict[str, Any]] = {}  # session -> metadata for its subscription / payment
            self.past_due_since: dict[str, int] = {}  # subscription -> time of its first failed renewal
            self.idempotent: dict[tuple[str, str], tuple[str, int, dict[str, Any], str]] = {}
            self.batch: list[dict[str, Any]] = []
            self.request_meta: dict[str, Any] = {"id": None, "idempotency_key": None}
            self.grace_days = 7.0
            self.retry_days = 3.0
            self.invoice_seq = 0
            for product, name, price, lookup, amount, interval, metadata in CATALOGUE:
                self._store(self._product(product, name, metadata, created=1_700_000_000))
                self._store(
                    self._price(price, product, amount, "usd", interval, lookup, name, metadata, created=1_700_000_000)
                )

    def _store(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.objects[obj["object"]][obj["id"]] = obj
        return obj

    def find(self, ident: str) -> dict[str, Any] | None:
        prefix = ident.split("_", 1)[0]
        kind = KINDS.get(prefix)
        return self.objects[kind].get(ident) if kind else None

    def _get(self, kind: str, ident: str, param: str = "id") -> dict[str, Any]:
        found = self.objects[kind].get(ident)
        if found is None:
            raise no_such(kind, ident, param)
        return found

    def _now(self, customer: str | None = None) -> int:
        cust = self.objects["customer"].get(customer or "")
        clock = self.objects["test_helpers.test_clock"].get((cust or {}).get("test_clock") or "")
        return clock["frozen_time"] if clock else int(time.time())

    def _emit(self, type_: str, obj: dict[str, Any], at: int | None = None, previous: dict | None = None) -> None:
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        event = {
            "id": new_id("evt", 24), "object": "event", "api_version": API_VERSION,
            "created": at or int(time.time()), "data": data, "livemode": False, "pending_webhooks": 1,
            "request": dict(self.request_meta), "type": type_,
        }  # fmt: skip
        self._store(event)
        self.batch.append(event)

    def _flush(self) -> None:
        batch, self.batch = self.batch, []
        self.hooks.submit(batch)

    # -- object shapes (after Stripe's fixtures) ------------------------------------------------

    @staticmethod
    def _product(ident: str, name: str, metadata: dict[str, str], created: int) -> dict[str, Any]:
        return {"id": ident, "object": "product", "active": True, "created": created, "default_price": None,
                "description": None, "images": [], "livemode": False, "marketing_features": [],
                "metadata": dict(metadata), "name": name, "shippable": None, "statement_descriptor": None,
                "tax_code": None, "type": "service", "unit_label": None, "updated": created, "url": None}  # fmt: skip

    @staticmethod
    def _price(ident: str, product: str, amount: int, currency: str, interval: str | None, lookup: str | None,
               nickname: str | None, metadata: dict[str, str], created: int) -> dict[str, Any]:  # fmt: skip
        recurring = (
            {"interval": interval, "interval_count": 1, "meter": None, "usage_type": "licensed",
             "trial_period_days": None} if interval else None
        )  # fmt: skip
        return {"id": ident, "object": "price", "active": True, "billing_scheme": "per_unit", "created": created,
                "currency": currency, "custom_unit_amount": None, "livemode": False, "lookup_key": lookup,
                "metadata": dict(metadata), "nickname": nickname, "product": product, "recurring": recurring,
                "tax_behavior": "unspecified", "tiers_mode": None, "transform_quantity": None,
                "type": "recurring" if interval else "one_time", "unit_amount": amount,
                "unit_amount_decimal": str(amount)}  # fmt: skip

    def _customer(self, email: str | None, name: str | None, metadata: dict[str, str], clock: str | None,
                  description: str | None = None, phone: str | None = None) -> dict[str, Any]:  # fmt: skip
        created = self.objects["test_helpers.test_clock"][clock]["frozen_time"] if clock else int(time.time())
        prefix = "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(8))
        return self._store({
            "id": new_id("cus"), "object": "customer", "address": None, "balance": 0, "created": created,
            "currency": None, "default_source": None, "delinquent": False, "description": description,
            "discount": None, "email": email, "invoice_prefix": prefix,
            "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None,
                                 "rendering_options": None},
            "livemode": False, "metadata": metadata, "name": name, "next_invoice_sequence": 1, "phone": phone,
            "preferred_locales": [], "shipping": None, "tax_exempt": "none", "test_clock": clock,
        })  # fmt: skip

    # -- routing, auth, errors ----------------------------------------------------------------

    def operation_for(self, method: str, route: str) -> str | None:
        found = self._match(method, route)
        return found[0][2] if found else None

    @staticmethod
    def _match(method: str, route: str) -> tuple[Route, tuple[str, ...]] | None:
        for entry in ROUTES:
            if entry[0] == method:
                m = entry[1].match(route)
                if m:
                    return entry, m.groups()
        return None

    def key_of(self, request: Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        return auth[7:].strip() or None if auth.startswith("Bearer ") else None

    def authenticate(self, operation: str, key: str | None) -> Response | None:
        if operation in PAGES:
            return None
        if not key:
            return self.error(
                401, "", "You did not provide an API key. You need to provide your API key in the Authorization "
                "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )  # fmt: skip
        if not key.startswith(KEY_PREFIXES):
            return self.error(401, "", f"Invalid API Key provided: {key[:8]}{'*' * 8}{key[-4:]}")
        return None

    def error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        type_ = "api_error" if status >= 500 else "invalid_request_error"
        body = StripeError(status, message, type_=type_, code=code or None).body
        return json_response({"error": body}, status, {**(headers or {}), "Request-Id": new_id("req")})

    def rate_limited(self, wait: float) -> Response:
        return self.error(429, "rate_limit", "Too many requests hit the API too quickly.", {"Retry-After": "1"})

    def failure(self, status: int) -> Response:
        return self.error(status, "", "An unknown error occurred (sandbox failure).")

    # -- control API ----------------------------------------------------------------------------

    def admin(self, action: str, request: Request) -> Response | None:
        body = request.get_json(silent=True) if request.method == "POST" else None
        body = body if isinstance(body, dict) else {}
        try:
            return self._admin(action, request.method, body)
        except (ValueError, TypeError) as exc:
            return json_response({"error": str(exc)}, 400)
        except StripeError as exc:
            return json_response({"error": exc.body}, exc.status)

    def _admin(self, action: str, method: str, body: dict[str, Any]) -> Response | None:
        if action == "reset" and method == "POST":
            self.reset()
            return json_response({"ok": True})
        if action == "config" and method == "POST":
            return json_response(self._configure(body))
        if action == "state" and method == "GET":
            return json_response(self._state())
        if action == "deliveries" and method == "GET":
            return json_response(self.hooks.deliveries())
        if action == "webhooks/wait" and method == "POST":
            idle = self.hooks.wait_idle(float(body.get("timeout", 5)))
            return json_response({"idle": idle, "deliveries": len(self.hooks.deliveries())})
        if action == "webhooks/hold" and method == "POST":
            self.hooks.hold()
            return json_response({"holding": True})
        if action == "webhooks/release" and method == "POST":
            released = self.hooks.release(str(body.get("order", "created")), body.get("seed"))
            return json_response({"released": released})
        if action == "webhooks/shuffle" and method == "POST":
            self.hooks.shuffle(body.get("seed"))
            return json_response({"shuffle_next": True})
        match = _ADMIN_ID.match(action)
        if not match or method != "POST":
            return None
        what, ident, verb = match.groups()
        with self.lock:
            answer = self._admin_object(what, ident, verb, body)
            self._flush()
        return answer

    def _admin_object(self, what: str, ident: str, verb: str, body: dict[str, Any]) -> Response | None:
        if (what, verb) == ("events", "resend"):
            times = int(body.get("times", 1))
            if not 1 <= times <= 100:
                raise ValueError("times must be 1..100")
            self.hooks.resend(self._get("event", ident), times)
            return json_response({"resent": times})
        if (what, verb) == ("checkout", "settle"):
            return json_response(self._settle(self._get("checkout.session", ident)))
        if what == "checkout" and verb in ("complete", "decline"):
            session = self._get("checkout.session", ident)
            if session["status"] != "open":
                raise ValueError(f"the session is {session['status']}")
            card = DEFAULT_CARD if verb == "complete" else "4000000000000002"
            error = self._submit_checkout(session, str(body.get("card") or card), body.get("email"))
            return json_response({"session": session, "declined": error}, 402 if error else 200)
        if (what, verb) == ("customers", "card"):
            self._get("customer", ident)
            card = str(body.get("card") or "")
            if card not in stripe_pages.TEST_CARDS:
                raise ValueError(f"card must be one of {', '.join(stripe_pages.TEST_CARDS)}")
            self.cards[ident] = card
            return json_response({"customer": ident, "card": card})
        if (what, verb) == ("charges", "dispute"):
            return json_response(self._dispute(self._get("charge", ident), str(body.get("reason") or "fraudulent")))
        return None

    def _configure(self, body: dict[str, Any]) -> dict[str, Any]:
        allowed = {"webhook_url", "webhook_secret", "retry_delays", "duplicates", "grace_days", "retry_days"}
        unknown = set(body) - allowed
        if unknown:
            raise ValueError(f"unknown setting {sorted(unknown)[0]!r}")
        hooks: dict[str, Any] = {}
        if "webhook_url" in body:
            hooks["webhook_url"] = None if body["webhook_url"] is None else str(body["webhook_url"])
        if "webhook_secret" in body:
            secret = body["webhook_secret"]
            hooks["webhook_secret"] = [str(x) for x in secret] if isinstance(secret, list) else str(secret)
            if not hooks["webhook_secret"]:
                raise ValueError("webhook_secret must not be empty")
        if "retry_delays" in body:
            hooks["retry_delays"] = [max(0.0, float(d)) for d in body["retry_delays"]]
        if "duplicates" in body:
            hooks["duplicates"] = max(0, int(body["duplicates"]))
        with self.lock:
            if "grace_days" in body:
                self.grace_days = max(0.0, float(body["grace_days"]))
            if "retry_days" in body:
                self.retry_days = max(0.01, float(body["retry_days"]))
            self.hooks.configure(hooks)
            return self._state()["settings"]

    def _state(self) -> dict[str, Any]:
        with self.lock:
            counts = {kind: len(objs) for kind, objs in self.objects.items()}
            settings = {**self.hooks.settings(), "grace_days": self.grace_days, "retry_days": self.retry_days}
        return {"objects": counts, "settings": settings}

    # -- requests -------------------------------------------------------------------------------

    def handle(self, call: Call) -> Response:
        request = call.request
        route = "/" + request.path.lstrip("/").partition("/")[2]
        (method, _, op, allowed), args = self._match(request.method, route)  # type: ignore[misc]
        if op in PAGES:
            with self.lock:
                try:
                    return getattr(self, f"_{op}")(request, *args)
                finally:
                    self._flush()
        request_id = new_id("req")
        key = request.headers.get("Idempotency-Key") if method == "POST" else None
        pairs = list((request.form if method == "POST" else request.args).items(multi=True))
        fingerprint = json.dumps(sorted(pairs))
        headers = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
        with self.lock:
            if key is not None:
                replay = self.idempotent.get((call.key, key))
                if replay is not None:
                    return self._replay(replay, route, fingerprint, key, headers)
            self.request_meta = {"id": request_id, "idempotency_key": key}
            try:
                params = Params(parse_form(pairs), allowed)
                expand = self._expand_paths(params)
                body = getattr(self, f"_{op}")(params, *args, request=request)
                body = self._expanded(body, expand)
                status = 200
            except StripeError as exc:
                status, body = exc.status, {"error": exc.body}
            finally:
                self.request_meta = {"id": None, "idempotency_key": None}
            self._flush()
            if key is not None:
                self.idempotent[(call.key, key)] = (f"{method} {route}", status, body, fingerprint)
                while len(self.idempotent) > IDEMPOTENCY_KEPT:
                    del self.idempotent[next(iter(self.idempotent))]
        if key is not None:
            headers["Idempotency-Key"] = key
        return json_response(body, status, headers)

    @staticmethod
    def _replay(replay: tuple, route: str, fingerprint: str, key: str, headers: dict[str, str]) -> Response:
        first_route, status, body, first_fingerprint = replay
        if first_route != f"POST {route}" or first_fingerprint != fingerprint:
            error = StripeError(
                400,
                "Keys for idempotent requests can only be used with the same parameters they were first used with. "
                f"Try using a key other than '{key}' if you meant to execute a different request.",
                type_="idempotency_error",
                code="idempotency_key_in_use" if first_route != f"POST {route}" else None,
            )
            return json_response({"error": error.body}, 400, headers)
        return json_response(body, status, {**headers, "Idempotent-Replayed": "true", "Idempotency-Key": key})

    @staticmethod
    def _expand_paths(params: Params) -> list[str]:
        paths = params.expand()
        for path in paths:
            parts = path.split(".")
            if len(parts) > EXPAND_DEPTH:
                raise StripeError(400, f"You cannot expand more than {EXPAND_DEPTH} levels of a property. "
                                  f"Property: {path}", param="expand")  # fmt: skip
            if not all(part in EXPANDABLE for part in parts):
                raise StripeError(400, f"This property cannot be expanded ({path}).", param="expand")
        return paths

    def _expanded(self, body: dict[str, Any], paths: list[str]) -> dict[str, Any]:
        if not paths:
            return body
        body = copy.deepcopy(body)
        for path in paths:
            self._expand(body, path.split("."), path)
        return body

    def _expand(self, obj: Any, parts: list[str], path: str) -> None:
        head, rest = parts[0], parts[1:]
        if not isinstance(obj, dict) or head not in obj:
            raise StripeError(400, f"This property cannot be expanded ({path}).", param="expand")
        value = obj[head]
        if isinstance(value, str):
            found = self.find(value)
            if found is None:
                raise StripeError(400, f"This property cannot be expanded ({path}).", param="expand")
            value = obj[head] = copy.deepcopy(found)
        elif not rest and not isinstance(value, dict | type(None)):
            raise StripeError(400, f"This property cannot be expanded ({path}).", param="expand")
        if rest and value is not None:
            for item in value if isinstance(value, list) else [value]:
                self._expand(item, rest, path)

    def _listing(
        self, params: Params, items: list[dict[str, Any]], url: str, keep: Callable[[dict], bool] = lambda _: True
    ) -> dict[str, Any]:
        """One page of ``items`` (oldest first in, newest first out) after Stripe's cursor rules."""
        limit = params.integer("limit") or 10
        if not 1 <= limit <= LIST_MAX:
            raise StripeError(400, "This value must be less than or equal to 100.", param="limit")
        rows = [copy.deepcopy(i) for i in reversed(items) if keep(i)]
        after, before = params.text("starting_after"), params.text("ending_before")
        ids = [r["id"] for r in rows]
        if after:
            if after not in ids and self.find(after) is None:
                raise no_such(KINDS.get(after.split("_")[0], "object"), after, "starting_after")
            rows = rows[ids.index(after) + 1 :] if after in ids else []
            page = rows[:limit]
        elif before:
            rows = rows[: ids.index(before)] if before in ids else []
            page = rows[-limit:]
        else:
            page = rows[:limit]
        return {"object": "list", "data": page, "has_more": len(rows) > limit, "url": url}

    # -- customers, products, prices ----------------------------------------------------------

    def _customer_create(self, p: Params, request: Request) -> dict[str, Any]:
        clock = p.text("test_clock")
        if clock:
            self._get("test_helpers.test_clock", clock, "test_clock")
        cust = self._customer(p.text("email"), p.text("name"), p.mapping("metadata"), clock, p.text("description"),
                              p.text("phone"))  # fmt: skip
        self._emit("customer.created", cust, self._now(cust["id"]))
        return cust

    def _customer_get(self, p: Params, ident: str, request: Request) -> dict[str, Any]:
        return self._get("customer", ident)

    def _customer_update(self, p: Params, ident: str, request: Request) -> dict[str, Any]:
        cust = self._get("customer", ident)
        previous = {}
        for field in ("email", "name", "description", "phone"):
            if field in p:
                previous[field] = cust[field]
                cust[field] = p.text(field)
        if "metadata" in p:
            previous["metadata"] = dict(cust["metadata"])
            cust["metadata"] = {**cust["metadata"], **p.mapping("metadata")}
            cust["metadata"] = {k: v for k, v in cust["metadata"].items() if v != ""}
        self._emit("customer.updated", cust, self._now(ident), previous)
        return cust

    def _customer_delete(self, p: Params, ident: str, request: Request) -> dict[str, Any]:
        cust = self._get("customer", ident)
        now = self._now(ident)
        for sub in list(self.objects["subscription"].values()):
            if sub["customer"] == ident and sub["status"] != "canceled":
                self._end(sub, now, "cancellation_requested")
        del self.objects["customer"][ident]
        self._emit("customer.deleted", cust, now)
        return {"id": ident, "object": "customer", "deleted": True}

    def _customer_list(self, p: Params, request: Request) -> dict[str, Any]:
        email, clock = p.text("email"), p.text("test_clock")
        return self._listing(
            p, list(self.objects["customer"].values()), "/v1/customers",
            lambda c: (not email or c["email"] == email) and (not clock or c["test_clock"] == clock),
        )  # fmt: skip

    def _product_create(self, p: Params, request: Request) -> dict[str, Any]:
        ident = p.text("id") or new_id("prod")
        if ident in self.objects["product"]:
            raise StripeError(400, f"Product already exists: {ident}", code="resource_already_exists", param="id")
        return self._store(self._product(ident, p.text("name", required=True), p.mapping("metadata"), int(time.time())))

    def _product_get(self, p: Params, ident: str, request: Request) -> dict[str, Any]:
        return self._get("product", ident)

    def _product_list(self, p: Params, request: Request) -> dict[str, Any]:
        active = p.boolean("active")
        return self._listing(p, list(self.objects["product"].values()), "/v1/products",
                             lambda x: active is None or x["active"] == active)  # fmt: skip

    def _price_create(self, p: Params, request: Request) -> dict[str, Any]:
        currency = (p.text("currency", required=True) or "").lower()
        amount = p.integer("unit_amount", required=True, minimum=0)
        product = p.text("product")
        if product:
            self._get("product", product, "product")
        else:
            data = p.get("product_data")
            if not isinstance(data, dict) or not data.get("name"):
                raise missing("product")
            product = self._store(self._product(new_id("prod"), data["name"], {}, int(time.time())))["id"]
        recurring = p.get("recurring")
        interval = recurring.get("interval") if isinstance(recurring, dict) else None
        if recurring is not None and interval not in ("day", "week", "month", "year"):
            raise StripeError(400, "Invalid recurring[interval]: must be one of day, week, month, or year",
                              param="recurring[interval]")  # fmt: skip
        lookup = p.text("lookup_key")
        if lookup and any(x["lookup_key"] == lookup for x in self.objects["price"].values()):
            raise StripeError(400, f"A price (`{lookup}`) already uses that lookup key.", param="lookup_key")
        price = self._price(new_id("price", 24), product, amount or 0, currency, interval, lookup,
                            p.text("nickname"), p.mapping("metadata"), int(time.time()))  # fmt: skip
        return self._store(price)

    def _price_get(self, p: Params, ident: str, request: Request) -> dict[str, Any]:
        return self._get("price", ident)

    def _price_list(self, p: Params, request: Request) -> dict[str, Any]:
        keys = p.get("lookup_keys")
        keys = [keys] if isinstance(keys, str) else keys
        active, kind, product = p.boolean("active"), p.text("type"), p.text("product")
        return self._listing(
            p, list(self.objects["price"].values()), "/v1/prices",
            lambda x: (keys is None or x["lookup_key"] in keys) and (active is None or x["active"] == active)
            and (not kind or x["type"] == kind) and (not product or x["product"] == product),
        )  # fmt: skip
