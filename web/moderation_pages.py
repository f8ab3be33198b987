"""The moderation queue: ``/moderation/`` (my lists) and ``/moderation/{name}/`` (one list).

``GET  /moderation/{name}/``               the held messages, oldest first
``GET  /moderation/{name}/{id}``           one message, shown safely (``web.moderation_view``)
                                           under a CSP without script; ``?images=1`` shows
                                           its https images
``POST /moderation/{name}/{id}``           ``action`` approve | reject (``reason`` reaches
                                           an authenticated poster) | discard

Decisions go through ``listservs.moderation.plan_decision`` and its ``Outcome``, exactly as
``citymail moderation approve|reject|discard`` and mailed replies do; a message decided
by someone else meanwhile is reported, never decided twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import Engine, func, select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from listservs.commands import Decision
from listservs.lists import get_list
from listservs.moderation import ACTIONS, hold_days, plan_decision
from mailer.db import reading, utcnow, writing
from mailer.errors import InvalidInput, NotFound
from mailer.models import Held, Inbound, MailingList
from mailer.settings import Settings
from web.auth import Principal, forbidden, require_staff
from web.moderation_view import HeldView, view_message
from web.pages import Pages

__all__ = ["MESSAGE_CSP", "moderation_routes"]

log = logging.getLogger(__name__)

# The page that shows a held message: no script at all, images only when asked for.
MESSAGE_CSP = ("default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self'{images}; "
               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
MAX_REASON = 2000
DONE = {"approved": "Approved: the message goes to the list within a few seconds.",
        "rejected": "Rejected: the poster is told your reason.",
        "discarded": "Discarded: the message is gone and nobody is told.",
        "unverified": "Rejected, and discarded silently: the poster's address could not be "
                      "verified, so nobody is told (no mail to a possibly forged sender)."}


@dataclass(frozen=True)
class QueueRow:
    id: int
    sender: str
    subject: str
    reasons: tuple[str, ...]
    received: dt.datetime
    expires: dt.datetime


@dataclass(frozen=True)
class ListCount:
    name: str
    display_name: str
    held: int


def _local(settings: Settings, when: dt.datetime) -> str:
    return when.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M")


def moderation_routes(settings: Settings, engine: Engine, pages: Pages) -> list[Route]:
    """The routes; every one is guarded by ``require_staff``."""

    def my_lists(principal: Principal) -> list[ListCount]:
        with reading(engine) as conn:
            held = (select(Held.list_id, func.count().label("n")).where(Held.state == "held")
                    .group_by(Held.list_id).subquery())
            stmt = (select(MailingList.name, MailingList.display_name,
                           func.coalesce(held.c.n, 0))
                    .outerjoin(held, held.c.list_id == MailingList.id)
                    .where(MailingList.kind == "list").order_by(MailingList.name))
            if not principal.is_admin:
                stmt = stmt.where(MailingList.name.in_(sorted(principal.moderates)))
            return [ListCount(*row) for row in conn.execute(stmt)]

    def queue_rows(name: str) -> tuple[str, list[QueueRow]]:
        with reading(engine) as conn:
            info = get_list(conn, name)
            days = dt.timedelta(days=hold_days(info))
            rows = conn.execute(select(Held.id, Held.sender, Held.subject, Held.reasons,
                                       Held.received_at)
                                .where(Held.list_id == info.id, Held.state == "held")
                                .order_by(Held.id)).all()
        return info.display_name, [QueueRow(r.id, r.sender, r.subject or "(no subject)",
                                            tuple(r.reasons or ()), r.received_at,
                                            r.received_at + days) for r in rows]

    def held_message(name: str, held_id: int) -> tuple[dict, bytes]:
        with reading(engine) as conn:
            row = conn.execute(select(Held.__table__, MailingList.name.label("list_name"))
                               .join(MailingList, MailingList.id == Held.list_id)
                               .where(Held.id == held_id)).mappings().first()
            if row is None or row["list_name"] != name:
                raise NotFound(f"no held message {held_id} on {name}")
            raw = bytes(conn.execute(select(Inbound.raw)
                                     .where(Inbound.id == row["inbound_id"])).scalar_one())
        return dict(row), raw

    def decide(held_id: int, action: str, reason: str, who: str) -> str:
        with reading(engine) as conn:
            outcome = plan_decision(conn, held_id=held_id, decision=Decision(action, reason),
                                    decided_by=who, settings=settings)
        with writing(engine) as conn:
            if not outcome.apply(conn, now=utcnow()):
                raise InvalidInput(f"held message {held_id} was decided by someone else "
                                   "meanwhile")
        log.info("%s", outcome.note)
        return "unverified" if "discarded silently" in outcome.note else ACTIONS[action]

    @require_staff()
    async def index(request: Request) -> Response:
        principal: Principal = request.state.principal
        if not (principal.is_admin or principal.moderates):
            return forbidden(request)
        lists = await run_in_threadpool(my_lists, principal)
        return pages.render(request, "moderation_index", title="Moderation", lists=lists,
                            private=True)

    @require_staff(moderator_of="name")
    async def queue(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            display_name, rows = await run_in_threadpool(queue_rows, name)
        except NotFound:
            raise HTTPException(404) from None
        done = request.query_params.get("done", "")
        return pages.render(request, "moderation_queue", title=f"Held for {display_name}",
                            private=True, list_name=name, rows=rows, notice=DONE.get(done, ""),
                            when=lambda d: _local(settings, d))

    async def _message_page(request: Request, *, error: str = "", status: int = 200,
                            reason: str = "") -> Response:
        name, held_id = request.path_params["name"], request.path_params["id"]
        images = request.query_params.get("images") == "1"
        try:
            row, raw = await run_in_threadpool(held_message, name, held_id)
        except NotFound:
            raise HTTPException(404) from None
        view: HeldView = await run_in_threadpool(view_message, raw, images=images)
        csp = MESSAGE_CSP.format(images=" https:" if images else "")
        return pages.render(request, "moderation_message", private=True, status=status,
                            title=row["subject"] or "(no subject)", list_name=name, held=row,
                            view=view, images=images, error=error, reason=reason,
                            received=_local(settings, row["received_at"]),
                            headers={"Content-Security-Policy": csp, "Cache-Control": "no-store"})

    @require_staff(moderator_of="name")
    async def message(request: Request) -> Response:
        return await _message_page(request)

    @require_staff(moderator_of="name")
    async def decide_post(request: Request) -> Response:
        principal: Principal = request.state.principal
        name, held_id = request.path_params["name"], request.path_params["id"]
        async with request.form(max_files=0, max_fields=10, max_part_size=8192) as form:
            action = str(form.get("action", ""))
            reason = " ".join(str(form.get("reason", "")).split())[:MAX_REASON]
        if action not in ACTIONS:
            return await _message_page(request, status=400, reason=reason,
                                       error="Choose approve, reject or discard.")
        try:
            await run_in_threadpool(held_message, name, held_id)  # on this list?
            state = await run_in_threadpool(decide, held_id, action, reason, principal.email)
        except NotFound:
            raise HTTPException(404) from None
        except InvalidInput as exc:
            return await _message_page(request, status=409, reason=reason,
                                       error=f"Nothing was done: {exc}.")
        root = request.scope.get("root_path", "").rstrip("/")
        return RedirectResponse(f"{root}/moderation/{name}/?done={state}", status_code=303)

    return [
        Route("/moderation/", index, methods=["GET"]),
        Route("/moderation/{name}/", queue, methods=["GET"]),
        Route("/moderation/{name}/{id:int}", message, methods=["GET"]),
        Route("/moderation/{name}/{id:int}", decide_post, methods=["POST"]),
    ]
