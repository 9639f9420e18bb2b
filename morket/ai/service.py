"""Model endpoints: store a workspace's endpoints with their keys encrypted, and resolve the one a call uses.

A key enters through ``create_endpoint`` and leaves only through ``resolve_endpoint`` (as the
``llm.Endpoint`` the call path takes), never to a page, an API answer or a log. ``resolve_endpoint``
with no endpoint id gives the platform's default endpoint (the operator's MORKET_AI_* settings),
whose answers are charged in platform credits (``usage_charge``); a workspace's own endpoint costs
no platform credits and its use is still recorded (a zero "usage" entry, key source ``own``).

Where an endpoint may point: http(s) only, and the host must pass the SSRF guard
(``morket.core.urlsafety.check_url``: no private, loopback or link-local address), unless it is
named in MORKET_AI_ENDPOINT_ALLOWLIST, or it is a loopback address and MORKET_AI_ALLOW_LOOPBACK
is on (development, sandbox mode and tests: a local Ollama or the sandbox LLM). The URL is checked
when the endpoint is saved and again each time it is resolved for use.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from morket.ai import llm
from morket.ai.models import AiEndpoint
from morket.core.audit import record_audit
from morket.core.crypto import DecryptionError, decrypt_secret, encrypt_secret, key_fingerprint
from morket.core.errors import Conflict, Forbidden, MorketError, NotFound, ValidationFailed
from morket.core.roles import can
from morket.core.rotation import Move, register_resealer, reseal_batch
from morket.core.urlsafety import UnsafeUrl, check_url
from morket.extensions import db

if TYPE_CHECKING:
    from morket.accounts.models import User
    from morket.workspaces.models import Workspace

KIND_LABELS: dict[str, str] = {"openai": "OpenAI-compatible", "anthropic": "Anthropic"}
DEFAULT_BASE_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}
NAME_MAX = 80
URL_MAX = 500
MODEL_MAX = 120
RPM_MAX = 1_000_000  # requests a minute an endpoint may be given
TPM_MAX = 1_000_000_000  # tokens a minute
MODELS_MAX = 20
SECRET_MIN = 8
SECRET_MAX = 500
HINT_MIN_LENGTH = 12
HINT_CHARS = 4
PLATFORM_NAME = "Morket default"
TEST_SYSTEM = "You are a connection check. Answer in at most five words."
TEST_PROMPT = "Say hello."
TEST_MAX_TOKENS = 16
TEST_TIMEOUT = 20.0


class EndpointUnreadable(MorketError):
    """A stored key does not decrypt with the current master key."""

    status = 409
    code = "endpoint_unreadable"


@dataclass(frozen=True)
class ModelChoice:
    """One model a picker offers: on the platform default (``endpoint_id`` None) or an endpoint."""

    endpoint_id: int | None
    endpoint_name: str
    kind: str
    model: str
    platform: bool

    @property
    def label(self) -> str:
        return f"{self.model} ({self.endpoint_name})"


def _settings() -> dict:
    return current_app.config["MORKET"]


def _master_key() -> bytes:
    return _settings()["MASTER_KEY"]


def sealed_name(endpoint_id: int) -> str:
    """What a stored key is bound to besides its workspace: this endpoint (a copied ciphertext fails)."""
    return f"ai-endpoint:{int(endpoint_id)}"


def _require(workspace: Workspace, actor: User | None, permission: str = "ai.manage") -> None:
    from morket.workspaces.service import get_membership

    membership = get_membership(workspace, actor) if actor is not None else None
    if membership is None:
        raise NotFound("Workspace not found.")
    if not can(membership.role, permission):
        raise Forbidden("Your role in this workspace does not allow this.")


# -- checks -----------------------------------------------------------------------------------


def _text(value: object, field: str, label: str, limit: int, *, required: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationFailed(f"{label} must be text.", fields={field: ["Enter text."]})
    value = " ".join(value.split())
    if required and not value:
        raise ValidationFailed(f"Enter {label.lower()}.", fields={field: [f"Enter {label.lower()}."]})
    if len(value) > limit:
        raise ValidationFailed(
            f"{label} is longer than {limit} characters.", fields={field: [f"Use at most {limit} characters."]}
        )
    if any(not ch.isprintable() for ch in value):
        raise ValidationFailed(f"{label} has control characters.", fields={field: ["Remove control characters."]})
    return value


def _clean_secret(secret: object) -> str:
    if not isinstance(secret, str) or not secret.strip():
        raise ValidationFailed("Enter the endpoint's API key.", fields={"api_key": ["Enter the API key."]})
    secret = secret.strip()
    if any(ch.isspace() or not ch.isprintable() for ch in secret):
        raise ValidationFailed(
            "An API key has no spaces, line breaks or control characters; paste it again.",
            fields={"api_key": ["An API key has no spaces, line breaks or control characters."]},
        )
    if not SECRET_MIN <= len(secret) <= SECRET_MAX:
        raise ValidationFailed(
            f"An API key has {SECRET_MIN} to {SECRET_MAX} characters; paste the whole key.",
            fields={"api_key": [f"Use {SECRET_MIN} to {SECRET_MAX} characters."]},
        )
    return secret


def _clean_models(models: object, default: str) -> list[str]:
    if models is None or models == "":
        return []
    if isinstance(models, str):
        models = [m for m in models.replace("\n", ",").split(",")]
    if not isinstance(models, list):
        raise ValidationFailed("Other models must be a list of names.", fields={"models": ["Enter model names."]})
    found: list[str] = []
    for raw in models:
        name = _text(raw, "models", "A model name", MODEL_MAX, required=False)
        if name and name != default and name not in found:
            found.append(name)
    if len(found) > MODELS_MAX:
        raise ValidationFailed(
            f"Name at most {MODELS_MAX} other models.", fields={"models": [f"Use at most {MODELS_MAX} models."]}
        )
    return found


def _loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: object) -> str:
    """The base URL, cleaned, or ValidationFailed saying why it may not be used."""
    url = _text(url, "base_url", "The base URL", URL_MAX)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed(
            "The base URL must start with https:// (or http://) and name a host.",
            fields={"base_url": ["Enter a URL like https://api.openai.com/v1."]},
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValidationFailed(
            "The base URL may not carry a query, a fragment or a user name.",
            fields={"base_url": ["Remove the part after ? or #, and any user:password@."]},
        )
    if not (_settings().get("AI_ALLOW_LOOPBACK") and _loopback(parts.hostname)):
        try:
            check_url(url, allowlist=_settings().get("AI_ENDPOINT_ALLOWLIST") or ())
        except UnsafeUrl as exc:
            raise ValidationFailed(exc.message, fields={"base_url": [exc.message]}) from None
    return url.rstrip("/")


# -- endpoints --------------------------------------------------------------------------------


def create_endpoint(
    workspace: Workspace,
    actor: User,
    *,
    name: object,
    kind: object,
    base_url: object,
    api_key: object,
    model: object,
    models: object = None,
) -> AiEndpoint:
    """Store a model endpoint with its key encrypted; the key is never shown again (only its last 4)."""
    _require(workspace, actor)
    name = _text(name, "name", "The name", NAME_MAX)
    if not isinstance(kind, str) or kind not in KIND_LABELS:
        raise ValidationFailed(
            "Choose the endpoint's API: openai or anthropic.", fields={"kind": ["Choose openai or anthropic."]}
        )
    base_url = check_base_url(base_url or DEFAULT_BASE_URLS[str(kind)])
    model = _text(model, "model", "The model", MODEL_MAX)
    others = _clean_models(models, model)
    secret = _clean_secret(api_key)
    if db.session.scalar(select(AiEndpoint.id).where(AiEndpoint.workspace_id == workspace.id, AiEndpoint.name == name)):
        raise Conflict(f"This workspace already has a model endpoint named {name!r}.")
    master = _master_key()
    endpoint = AiEndpoint(
        workspace_id=workspace.id,
        name=name,
        kind=kind,
        base_url=base_url,
        model=model,
        models=others,
        ciphertext=b"",
        key_fingerprint=key_fingerprint(master),
        hint=secret[-HINT_CHARS:] if len(secret) >= HINT_MIN_LENGTH else "",
        created_by_id=actor.id,
    )
    try:
        with db.session.begin_nested():
            db.session.add(endpoint)
            db.session.flush()
            endpoint.ciphertext = encrypt_secret(master, workspace.id, sealed_name(endpoint.id), secret)
            db.session.flush()
    except IntegrityError:
        raise Conflict(f"This workspace already has a model endpoint named {name!r}.") from None
    record_audit(
        workspace, actor, "ai_endpoint.created", name,
        endpoint_id=endpoint.id, kind=kind, base_url=base_url, model=model, masked=endpoint.masked,
    )  # fmt: skip
    db.session.flush()
    return endpoint


def list_endpoints(workspace: Workspace) -> list[AiEndpoint]:
    return list(
        db.session.scalars(
            select(AiEndpoint).where(AiEndpoint.workspace_id == workspace.id).order_by(AiEndpoint.name, AiEndpoint.id)
        )
    )


def get_endpoint_or_404(workspace: Workspace, endpoint_id: int) -> AiEndpoint:
    endpoint = db.session.scalar(
        select(AiEndpoint).where(AiEndpoint.id == endpoint_id, AiEndpoint.workspace_id == workspace.id)
    )
    if endpoint is None:
        raise NotFound("That model endpoint is not in this workspace.")
    return endpoint


def delete_endpoint(workspace: Workspace, actor: User, endpoint_id: int) -> None:
    _require(workspace, actor)
    endpoint = get_endpoint_or_404(workspace, endpoint_id)
    record_audit(
        workspace, actor, "ai_endpoint.deleted", endpoint.name,
        endpoint_id=endpoint.id, kind=endpoint.kind, model=endpoint.model, masked=endpoint.masked,
    )  # fmt: skip
    db.session.delete(endpoint)
    db.session.flush()


def _limit(value: object, field: str, label: str, most: int) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number: int | None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    else:
        try:
            number = int(str(value).strip().replace(",", ""))
        except ValueError:
            number = None
    if number is None or not 1 <= number <= most:
        message = f"{label} must be a whole number from 1 to {most:,}, or empty for Morket's default."
        raise ValidationFailed(message, fields={field: [message]})
    return number


def set_limits(
    workspace: Workspace, actor: User, endpoint_id: int, *, requests_per_minute: object, tokens_per_minute: object
) -> AiEndpoint:
    """Set the requests and tokens a minute AI runs may send to the endpoint (empty: the defaults)."""
    _require(workspace, actor)
    endpoint = get_endpoint_or_404(workspace, endpoint_id)
    rpm = _limit(requests_per_minute, "requests_per_minute", "Requests a minute", RPM_MAX)
    tpm = _limit(tokens_per_minute, "tokens_per_minute", "Tokens a minute", TPM_MAX)
    endpoint.requests_per_minute, endpoint.tokens_per_minute = rpm, tpm
    record_audit(workspace, actor, "ai_endpoint.limits_set", endpoint.name, endpoint_id=endpoint.id,
                 requests_per_minute=rpm, tokens_per_minute=tpm)  # fmt: skip
    db.session.flush()
    return endpoint


# -- resolving --------------------------------------------------------------------------------


def platform_models() -> list[str]:
    """The models of the platform's default endpoint; empty when the operator configured none."""
    settings = _settings()
    if not settings.get("AI_BASE_URL") or not settings.get("AI_API_KEY"):
        return []
    default = settings.get("AI_MODEL") or ""
    return [default] + [m for m in settings.get("AI_MODELS") or [] if m and m != default]


