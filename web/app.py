"""The web application: ``create_app(settings, engine)`` is its composition root.

Routes (all server-rendered, no script, no asset from elsewhere):
    GET  /healthz                    "ok" once the database answers, else 503
    GET  /metrics                    Prometheus metrics (web/metrics.py; allow-list or token)
    GET  /u/{token}                  confirm a one-click unsubscribe (never acts)
    POST /u/{token}                  RFC 8058 one-click unsubscribe
    GET  /p/{token}, POST /p/{token} a person's preferences, from a mailed link
    GET  /manage, POST /manage       mail me a preferences link
    GET  /lists/{name}/preferences   the list footer's link: redirects to /manage
    GET  /lists/{name}/archive/…     a list's archive (web/list_archive.py; members only)
    GET  /static/site.css            the one stylesheet
    /api/v1/…                        the JSON API (web/api.py; bearer tokens; openapi.json)
    GET/POST /newsletters/{name}/subscribe, /s/{token}   public sign-up (web/signup.py)

Nothing happens at import: templates, limits and routes are built by ``create_app``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Engine, text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mailer.db import reading
from mailer.settings import Settings
from web.api import api_routes
from web.archives import archive_routes
from web.editor import editor_routes
from web.list_archive import list_archive_routes
from web.metrics import metrics_routes
from web.pages import Pages
from web.ratelimit import Limit, RateLimiter
from web.reenable import reenable_routes
from web.security import HEADERS, SecurityHeaders
from web.selfservice import SelfService
from web.signup import SIGNUP_LIMITS, SignupPages
from web.staff import staff_middleware, staff_routes

__all__ = ["MANAGE_LIMITS", "SITE_NAME", "create_app"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
SITE_NAME = "Cal Cities lists"
MAX_BODY = 64 * 1024
# Manage-by-email links, per requested address and per client IP (kept in memory).
MANAGE_LIMITS = {"address": Limit(3, 3600.0), "ip": Limit(20, 3600.0)}

ERROR_PAGES: dict[int, tuple[str, str]] = {
    400: ("Bad request", "We could not read what your browser sent."),
    404: ("Page not found", "There is no page at this address."),
    405: ("Not allowed", "This page cannot be used that way."),
    413: ("Too large", "What your browser sent is too large."),
}


def create_app(settings: Settings, engine: Engine, *, site_name: str = SITE_NAME,
               limiter: RateLimiter | None = None) -> Starlette:
    """The ASGI application for ``settings``, reading and writing through ``engine``."""
    pages = Pages(site_name=site_name)
    service = SelfService(settings, engine, pages, limiter or RateLimiter(MANAGE_LIMITS))

    def database_ok() -> None:
        with reading(engine) as conn:
            conn.execute(text("SELECT 1"))

    async def healthz(request: Request) -> Response:
        headers = {"Cache-Control": "no-store"}
        try:
            await run_in_threadpool(database_ok)
        except Exception:
            log.exception("health check: the database does not answer")
            return PlainTextResponse("database unavailable", status_code=503, headers=headers)
        return PlainTextResponse("ok", headers=headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        title, line = ERROR_PAGES.get(exc.status_code, ("Error", "Something went wrong."))
        return pages.message(request, title=title, paragraphs=[line], status=exc.status_code,
                             show_manage=True, headers=dict(exc.headers or {}))

    async def server_error(request: Request, exc: Exception) -> Response:
        # Answered outside the middleware stack, so the headers are added here.
        return pages.message(request, title="Something went wrong", status=500,
                             paragraphs=["Please try again in a few minutes."],
                             headers=HEADERS)

    signup = SignupPages(settings, engine, pages, RateLimiter(SIGNUP_LIMITS))
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        *metrics_routes(settings, engine),
        *api_routes(settings, engine, signup_limiter=signup.limiter, site_name=site_name),
        *signup.routes(),
        *service.routes(),
        *reenable_routes(settings, engine, pages),
        *archive_routes(settings, engine),
        *list_archive_routes(settings, engine, pages),
        *staff_routes(settings, engine, pages),
        *editor_routes(settings, engine, pages),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders), *staff_middleware(settings, engine, pages)],
        exception_handlers={HTTPException: http_error, 500: server_error},
        max_body_size=MAX_BODY,
    )
