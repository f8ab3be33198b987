"""``/admin/bounces``: disabled deliveries, removals, the suppression list, one person.

``GET  /admin/bounces``                    subscriptions disabled by bounces (re-enable
                                           button), recent removals, suppression counts,
                                           and "is this address suppressed?"
``GET  /admin/bounces/person?email=``      what ``citymail bounces show EMAIL`` shows
``POST /admin/bounces/reenable``           ``subscription`` id: delivery back on, through
                                           ``mailer.bounce_duties.reenable`` (the path of
                                           the member's own re-enable link)
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Engine, func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from mailer.bounce_duties import reenable, reenable_token
from mailer.db import reading, utcnow, writing
from mailer.errors import InvalidInput, NotFound
from mailer.models import MailingList, Member, Subscription
from mailer.models_bounces import BounceState
from mailer.models_people import Suppression
from mailer.people import normalise_email
from mailer.privacy import is_suppressed
from mailer.settings import Settings
from web.auth import require_staff
from web.pages import Pages

__all__ = ["bounce_routes"]

log = logging.getLogger(__name__)

MAX_ROWS = 200
S = BounceState.__table__
ANSWERS = {
    "reenabled": "Delivery is back on for {email} on {list}.",
    "already_enabled": "{email} already gets {list} mail.",
    "removed": "{email} was removed from {list} after the bounces; only they can join again.",
    "invalid": "That subscription is not disabled by bounces.",
}


@dataclass(frozen=True)
class DisabledRow:
    subscription_id: int
    email: str
    list_name: str
    disabled_at: dt.datetime | None
    score: float
    warnings_sent: int
    removed_at: dt.datetime | None


def _rows(engine: Engine, *, removed: bool) -> list[DisabledRow]:
    stmt = (select(Subscription.id, Member.email, MailingList.name, S.c.disabled_at,
                   S.c.score, S.c.warnings_sent, S.c.removed_at)
            .join(Subscription, Subscription.id == S.c.subscription_id)
            .join(Member, Member.id == Subscription.member_id)
            .join(MailingList, MailingList.id == Subscription.list_id).limit(MAX_ROWS))
    if removed:
        stmt = stmt.where(S.c.removed_at.is_not(None)).order_by(S.c.removed_at.desc())
    else:
        stmt = stmt.where(S.c.delivery_status == "disabled_bounce", S.c.removed_at.is_(None),
                          Subscription.status == "active").order_by(S.c.disabled_at.desc())
    with reading(engine) as conn:
        return [DisabledRow(r[0], r[1], r[2], r[3], r[4] or 0.0, r[5] or 0, r[6])
                for r in conn.execute(stmt)]


def suppression_counts(engine: Engine) -> dict[str, int]:
    with reading(engine) as conn:
        return dict(conn.execute(select(Suppression.reason, func.count())
                                 .group_by(Suppression.reason)).all())


def _notice(request: Request) -> str:
    """The answer to a re-enable, from the redirect's query (known outcomes only)."""
    q = request.query_params
    template = ANSWERS.get(q.get("done", ""))
    return template.format(email=q.get("email", "")[:320], list=q.get("list", "")[:100]
                           ) if template else ""


def bounce_routes(settings: Settings, engine: Engine, pages: Pages) -> list[Route]:
    def check(address: str) -> bool:
        with reading(engine) as conn:
            return is_suppressed(conn, settings, address)

    def person(email: str) -> dict[str, Any]:
        # The same view as `citymail bounces show` (imported when used: it lives with the CLI).
        from mailer.bounce_view import bounce_view

        with reading(engine) as conn:
            return bounce_view(conn, email, now=utcnow())

    def turn_on(subscription_id: int) -> tuple[str, str, str]:
        with writing(engine) as conn:
            row = conn.execute(select(S.c.disabled_at).where(
                S.c.subscription_id == subscription_id)).first()
            if row is None or row.disabled_at is None:
                return "invalid", "", ""
            result = reenable(conn, reenable_token(settings, subscription_id, row.disabled_at),
                              settings=settings)
        return result.outcome, result.email or "", result.list_name or ""

    @require_staff(admin=True)
    async def index(request: Request) -> Response:
        typed = request.query_params.get("check", "").strip()[:320]
        checked: tuple[str, bool] | None = None
        error = ""
        if typed:
            try:
                address = normalise_email(typed)
                checked = (address, await run_in_threadpool(check, address))
            except InvalidInput:
                error = f"{typed!r} is not an email address."
        disabled = await run_in_threadpool(_rows, engine, removed=False)
        removed = await run_in_threadpool(_rows, engine, removed=True)
        counts = await run_in_threadpool(suppression_counts, engine)
        return pages.render(request, "admin_bounces", title="Bounces and suppressions",
                            disabled=disabled, removed=removed, counts=counts, check=typed,
                            checked=checked, error=error, limit=MAX_ROWS,
                            notice=_notice(request),
                            when=lambda d: d.astimezone(settings.zone).strftime(
                                "%Y-%m-%d %H:%M") if d else "")

    @require_staff(admin=True)
    async def show(request: Request) -> Response:
        email = request.query_params.get("email", "").strip()[:320]
        try:
            data = await run_in_threadpool(person, email)
        except (InvalidInput, NotFound) as exc:
            return pages.message(request, title="No such member", status=404,
                                 paragraphs=[str(exc)])
        return pages.render(request, "admin_bounce_person", title=f"Bounces of {data['email']}",
                            data=data)

    @require_staff(admin=True)
    async def turn_on_post(request: Request) -> Response:
        async with request.form(max_files=0, max_fields=10, max_part_size=1024) as form:
            value = str(form.get("subscription", ""))
        if not value.isdigit():
            return pages.message(request, title="Bad request", status=400,
                                 paragraphs=["No subscription was named."])
        outcome, email, list_name = await run_in_threadpool(turn_on, int(value))
        log.info("subscription %s re-enable by %s: %s", value, request.state.principal.email,
                 outcome)
        root = request.scope.get("root_path", "").rstrip("/")
        query = urlencode({"done": outcome, "email": email, "list": list_name})
        return RedirectResponse(f"{root}/admin/bounces?{query}", status_code=303)

    return [Route("/admin/bounces", index, methods=["GET"]),
            Route("/admin/bounces/person", show, methods=["GET"]),
            Route("/admin/bounces/reenable", turn_on_post, methods=["POST"])]
