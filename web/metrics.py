"""``GET /metrics``: Prometheus text exposition, for the allowed networks or a bearer token.

Allowed: a client in ``CITYMAIL_METRICS_ALLOW`` (default 127.0.0.1 and ::1), or any client
sending ``Authorization: Bearer <CITYMAIL_METRICS_TOKEN>``.  Behind a reverse proxy on the
same machine every request comes from 127.0.0.1, so a request carrying
``X-Forwarded-For`` is not believed to be local unless ``CITYMAIL_TRUSTED_PROXIES`` is set
(then web/proxy.py has already replaced the peer with the real client).
"""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import Connection, Engine, func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mailer.metrics import DatabaseCollector
from mailer.settings import Settings
from newsletters.models import Issue

__all__ = ["allowed", "metrics_routes"]

ISSUE_STATES = ("draft", "scheduled", "sending", "paused", "sent", "cancelled")


def newsletter_issues(conn: Connection) -> Iterator[tuple[str, str, str, dict[str, float]]]:
    rows = dict(conn.execute(select(Issue.state, func.count()).group_by(Issue.state)).all())
    counts = {s: 0.0 for s in ISSUE_STATES} | {str(k): float(v) for k, v in rows.items()}
    yield ("citymail_newsletter_issues", "Newsletter issues by state (sending: going out now)",
           "state", counts)


def allowed(client: str | None, headers: dict[str, str], settings: Settings) -> bool:
    """May this request read the metrics?  (pure: for the route and for tests)"""
    token = settings.metrics_token
    auth = headers.get("authorization", "")
    if token and auth.lower().startswith("bearer ") and hmac.compare_digest(
            auth[7:].strip().encode(), token.encode()):
        return True
    if client is None:
        return False
    if "x-forwarded-for" in headers and not settings.trusted_proxies:
        return False  # a local proxy forwarding someone else
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False)
               for net in settings.metrics_allow)


def metrics_routes(settings: Settings, engine: Engine) -> list[Route]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(engine, lease=dt.timedelta(seconds=settings.worker_lease),
                                        extras=(newsletter_issues,)))

    async def metrics(request: Request) -> Response:
        client = request.client.host if request.client else None
        headers = {k.lower(): v for k, v in request.headers.items()}
        if not allowed(client, headers, settings):
            return PlainTextResponse("metrics are not available to you\n", status_code=403,
                                     headers={"Cache-Control": "no-store"})
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST,
                        headers={"Cache-Control": "no-store"})

    return [Route("/metrics", metrics, methods=["GET"])]