def platform_endpoint(model: str | None = None) -> llm.Endpoint:
    settings = _settings()
    models = platform_models()
    if not models:
        raise ValidationFailed(
            "Morket has no default model endpoint here: add a model endpoint of your own under Settings, AI models.",
            fields={"endpoint_id": ["Choose one of the workspace's model endpoints."]},
        )
    model = model or models[0]
    if model not in models:
        raise ValidationFailed(
            f"Morket's default endpoint does not offer the model {model[:MODEL_MAX]!r}; choose one of: "
            f"{', '.join(models)}.",
            fields={"model": [f"Choose one of: {', '.join(models)}."]},
        )
    kind = settings.get("AI_KIND") or "openai"
    return llm.Endpoint(
        kind=kind if kind in KIND_LABELS else "openai",
        base_url=str(settings["AI_BASE_URL"]).rstrip("/"),
        api_key=settings["AI_API_KEY"],
        model=model,
        platform=True,
        endpoint_id=None,
    )


def _decrypt(endpoint: AiEndpoint) -> str:
    master = _master_key()
    try:
        return decrypt_secret(master, endpoint.workspace_id, sealed_name(endpoint.id), endpoint.ciphertext)
    except DecryptionError:
        stale = endpoint.key_fingerprint != key_fingerprint(master)
        raise EndpointUnreadable(
            f"The key of the model endpoint {endpoint.name!r} cannot be read"
            + (" (encrypted under another master key)." if stale else "; delete the endpoint and add it again.")
        ) from None


