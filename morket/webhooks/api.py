"""Outbound webhooks over the JSON API: endpoints (the secret only in the create and rotate answers), deliveries.

Listing takes a manager's token or a manager-role API key; creating, changing, rotating and
redelivering need a person's access token, so that every change is audited to someone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from morket.api.routing import BIGINT_MAX, Principal, api_route, user_actor
from morket.api.schemas import DeletedOut, Out, Request
from morket.extensions import db
from morket.webhooks import service
from morket.webhooks.delivery import URL_MAX
from morket.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent

TAG = "Webhooks"
EventType = Literal[
    "row.created",
    "row.updated",
    "row.deleted",
    "enrichment.cell_completed",
    "run.finished",
    "import.finished",
    "export.finished",
    "crm.push_finished",
]
assert set(EventType.__args__) == set(service.EVENT_TYPES)


class EndpointCreate(Request):
    """An https URL to POST events to, and the events it wants."""

    url: str = Field(min_length=1, max_length=URL_MAX, examples=["https://example.com/webhooks/morket"])
    event_types: list[EventType] = Field(min_length=1, max_length=len(service.EVENT_TYPES))
    description: str | None = Field(default=None, max_length=service.DESCRIPTION_MAX)
    enabled: bool = True


class EndpointUpdate(Request):
    """Fields to change; those left out stay as they are."""

    url: str | None = Field(default=None, min_length=1, max_length=URL_MAX)
    event_types: list[EventType] | None = Field(default=None, min_length=1, max_length=len(service.EVENT_TYPES))
    description: str | None = Field(default=None, max_length=service.DESCRIPTION_MAX)
    enabled: bool | None = None


class EndpointOut(Out):
    """An endpoint, without its secret."""

    id: int
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    previous_secret_expires_at: datetime | None = Field(description="Until when the previous secret also signs.")
    created_at: datetime


class EndpointWithSecret(EndpointOut):
    """An endpoint and its signing secret: returned once, when created or rotated."""

    secret: str = Field(description="whsec_… — store it now; it is never returned again.")


class AttemptOut(Out):
    attempted_at: datetime
    ok: bool
    status_code: int | None
    latency_ms: int
    response_excerpt: str
    error: str | None


class DeliveryOut(Out):
    """One event for one endpoint, with every attempt."""

    id: int
    endpoint_id: int
    event_id: str = Field(description="The webhook-id header sent; the same on every retry and redelivery.")
    event_type: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: list[AttemptOut]
    next_attempt_at: datetime | None
    created_at: datetime


class DeliveryQuery(Request):
    limit: int = Field(default=50, ge=1, le=200)
    before_id: int | None = Field(default=None, ge=1, le=BIGINT_MAX)


def _out(endpoint: WebhookEndpoint) -> dict:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": list(endpoint.event_types),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "previous_secret_expires_at": endpoint.previous_expires_at,
        "created_at": endpoint.created_at,
    }


def _delivery_out(delivery: WebhookDelivery, event: WebhookEvent, attempts: list[WebhookAttempt]) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        endpoint_id=delivery.endpoint_id,
        event_id=event.uid,
        event_type=event.type,
        status=delivery.status,
        attempts=[AttemptOut.model_validate(a) for a in attempts],
        next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
        created_at=delivery.created_at,
    )


@api_route(
    "/webhooks",
    "GET",
    summary="List webhook endpoints",
    tag=TAG,
    permission="webhooks.view",
    response=list[EndpointOut],
)
def list_endpoints(principal: Principal) -> list[EndpointOut]:
    """The workspace's endpoints, without secrets."""
    return [EndpointOut(**_out(e)) for e in service.list_endpoints(principal.workspace)]


@api_route(
    "/webhooks",
    "POST",
    summary="Add a webhook endpoint",
    tag=TAG,
    permission="webhooks.manage",
    body=EndpointCreate,
    response=EndpointWithSecret,
    status=201,
)
def create_endpoint(principal: Principal, body: EndpointCreate) -> EndpointWithSecret:
    """Add an endpoint; the answer holds its signing secret, which is never shown again. Needs a user's token."""
    endpoint, secret = service.create_endpoint(
        principal.workspace,
        user_actor(principal),
        body.url,
        body.event_types,
        description=body.description,
        enabled=body.enabled,
    )
    db.session.commit()
    return EndpointWithSecret(**_out(endpoint), secret=secret)


@api_route(
    "/webhooks/<int:endpoint_id>",
    "GET",
    summary="Read a webhook endpoint",
    tag=TAG,
    permission="webhooks.view",
    response=EndpointOut,
)
def get_endpoint(principal: Principal, endpoint_id: int) -> EndpointOut:
    """One endpoint, without its secret."""
    return EndpointOut(**_out(service.get_endpoint_or_404(principal.workspace, endpoint_id)))


