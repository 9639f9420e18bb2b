"""The OpenAPI 3.1 document, generated from the operations ``api_route`` recorded, and its docs page."""

from __future__ import annotations

import json
import typing
from typing import Any

from flask import Blueprint, current_app, jsonify, render_template
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from morket.api import bp
from morket.api.routing import API_KEY_PREFIX, OPERATIONS, Operation
from morket.core.ratelimit import GENERAL_LIMIT

REF_TEMPLATE = "#/components/schemas/{model}"
ERROR_ENVELOPE = "ErrorEnvelope"
STATUS_TEXT = {
    200: "OK",
    201: "Created",
    400: "The body is not valid JSON.",
    401: "Missing, invalid, expired or revoked credentials.",
    402: "Not enough credits for this operation.",
    403: "Not allowed: your role, a disabled account, or an action that needs a user token.",
    404: "Not found, or not in your workspace.",
    409: "Conflicts with the current state.",
    410: "Gone: the file expired and was deleted, or the export failed and never wrote one.",
    413: "The body is larger than the limit (1 MB by default).",
    415: "The body is not JSON: send Content-Type: application/json.",
    422: "Some fields need fixing; see error.fields.",
    423: "The account is locked after too many failed attempts.",
    429: "Rate limited; see Retry-After.",
    502: "The provider answered with an error.",
    503: "A service Morket needs is unavailable.",
}

TAG_ORDER = ("Authentication", "Account", "Workspace", "Members", "API keys")

docs_bp = Blueprint("api_docs", __name__)
# PostgreSQL text cannot hold NUL, and the API refuses it in every string it reads (api.routing).
NO_NUL = r"^[^\u0000]*$"


class RequestSchema(GenerateJsonSchema):
    """JSON schema of what requests may send: every string and object key also refuses NUL."""

    def str_schema(self, schema: Any) -> dict[str, Any]:
        generated = super().str_schema(schema)
        generated.setdefault("pattern", NO_NUL)
        return generated

    def dict_schema(self, schema: Any) -> dict[str, Any]:
        generated = super().dict_schema(schema)
        generated.setdefault("propertyNames", {}).setdefault("pattern", NO_NUL)
        return generated


def _error_envelope() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["success", "data", "error", "meta"],
        "properties": {
            "success": {"const": False},
            "data": {"type": "null"},
            "error": {
                "type": "object",
                "required": ["code", "message", "fields"],
                "properties": {
                    "code": {"type": "string", "examples": ["validation_error"]},
                    "message": {"type": "string"},
                    "fields": {
                        "type": "object",
                        "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
            "meta": {"type": "object"},
        },
    }


class _Components:
    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {ERROR_ENVELOPE: _error_envelope()}

    def ref(self, model: type[BaseModel], mode: typing.Literal["validation", "serialization"]) -> dict[str, str]:
        name = model.__name__
        if name not in self.schemas:
            generator = RequestSchema if mode == "validation" else GenerateJsonSchema
            schema = model.model_json_schema(ref_template=REF_TEMPLATE, mode=mode, schema_generator=generator)
            for sub_name, sub_schema in schema.pop("$defs", {}).items():
                self.schemas.setdefault(sub_name, sub_schema)
            self.schemas[name] = schema
        return {"$ref": REF_TEMPLATE.format(model=name)}

    def response_data(self, response: Any) -> dict[str, Any]:
        if response is None:
            return {"type": "null"}
        if typing.get_origin(response) is list:
            (item,) = typing.get_args(response)
            return {"type": "array", "items": self.ref(item, "serialization")}
        return self.ref(response, "serialization")


def _success_envelope(data_schema: dict[str, Any], meta_schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["success", "data", "error", "meta"],
        "properties": {
            "success": {"const": True},
            "data": data_schema,
            "error": {"type": "null"},
            "meta": meta_schema or {"type": "object"},
        },
    }


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF_TEMPLATE, schema_generator=RequestSchema)
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "description": prop.get("description", ""),
            "schema": {k: v for k, v in prop.items() if k not in {"title", "description"}},
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def _operation(op: Operation, components: _Components) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.endpoint.split(".")[-1],
        "summary": op.summary,
        "tags": [op.tag],
        "description": op.description,
        "responses": {
            str(op.status): {
                "description": STATUS_TEXT.get(op.status, "OK"),
                "content": {
                    "application/json": {
                        "schema": _success_envelope(
                            components.response_data(op.response),
                            components.ref(op.meta, "serialization") if op.meta is not None else None,
                        )
                    }
                },
            }
        },
    }
    if op.media_type != "application/json":
        doc["responses"][str(op.status)]["content"] = {op.media_type: {"schema": {"type": "string"}}}
    if op.permission:
        doc["x-morket-permission"] = op.permission
    doc["security"] = [{"bearerAuth": []}, {"apiKey": []}] if op.authenticated else []
    if op.path_params:
        doc["parameters"] = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
            }
            for name in op.path_params
        ]
    if op.query is not None:
        doc.setdefault("parameters", []).extend(_query_parameters(op.query))
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": components.ref(op.body, "validation")}},
        }
    for status in op.error_statuses:
        doc["responses"][str(status)] = {
            "description": STATUS_TEXT[status],
            "content": {"application/json": {"schema": {"$ref": REF_TEMPLATE.format(model=ERROR_ENVELOPE)}}},
        }
        if status == 429:
            doc["responses"]["429"]["headers"] = {
                "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}}
            }
    return doc