def resolve_endpoint(workspace: Workspace, endpoint_id: int | None, model: str | None) -> llm.Endpoint:
    """The ``llm.Endpoint`` a call uses: the workspace's endpoint ``endpoint_id`` (its default model
    unless ``model`` names another), or with None the platform default. NotFound for an endpoint of
    another workspace, ValidationFailed when there is no platform default or the model is not offered.
    """
    if model is not None and not isinstance(model, str):
        raise ValidationFailed("The model must be text.", fields={"model": ["Enter a model name."]})
    model = (model or "").strip() or None
    if endpoint_id is None:
        return platform_endpoint(model)
    if isinstance(endpoint_id, bool) or not isinstance(endpoint_id, int):
        raise NotFound("That model endpoint is not in this workspace.")
    endpoint = get_endpoint_or_404(workspace, endpoint_id)
    if model is not None and len(model) > MODEL_MAX:
        raise ValidationFailed(
            "The model name is too long.", fields={"model": [f"Use at most {MODEL_MAX} characters."]}
        )
    base_url = check_base_url(endpoint.base_url)
    return llm.Endpoint(
        kind=endpoint.kind,
        base_url=base_url,
        api_key=_decrypt(endpoint),
        model=model or endpoint.model,
        platform=False,
        endpoint_id=endpoint.id,
        requests_per_minute=endpoint.requests_per_minute,
        tokens_per_minute=endpoint.tokens_per_minute,
    )


