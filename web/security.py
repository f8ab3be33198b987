"""HTTP hardening shared by every page: security headers, same-origin POSTs, form tokens.

Pages reached through a signed link carry a capability in their URL, so every response
says ``Referrer-Policy: no-referrer`` (the token never leaks to another site) and token
pages also say ``Cache-Control: no-store``.  No page loads anything from elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailer.tokens import sign, unsign

__all__ = ["HEADERS", "SecurityHeaders", "form_token", "form_token_ok", "same_origin"]

HEADERS: dict[str, str] = {
    "Content-Security-Policy": ("default-src 'self'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


class SecurityHeaders:
    """ASGI middleware: adds ``HEADERS`` to every HTTP response that does not set them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: Request, base_url: str) -> bool:
    """False when the browser says the form came from another site.

    Browsers send ``Origin`` with every POST; when present it must be ours (the public
    ``CITYMAIL_BASE_URL`` or the host the request was made to).  Its absence is allowed:
    old browsers and non-browser clients do not send it.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return True
    ours = {_origin(base_url), _origin(str(request.base_url))}
    return origin.lower() in ours


def form_token(key: bytes, link_token: str) -> str:
    """A form token bound to the signed link the page was opened with (HMAC, no state)."""
    return sign(key, "form", link_token)


def form_token_ok(keys: Sequence[bytes], link_token: str, value: str) -> bool:
    return unsign(keys, "form", value) == [link_token]
