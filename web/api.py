"""The JSON API under /api/v1: bearer tokens with scopes, JSON in and out.

Each endpoint is an ``Endpoint`` row (method, path, scope, body schema, handler); the
routes and the OpenAPI document (``web.api_openapi``) are both built from that table, so
nothing is served undocumented.  A request goes through, in order::

    the client IP's failed tokens    429 with Retry-After after AUTH_FAILURE_LIMITS
    Authorization: Bearer TOKEN      401 without one, or for an unknown or revoked token
                                     (which counts as a failure of the client's IP)
    the endpoint's scope             403 when the token lacks it
    the client's rate limit          429 with Retry-After
    the body (POST)                  415 unless JSON, 413 over MAX_BODY, 400 when invalid
    the handler, in a thread         404 NotFound, 409 a state conflict, 400 InvalidInput

Every error is ``{"error": "…"}`` (with ``"errors": [...]`` when a body breaks its
schema).  Handlers are plain functions of a ``Call``; they run in a worker thread and
open their own short transactions.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mailer import apitokens
from mailer.apitokens import Client
from mailer.db import reading, writing
from mailer.errors import CitymailError, InvalidInput, NotFound, StorageError
from mailer.privacy import Suppressed
from mailer.settings import Settings
from newsletters.issues import IssueStateError
from web.api_schema import Schema, validate
from web.ratelimit import Limit, RateLimiter, client_ip

__all__ = [
    "API_LIMITS", "AUTH_FAILURE_LIMITS", "MAX_BODY", "PREFIX", "ApiError", "Call", "Endpoint",
    "Param", "Reply", "api_routes", "error",
]

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
MAX_BODY = 64 * 1024
OUTER_BODY_LIMIT = 1024 * 1024  # beyond this even a JSON 413 is not worth reading for
API_LIMITS = {"client": Limit(600, 60.0)}  # requests per client per minute
# Unknown tokens per client IP in 10 minutes, so that tokens cannot be guessed at speed.
AUTH_FAILURE_LIMITS = {"failed_token_ip": Limit(20, 600.0)}
NO_STORE = {"Cache-Control": "no-store"}
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class ApiError(CitymailError):
    """An answer other than success, with its HTTP status."""

    def __init__(self, status: int, message: str, *, headers: Mapping[str, str] | None = None,
                 details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})
        self.details = list(details)


@dataclass(frozen=True)
class Param:
    """A query parameter, as documented."""

    name: str
    description: str
    schema: Schema = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True)
class Reply:
    data: Any
    status: int = 200


@dataclass(frozen=True)
class Call:
    """What a handler gets: collaborators, the caller and the request's parts."""

    engine: Engine
    settings: Settings
    services: Any  # web.api_resources.Services: limiters, league, site name
    client: Client | None
    params: Mapping[str, Any]
    query: Mapping[str, str]
    body: Any
    ip: str


Handler = Callable[[Call], Any]  # returns the JSON data, or a Reply


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # under PREFIX, Starlette syntax: "/members/{email}", "/issues/{id:int}"
    handler: Handler
    scope: str | None  # None: public (the OpenAPI document)
    summary: str
    body: Schema | None = None
    query: tuple[Param, ...] = ()
    status: int = 200
    errors: tuple[int, ...] = ()
    response: Schema | None = None


def error(status: int, message: str, *, headers: Mapping[str, str] | None = None,
          details: Sequence[str] = ()) -> JSONResponse:
    content: dict[str, Any] = {"error": message}
    if details:
        content["errors"] = list(details)
    return JSONResponse(content, status_code=status, headers={**NO_STORE, **(headers or {})})


def bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def read_json(request: Request, limit: int = MAX_BODY) -> Any:
    """The request body as JSON; ApiError 415, 413 or 400 otherwise."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, "send the body as JSON with Content-Type: application/json")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the body is larger than {limit // 1024} KiB")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise ApiError(413, f"the body is larger than {limit // 1024} KiB")
    try:
        return json.loads(bytes(data) or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None


# Core exceptions as HTTP answers (the adapter edge), most specific first.
STATUSES: tuple[tuple[type[CitymailError], int], ...] = (
    (NotFound, 404), (IssueStateError, 409), (Suppressed, 409), (InvalidInput, 400),
    (StorageError, 503),
)


def _translate(exc: CitymailError) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    status = next((code for kind, code in STATUSES if isinstance(exc, kind)), 500)
    return ApiError(status, str(exc))


class Api:
    """Turns ``Endpoint`` rows into Starlette routes that authenticate and answer JSON."""

    def __init__(self, settings: Settings, engine: Engine, services: Any,
                 limiter: RateLimiter, *, auth_limiter: RateLimiter | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.services = services
        self.limiter = limiter
        self.auth_limiter = auth_limiter or RateLimiter(AUTH_FAILURE_LIMITS)

    def _authenticate(self, token: str) -> Client | None:
        with reading(self.engine) as conn:
            return apitokens.authenticate(conn, token)

    def _touch(self, client: Client) -> None:
        try:
            with writing(self.engine) as conn:
                apitokens.touch(conn, client)
        except Exception:  # bookkeeping only: never fail a request for it
            log.exception("could not record the use of API client %s", client.name)

    async def _client(self, request: Request, endpoint: Endpoint) -> Client | None:
        if endpoint.scope is None:
            return None
        ip = client_ip(request)
        # Asked before the token is even looked at: a guesser learns nothing while refused.
        wait = self.auth_limiter.check(failed_token_ip=ip)
        if wait:
            raise ApiError(429, f"too many unknown tokens from your address; try again in "
                                f"{math.ceil(wait)} s",
                           headers={"Retry-After": str(math.ceil(wait))})
        token = bearer(request)
        challenge = {"WWW-Authenticate": 'Bearer realm="citymail"'}
        if token is None:
            raise ApiError(401, "send a token: Authorization: Bearer TOKEN "
                                "(citymail api token create)", headers=challenge)
        client = await run_in_threadpool(self._authenticate, token)
        if client is None:
            self.auth_limiter.hit(failed_token_ip=ip)
            log.info("unknown API token from %s", ip)
            raise ApiError(401, "the token is unknown or was revoked", headers=challenge)
        if endpoint.scope not in client.scopes:
            raise ApiError(403, f"this token lacks the scope {endpoint.scope}")
        wait = self.limiter.hit(client=client.name)
        if wait:
            raise ApiError(429, f"too many requests; try again in {math.ceil(wait)} s",
                           headers={"Retry-After": str(math.ceil(wait))})
        return client

    async def _answer(self, request: Request, endpoint: Endpoint) -> Response:
        client = await self._client(request, endpoint)
        body = None
        if endpoint.body is not None:
            body = await read_json(request)
            problems = validate(body, endpoint.body)
            if problems:
                raise ApiError(400, f"the body is not valid: {problems[0]}", details=problems)
        call = Call(self.engine, self.settings, self.services, client,
                    dict(request.path_params), dict(request.query_params), body,
                    client_ip(request))
        try:
            result = await run_in_threadpool(endpoint.handler, call)
        except CitymailError as exc:
            raise _translate(exc) from None
        reply = result if isinstance(result, Reply) else Reply(result, endpoint.status)
        response = JSONResponse(reply.data, status_code=reply.status, headers=NO_STORE)
        if client is not None:
            response.background = BackgroundTask(self._touch, client)
        return response

    def route(self, path: str, endpoints: dict[str, Endpoint]) -> Route:
        async def dispatch(request: Request) -> Response:
            method = "GET" if request.method == "HEAD" else request.method
            endpoint = endpoints.get(method)
            if endpoint is None:
                return error(405, f"{request.method} is not allowed here; use "
                                  f"{' or '.join(endpoints)}",
                             headers={"Allow": ", ".join(endpoints)})
            try:
                return await self._answer(request, endpoint)
            except ApiError as exc:
                return error(exc.status, str(exc), headers=exc.headers, details=exc.details)
            except Exception:  # the request boundary: log it, answer in JSON all the same
                log.exception("API %s %s failed", request.method, request.url.path)
                return error(500, "something went wrong on our side; it has been logged")

        # Every method reaches ``dispatch``, so a wrong one gets a JSON 405, not a page; the
        # app-wide body limit is lifted here so that ``read_json`` answers 413 in JSON.
        return Route(PREFIX + path, dispatch, methods=ALL_METHODS,
                     max_body_size=OUTER_BODY_LIMIT)

    def routes(self, endpoints: Sequence[Endpoint]) -> list[Route]:
        by_path: dict[str, dict[str, Endpoint]] = {}
        for e in endpoints:
            by_path.setdefault(e.path, {})[e.method] = e

        async def unknown(request: Request) -> Response:
            return error(404, f"no API endpoint at {request.url.path} "
                              f"(see {PREFIX}/openapi.json)")

        return [*(self.route(path, eps) for path, eps in by_path.items()),
                Route(PREFIX + "/{rest:path}", unknown, methods=ALL_METHODS)]


def api_routes(settings: Settings, engine: Engine, *, limiter: RateLimiter | None = None,
               auth_limiter: RateLimiter | None = None,
               signup_limiter: RateLimiter | None = None,
               site_name: str = "Cal Cities lists") -> list[Route]:
    """The routes of /api/v1 (wired into ``web.app.create_app``)."""
    from web.api_openapi import openapi_endpoint
    from web.api_resources import ENDPOINTS, Services

    services = Services(site_name=site_name, signup_limiter=signup_limiter)
    api = Api(settings, engine, services, limiter or RateLimiter(API_LIMITS),
              auth_limiter=auth_limiter)
    endpoints = [*ENDPOINTS, openapi_endpoint(ENDPOINTS)]
    return api.routes(endpoints)
