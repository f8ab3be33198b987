"""Behind a reverse proxy: believe X-Forwarded-* only from the proxies we were told about.

``CITYMAIL_TRUSTED_PROXIES`` lists their IPs or networks (default: none).  When the TCP
peer is one of them, the client address comes from ``X-Forwarded-For`` (the right-most
hop that is not itself a trusted proxy, so a client cannot forge its way past the limit),
the scheme from ``X-Forwarded-Proto`` (Secure cookies, absolute URLs) and the host from
``X-Forwarded-Host``.  From anyone else the headers are ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["ProxyHeaders", "forwarded_client", "trusted"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(items: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def trusted(host: str, networks: tuple[Network, ...]) -> bool:
    """True when ``host`` (an IP address as text) is in one of ``networks``."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in net for net in networks)


def forwarded_client(header: str, networks: tuple[Network, ...]) -> str | None:
    """The client named by an ``X-Forwarded-For`` value: right-most untrusted hop."""
    hops = [h.strip() for h in header.split(",") if h.strip()]
    for hop in reversed(hops):
        if not trusted(hop, networks):
            return hop
    return hops[0] if hops else None


class ProxyHeaders:
    """ASGI middleware that rewrites client, scheme and host from a trusted proxy."""

    def __init__(self, app: ASGIApp, *, trusted_proxies: Iterable[str] = ()) -> None:
        self.app = app
        self.networks = _networks(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        peer = scope.get("client")
        if (scope["type"] in ("http", "websocket") and self.networks and peer
                and trusted(peer[0], self.networks)):
            scope = dict(scope)
            headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                       for k, v in scope["headers"]}
            client = forwarded_client(headers.get("x-forwarded-for", ""), self.networks)
            if client:
                scope["client"] = (client, 0)
            proto = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
            if proto in ("http", "https"):
                scope["scheme"] = proto if scope["type"] == "http" else (
                    "wss" if proto == "https" else "ws")
            host = headers.get("x-forwarded-host", "").split(",")[0].strip()
            if host:
                scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"host"]
                scope["headers"].append((b"host", host.encode("latin-1")))
        await self.app(scope, receive, send)