@api_route(
    "/webhooks/<int:endpoint_id>",
    "PATCH",
    summary="Change a webhook endpoint",
    tag=TAG,
    permission="webhooks.manage",
    body=EndpointUpdate,
    response=EndpointOut,
)
def update_endpoint(principal: Principal, endpoint_id: int, body: EndpointUpdate) -> EndpointOut:
    """Change the URL, events, description or enabled flag; enabling sends what waited, in order."""
    actor = user_actor(principal)
    endpoint = service.get_endpoint_or_404(principal.workspace, endpoint_id)
    service.update_endpoint(
        principal.workspace,
        actor,
        endpoint,
        url=body.url,
        event_types=body.event_types,
        description=body.description,
        enabled=body.enabled,
    )
    db.session.commit()
    return EndpointOut(**_out(endpoint))


@api_route(
    "/webhooks/<int:endpoint_id>",
    "DELETE",
    summary="Delete a webhook endpoint",
    tag=TAG,
    permission="webhooks.manage",
    response=DeletedOut,
)
def delete_endpoint(principal: Principal, endpoint_id: int) -> DeletedOut:
    """Delete the endpoint with its delivery log."""
    actor = user_actor(principal)
    service.delete_endpoint(principal.workspace, actor, service.get_endpoint_or_404(principal.workspace, endpoint_id))
    db.session.commit()
    return DeletedOut(id=endpoint_id)


@api_route(
    "/webhooks/<int:endpoint_id>/rotate-secret",
    "POST",
    summary="Rotate an endpoint's signing secret",
    tag=TAG,
    permission="webhooks.manage",
    response=EndpointWithSecret,
)
def rotate_secret(principal: Principal, endpoint_id: int) -> EndpointWithSecret:
    """A new secret, returned once; the previous one keeps signing beside it during the overlap."""
    actor = user_actor(principal)
    endpoint = service.get_endpoint_or_404(principal.workspace, endpoint_id)
    secret = service.rotate_secret(principal.workspace, actor, endpoint)
    db.session.commit()
    return EndpointWithSecret(**_out(endpoint), secret=secret)


@api_route(
    "/webhooks/<int:endpoint_id>/test",
    "POST",
    summary="Send a test event",
    limit=service.SEND_LIMIT,
    tag=TAG,
    permission="webhooks.manage",
    response=DeliveryOut,
    status=202,
)
def send_test(principal: Principal, endpoint_id: int) -> DeliveryOut:
    """Queue a ``webhook.test`` event to this endpoint; poll its deliveries for the outcome."""
    actor = user_actor(principal)
    endpoint = service.get_endpoint_or_404(principal.workspace, endpoint_id)
    delivery = service.send_test_event(principal.workspace, actor, endpoint)
    db.session.commit()
    event = db.session.get(WebhookEvent, delivery.event_id)
    return _delivery_out(delivery, event, [])


@api_route(
    "/webhooks/<int:endpoint_id>/deliveries",
    "GET",
    summary="List an endpoint's deliveries",
    tag=TAG,
    permission="webhooks.view",
    query=DeliveryQuery,
    response=list[DeliveryOut],
)
def list_deliveries(principal: Principal, endpoint_id: int, query: DeliveryQuery) -> list[DeliveryOut]:
    """Newest first, each with its attempts (status, latency, a short excerpt of the answer)."""
    endpoint = service.get_endpoint_or_404(principal.workspace, endpoint_id)
    rows = service.list_deliveries(principal.workspace, endpoint, query.limit, query.before_id)
    attempts = service.list_attempts(principal.workspace, [d.id for d, _ in rows])
    return [_delivery_out(d, e, attempts[d.id]) for d, e in rows]


@api_route(
    "/webhooks/deliveries/<int:delivery_id>/redeliver",
    "POST",
    summary="Redeliver an event",
    limit=service.SEND_LIMIT,
    tag=TAG,
    permission="webhooks.manage",
    response=DeliveryOut,
    status=202,
)
def redeliver(principal: Principal, delivery_id: int) -> DeliveryOut:
    """Send the delivery again with the same webhook-id (receivers that dedupe see one event)."""
    actor = user_actor(principal)
    found = service.get_delivery_or_404(principal.workspace, delivery_id)
    delivery = service.redeliver(principal.workspace, actor, found)
    db.session.commit()
    event = db.session.get(WebhookEvent, delivery.event_id)
    return _delivery_out(delivery, event, service.list_attempts(principal.workspace, [delivery.id])[delivery.id])