def build_openapi() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document for every recorded API operation."""
    components = _Components()
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Morket API",
            "version": "1",
            "description": (
                "Every response is an envelope {success, data, error: {code, message, fields}, meta}. "
                "Authenticate with an access token from POST /api/v1/auth/token or a workspace API key "
                f"({API_KEY_PREFIX}...), sent as Authorization: Bearer. Requests are limited to {GENERAL_LIMIT} "
                "per token or key, and sign-in endpoints to 5 a minute per address. Changes to members, "
                "invitations and API keys need a user's access token, so that the audit log names a person."
            ),
        },
        "servers": [{"url": current_app.config["MORKET"]["BASE_URL"].rstrip("/")}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.schemas.items())),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A 15-minute access token scoped to one workspace.",
                },
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": f"A workspace API key ({API_KEY_PREFIX}...), sent as a bearer token.",
                },
            },
        },
    }


@bp.get("/openapi.json")
def openapi_document():
    """Serve the document itself, bare (not in the envelope) so that OpenAPI tools can load it."""
    return jsonify(build_openapi())


def _example_body(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    example: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        if name not in schema.get("required", []) and "default" not in prop:
            continue
        if prop.get("examples"):
            example[name] = prop["examples"][0]
        elif "default" in prop:
            example[name] = prop["default"]
        elif prop.get("enum"):
            example[name] = prop["enum"][0]
        else:
            example[name] = "..."
    return example


def type_label(schema: dict[str, Any]) -> str:
    """Return a short human name for a JSON schema: ``string``, ``array of MemberOut``, ``"a" | "b"``."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(type_label(option) for option in schema["anyOf"])
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " | ".join(json.dumps(value) for value in schema["enum"])
    if schema.get("type") == "array":
        return f"array of {type_label(schema.get('items', {}))}"
    label = str(schema.get("type", "any"))
    return f"{label} ({schema['format']})" if "format" in schema else label


@docs_bp.get("/api/docs")
def api_docs():
    """Render the API reference from the same OpenAPI document."""
    document = build_openapi()
    components = document["components"]["schemas"]
    base = document["servers"][0]["url"]
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            body_schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            curl = [f"curl -X {method.upper()} {base}{path}"]
            if op["security"]:
                curl.append('  -H "Authorization: Bearer $MORKET_TOKEN"')
            if body_schema:
                curl.append('  -H "Content-Type: application/json"')
                curl.append(f"  -d '{json.dumps(_example_body(body_schema, components))}'")
            success = next(code for code in op["responses"] if code.startswith("2"))
            content = op["responses"][success]["content"]
            json_body = content.get("application/json")
            # A file download documents its media type instead of an envelope.
            file_body = next(iter(content.values()))
            data_schema = json_body["schema"]["properties"]["data"] if json_body else file_body["schema"]
            groups.setdefault(op["tags"][0], []).append(
                {
                    "id": f"op-{op['operationId'].replace('_', '-')}",
                    "method": method.upper(),
                    "path": path,
                    "op": op,
                    "body_schema": body_schema,
                    "data_schema": data_schema,
                    "success": success,
                    "errors": [code for code in op["responses"] if not code.startswith("2")],
                    "curl": " \\\n".join(curl),
                }
            )
    ordered = dict(sorted(groups.items(), key=lambda kv: TAG_ORDER.index(kv[0]) if kv[0] in TAG_ORDER else 99))
    return render_template(
        "api/docs.html",
        document=document,
        groups=ordered,
        components=components,
        pretty=lambda value: json.dumps(value, indent=2),
        type_label=type_label,
    )
