"""The newsletters' public archive: ``/newsletters/NAME/``, each issue, and an RSS feed.

The pages come from ``newsletters.archive`` (issues as sent, without personal data).
An issue page is e-mail HTML with inline styles, so it gets its own Content-Security-Policy:
inline styles and https images allowed, scripts, frames and forms still not.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from mailer.db import reading
from mailer.errors import NotFound
from mailer.settings import Settings
from newsletters.archive import archive_index, archive_issue, archive_rss

__all__ = ["archive_routes"]

ISSUE_CSP = ("default-src 'none'; style-src 'unsafe-inline' 'self'; img-src https: data:; "
             "form-action 'none'; frame-ancestors 'none'")


def archive_routes(settings: Settings, engine: Engine) -> list[Route]:
    def read(build: Callable[..., str], *args: object, **kwargs: object) -> str:
        with reading(engine) as conn:
            return build(conn, *args, **kwargs)

    async def page(build: Callable[..., str], *args: object, **kwargs: object) -> str:
        try:
            return await run_in_threadpool(read, build, *args, **kwargs)
        except NotFound:
            raise HTTPException(404) from None

    async def index(request: Request) -> Response:
        name = request.path_params["name"]
        html = await page(archive_index, name, zone=settings.timezone,
                          base_url=settings.base_url)
        return HTMLResponse(html)

    async def issue(request: Request) -> Response:
        html = await page(archive_issue, request.path_params["name"],
                          request.path_params["issue"])
        return HTMLResponse(html, headers={"Content-Security-Policy": ISSUE_CSP})

    async def rss(request: Request) -> Response:
        xml = await page(archive_rss, request.path_params["name"], settings.base_url)
        return Response(xml, media_type="application/rss+xml; charset=utf-8")

    return [
        Route("/newsletters/{name}/", index, methods=["GET"]),
        Route("/newsletters/{name}/issues/{issue:int}", issue, methods=["GET"]),
        Route("/newsletters/{name}/rss.xml", rss, methods=["GET"]),
    ]
