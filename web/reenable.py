"""``/r/{token}``: the re-enable link of a bounce warning.

GET shows a button and changes nothing (link scanners follow GETs); POST turns delivery
back on through ``mailer.bounce_events.reenable``, which checks the signed token.
"""

from __future__ import annotations

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailer.bounce_duties import Reenabled, reenable
from mailer.db import writing
from mailer.settings import Settings
from mailer.tokens import unsign
from web.pages import Pages

__all__ = ["reenable_routes"]

ANSWERS = {
    "reenabled": ("Delivery is back on", "You will get {list} mail at {email} again."),
    "already_enabled": ("Delivery is on", "{email} already gets {list} mail."),
    "removed": ("This subscription ended",
                "After the bounces {email} was removed from {list}. To join again, "
                "get a link by email below."),
}


def reenable_routes(settings: Settings, engine: Engine, pages: Pages) -> list[Route]:
    keys = [k.encode() for k in settings.secret_keys]

    async def page(request: Request) -> Response:
        token = request.path_params["token"]
        if unsign(keys, "reenable", token) is None:
            return pages.invalid_link(request)
        return pages.render(request, "reenable_confirm", title="Turn delivery back on",
                            private=True, token=token)

    def apply(token: str) -> Reenabled:
        with writing(engine) as conn:
            return reenable(conn, token, settings=settings)

    async def post(request: Request) -> Response:
        result = await run_in_threadpool(apply, request.path_params["token"])
        if result.outcome not in ANSWERS:
            return pages.invalid_link(request)
        title, line = ANSWERS[result.outcome]
        return pages.message(request, title=title, show_manage=result.outcome == "removed",
                             paragraphs=[line.format(list=result.list_name or "the list",
                                                     email=result.email or "your address")],
                             headers={"Cache-Control": "no-store"})

    return [Route("/r/{token}", page, methods=["GET"]),
            Route("/r/{token}", post, methods=["POST"])]
