"""The OpenAPI 3.1 document of /api/v1, generated from the ``Endpoint`` table.

Path templates drop Starlette's converters (``{id:int}`` → ``{id}``); each operation names
the scope it needs, its query parameters, its body schema (the one that validates
requests) and its answers, every error being ``{"error": "…"}``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mailer.apitokens import SCOPES
from web.api import PREFIX, Call, Endpoint

__all__ = ["openapi_document", "openapi_endpoint", "openapi_path"]

ERRORS = {
    400: "The request is not valid (the message says why)",
    401: "No token, or an unknown or revoked one",
    403: "The token lacks the scope this needs",
    404: "No such thing",
    409: "Not possible in its present state",
    413: "The body is too large",
    415: "The body is not JSON",
    429: "Too many requests; see Retry-After",
}
AUTH_ERRORS = (401, 403, 429)
BODY_ERRORS = (400, 413, 415)
_CONVERTER = re.compile(r"\{(\w+):(\w+)\}")


def openapi_path(path: str) -> str:
    """``/issues/{id:int}`` as OpenAPI writes it: ``/issues/{id}``."""
    return _CONVERTER.sub(r"{\1}", path)


def _parameters(e: Endpoint) -> list[dict[str, Any]]:
    params = [{"name": name, "in": "path", "required": True,
               "schema": {"type": "integer" if kind == "int" else "string"}}
              for name, kind in re.findall(r"\{(\w+)(?::(\w+))?\}", e.path)]
    params += [{"name": p.name, "in": "query", "required": False,
                "description": p.description, "schema": p.schema} for p in e.query]
    return params


def _operation(e: Endpoint) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": e.handler.__name__, "summary": e.summary,
        "responses": {str(e.status): {
            "description": "Success",
            "content": {"application/json": {"schema": e.response or {"type": "object"}}}}},
    }
    if e.scope is None:
        op["security"] = []
    else:
        op["security"] = [{"bearer": [e.scope]}]
        op["description"] = f"Needs the scope `{e.scope}`."
    params = _parameters(e)
    if params:
        op["parameters"] = params
    codes = set(e.errors)
    if e.scope is not None:
        codes |= set(AUTH_ERRORS)
    if e.body is not None:
        codes |= set(BODY_ERRORS)
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": e.body}}}
    for code in sorted(codes):
        op["responses"][str(code)] = {"$ref": f"#/components/responses/E{code}"}
    return op


def openapi_document(endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        paths.setdefault(PREFIX + openapi_path(e.path), {})[e.method.lower()] = _operation(e)
    error = {"type": "object", "required": ["error"],
             "properties": {"error": {"type": "string"},
                            "errors": {"type": "array", "items": {"type": "string"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "citymail API", "version": "1",
                 "description": "Lists, members, moderation and newsletters of the league. "
                                "Create a token with `citymail api token create NAME "
                                "--scope SCOPE …` and send it as `Authorization: Bearer "
                                "TOKEN`."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "Scopes: " + "; ".join(f"`{k}` {v}" for k, v in SCOPES.items()),
            }},
            "schemas": {"Error": error},
            "responses": {f"E{code}": {
                "description": text,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            } for code, text in ERRORS.items()},
        },
    }


def openapi_endpoint(endpoints: Sequence[Endpoint]) -> Endpoint:
    """``GET /api/v1/openapi.json``: public, and documents itself too."""
    holder: dict[str, Any] = {}

    def get_openapi(call: Call) -> dict[str, Any]:
        return holder["doc"]

    endpoint = Endpoint("GET", "/openapi.json", get_openapi, None,
                        "This document (OpenAPI 3.1)")
    holder["doc"] = openapi_document([*endpoints, endpoint])
    return endpoint