def list_models(workspace: Workspace) -> list[ModelChoice]:
    """Every model a picker may offer: the platform default's first, then each endpoint's."""
    choices = [
        ModelChoice(None, PLATFORM_NAME, _settings().get("AI_KIND") or "openai", m, True) for m in platform_models()
    ]
    for endpoint in list_endpoints(workspace):
        choices += [ModelChoice(endpoint.id, endpoint.name, endpoint.kind, m, False) for m in endpoint.all_models]
    return choices


def usage_charge(endpoint: llm.Endpoint, answer: llm.Answer) -> tuple[int, str]:
    """(platform credits, key source) of one answer: priced tokens on the platform default, else 0 and ``own``."""
    from morket.credits.prices import model_cost

    if endpoint.platform:
        return model_cost(answer.model or endpoint.model, answer.input_tokens, answer.output_tokens), "platform"
    return 0, "own"


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    message: str
    input_tokens: int = 0
    output_tokens: int = 0


def probe_endpoint(workspace: Workspace, actor: User, endpoint_id: int) -> ProbeResult:
    """One tiny call to the endpoint's default model: its answer, or the error, in words a person reads."""
    _require(workspace, actor)
    stored = get_endpoint_or_404(workspace, endpoint_id)
    try:
        endpoint = resolve_endpoint(workspace, endpoint_id, None)
    except (ValidationFailed, EndpointUnreadable) as exc:
        return ProbeResult(False, exc.message)
    try:
        answer = llm.complete(
            endpoint, system=TEST_SYSTEM, prompt=TEST_PROMPT, max_tokens=TEST_MAX_TOKENS, timeout=TEST_TIMEOUT
        )
    except llm.LlmError as exc:
        result = ProbeResult(False, exc.message)
    else:
        text = " ".join(str(answer.text).split())[:200] or "(an empty answer)"
        result = ProbeResult(True, f"{answer.model} answered: {text}", answer.input_tokens, answer.output_tokens)
    record_audit(
        workspace, actor, "ai_endpoint.tested", stored.name,
        endpoint_id=stored.id, ok=result.ok, input_tokens=result.input_tokens, output_tokens=result.output_tokens,
    )  # fmt: skip
    db.session.flush()
    return result


@register_resealer
def reencrypt_batch(
    old_master: bytes, new_master: bytes, *, after_id: int = 0, limit: int = 200
) -> tuple[int, list[int], int]:
    """Re-seal up to ``limit`` endpoints' keys still under ``old_master`` with ``new_master`` (the caller commits).

    Part of ``flask credentials rotate-master-key``. Returns (re-encrypted, ids that did not
    decrypt, last id seen).
    """

    def reseal(endpoint: AiEndpoint, move: Move) -> None:
        endpoint.ciphertext = move(endpoint.ciphertext, sealed_name(endpoint.id))

    return reseal_batch(AiEndpoint, old_master, new_master, reseal, after_id=after_id, limit=limit, verify=True)
