"""Form tokens for every page: a POST without the right token is refused with a 403 page.

The token is an HMAC of the session id (``web.sessions``), so it needs no storage and is
useless with another visitor's cookie; anonymous visitors get a session when a page shows
them a form.  A form sends it as the field ``csrf_token`` (``csrf_field()`` in templates),
a script as the header ``X-CSRF-Token``.  Exempt: ``/api/`` (bearer tokens, no cookies),
``/u/`` (RFC 8058 one-click POSTs come from mail clients, and the signed link is the
capability), and requests a browser cannot send to another site without a CORS
preflight, which we never answer (JSON bodies, PUT or DELETE without form data).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping, Sequence

from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.sessions import session_state

__all__ = ["EXEMPT_PREFIXES", "FIELD", "CSRFMiddleware", "token_for", "token_ok"]

FIELD = "csrf_token"
HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
EXEMPT_PREFIXES = ("/api/", "/u/")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def token_for(key: bytes, sid: str) -> str:
    digest = hmac.new(key, f"csrf\0{sid}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def token_ok(keys: Sequence[bytes], sid: str | None, value: str | None) -> bool:
    if not sid or not value:
        return False
    return any(hmac.compare_digest(value, token_for(k, sid)) for k in keys)


def needs_token(method: str, content_type: str) -> bool:
    """Could a page on another site have made this request without a CORS preflight?

    Browsers send cross-site, without asking, only POSTs of forms, of text/plain or of no
    body; anything else (JSON, PUT, DELETE, ...) needs a preflight we never grant.  Form
    data is checked whatever the method.
    """
    if content_type in FORM_TYPES:
        return True
    return method == "POST" and content_type in ("", "text/plain")


Reject = Callable[[Request], Awaitable[Response]]


class CSRFMiddleware:
    """ASGI middleware (inside ``SessionMiddleware``) that checks unsafe requests.

    ``upload_limits`` raises the body limit for the few paths that take file uploads
    (the check must read the whole body, before the route could raise it itself).
    """

    def __init__(self, app: ASGIApp, *, keys: Sequence[bytes], reject: Reject,
                 exempt: Sequence[str] = EXEMPT_PREFIXES,
                 upload_limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.keys = list(keys)
        self.reject = reject
        self.exempt = tuple(exempt)
        self.upload_limits = dict(upload_limits or {})
        self.max_part = max([1024 * 1024, *self.upload_limits.values()])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] in SAFE_METHODS
                or scope["path"].startswith(self.exempt)):
            await self.app(scope, receive, send)
            return
        limit = self.upload_limits.get(scope["path"])
        if limit is not None:
            await RequestBodyLimitMiddleware(self._check, max_body_size=limit)(
                scope, receive, send)
        else:
            await self._check(scope, receive, send)

    async def _check(self, scope: Scope, receive: Receive, send: Send) -> None:
        messages: list[Message] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        def replay() -> Receive:
            queue = list(messages)

            async def replayed() -> Message:
                return queue.pop(0) if queue else await receive()

            return replayed

        request = Request(scope, replay())
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not needs_token(scope["method"], content_type):
            await self.app(scope, replay(), send)
            return
        value = request.headers.get(HEADER)
        if value is None and content_type in FORM_TYPES:
            try:
                async with request.form(max_files=10, max_fields=1000,
                                        max_part_size=self.max_part) as form:
                    field = form.get(FIELD)
                    value = field if isinstance(field, str) else None
            except Exception:  # malformed multipart: no token, so a 403 below
                value = None
        data = session_state(scope).data
        if not token_ok(self.keys, data.sid if data else None, value):
            response = await self.reject(request)
            await response(scope, replay(), send)
            return
        await self.app(scope, replay(), send)
