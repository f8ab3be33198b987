"""Wiring for sign-in and the staff pages: the middleware stack and the routes.

``web.app.create_app`` calls ``staff_middleware`` and ``staff_routes``; everything they
build is passed its collaborators here, so the app module only lists them.
"""

from __future__ import annotations

from sqlalchemy import Engine
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from mailer.settings import Settings
from web.admin_pages import ROSTER_UPLOAD_LIMIT, ROSTER_UPLOAD_PATH, admin_routes
from web.auth import AuthContext, AuthScope
from web.csrf import CSRFMiddleware
from web.login import LOGIN_LIMITS, Login
from web.moderation_pages import moderation_routes
from web.pages import Pages
from web.proxy import ProxyHeaders
from web.ratelimit import RateLimiter
from web.sessions import SessionMiddleware

__all__ = ["staff_middleware", "staff_routes"]


def staff_middleware(settings: Settings, engine: Engine, pages: Pages) -> list[Middleware]:
    """Proxy headers, then the session, then the form-token check (outermost first)."""
    keys = tuple(k.encode() for k in settings.secret_keys)

    def forbidden(request: Request) -> Response:
        return pages.message(request, title="Not allowed", status=403,
                             paragraphs=["Your account cannot open this page. Ask a league "
                                         "administrator if you need it."],
                             headers={"Cache-Control": "no-store"})

    async def stale_form(request: Request) -> Response:
        return pages.message(request, title="This form has expired", status=403,
                             paragraphs=["This form is out of date and nothing was changed. "
                                         "Please go back, reload the page and try again."],
                             headers={"Cache-Control": "no-store"})

    return [
        Middleware(ProxyHeaders, trusted_proxies=settings.trusted_proxies),
        Middleware(SessionMiddleware, keys=keys),
        Middleware(AuthScope, context=AuthContext(engine, keys, forbidden)),
        Middleware(CSRFMiddleware, keys=keys, reject=stale_form,
                   upload_limits={ROSTER_UPLOAD_PATH: ROSTER_UPLOAD_LIMIT + 64 * 1024}),
    ]


def staff_routes(settings: Settings, engine: Engine, pages: Pages, *,
                 limiter: RateLimiter | None = None) -> list[BaseRoute]:
    """Sign-in, the admin pages and the moderation queue."""
    login = Login(settings, engine, pages, limiter or RateLimiter(LOGIN_LIMITS))
    return [*login.routes(), *admin_routes(settings, engine, pages),
            *moderation_routes(settings, engine, pages)]
