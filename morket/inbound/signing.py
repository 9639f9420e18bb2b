"""Inbound sources' secrets and the proof a request gives of them.

A source's secret is encrypted with the workspace's key (``core.crypto``, the token as associated
data) and shown once. A request proves it by sending it (``Authorization: Bearer`` or
``X-Morket-Secret``, compared in constant time) or by a Standard Webhooks signature over the body;
signed message ids are remembered in Redis so a sender's retry is written once.
"""

from __future__ import annotations

import base64
import hmac
import os
from collections import OrderedDict
from collections.abc import Mapping
from functools import lru_cache

from flask import current_app
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from morket.core.crypto import DecryptionError, decrypt_secret, encrypt_secret, key_fingerprint
from morket.core.errors import MorketError, Unauthorized
from morket.inbound.models import InboundSource

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
MESSAGE_ID_TTL_S = 600


class Refused(MorketError):
    """A payload the source cannot take; nothing was written. ``status`` is the HTTP answer."""

    def __init__(self, status: int, code: str, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message, fields=fields)
        self.status = status
        self.code = code


def _master_key() -> bytes:
    return current_app.config["MORKET"]["MASTER_KEY"]


def _associated(token: str) -> str:
    return f"inbound:{token}"


def _new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(os.urandom(24)).decode("ascii")


def _seal(source: InboundSource, secret: str) -> None:
    master = _master_key()
    source.secret_ciphertext = encrypt_secret(master, source.workspace_id, _associated(source.token), secret)
    source.key_fingerprint = key_fingerprint(master)


# Decrypted secrets per process, keyed by the master key's fingerprint and all the ciphertext is bound to.
_SECRETS: OrderedDict[tuple[str, int, str, bytes], str] = OrderedDict()


@lru_cache(maxsize=4)
def _fingerprint(master: bytes) -> str:
    return key_fingerprint(master)


def source_secret(source: InboundSource) -> str:
    """Decrypt the source's secret (for checking a request; never shown after creation)."""
    master = _master_key()
    blob = bytes(source.secret_ciphertext)
    key = (_fingerprint(master), source.workspace_id, source.token, blob)
    found = _SECRETS.get(key)
    if found is not None:
        _SECRETS.move_to_end(key)
        return found
    try:
        secret = decrypt_secret(master, source.workspace_id, _associated(source.token), blob)
    except DecryptionError:
        raise Refused(503, "secret_unreadable", "This source's secret cannot be read; rotate it.") from None
    _SECRETS[key] = secret
    while len(_SECRETS) > 1024:
        _SECRETS.popitem(last=False)
    return secret


def authenticate(source: InboundSource, raw: bytes, headers: Mapping[str, str]) -> str | None:
    """Check the request proves the source's secret; return the Standard Webhooks message id, if signed.

    A signed request is checked as Standard Webhooks says (5 minutes' tolerance either way); an
    unsigned one must send the secret itself, unless the source demands signatures.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    secret = source_secret(source)
    if "webhook-signature" in lowered or "webhook-id" in lowered:
        try:
            Webhook(secret).verify(raw, lowered, json_parse=False)
        except WebhookVerificationError as exc:
            raise Unauthorized(f"The Standard Webhooks signature does not check out: {exc}.") from None
        return lowered.get("webhook-id", "")
    if source.require_signature:
        raise Unauthorized("This source takes only signed requests (webhook-id, webhook-timestamp, webhook-signature).")
    scheme, _, bearer = lowered.get("authorization", "").partition(" ")
    sent = lowered.get("x-morket-secret") or (bearer.strip() if scheme.lower() == "bearer" else "")
    if not sent:
        raise Unauthorized("Send the source's secret in X-Morket-Secret or Authorization: Bearer, or sign the request.")
    if not hmac.compare_digest(sent.encode(), secret.encode()):
        raise Unauthorized("The secret does not match this source.")
    return None


def _redis():
    return current_app.extensions["morket_redis"]


def seen_message(source_id: int, message_id: str) -> bool:
    """Whether a signed message with this id was already written (a sender's retry or a replay)."""
    return bool(message_id) and bool(_redis().exists(f"inbound:msg:{source_id}:{message_id[:200]}"))


def remember_message(source_id: int, message_id: str) -> None:
    """Remember a written message id for the signature's tolerance and then some (after the commit)."""
    if message_id:
        _redis().set(f"inbound:msg:{source_id}:{message_id[:200]}", 1, ex=MESSAGE_ID_TTL_S)
