"""The admin pages under ``/admin/``: the start page, and the routes of each section.

Sections, each in its own module: lists and their posting policy (``admin_lists``),
members and cities (``admin_members``), roster import (``admin_roster``), bounces and
suppressions (``admin_bounces``).  Every route is for admins (``require_staff(admin=True)``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailer.db import reading
from mailer.league import load_league
from mailer.models import Held, Member
from mailer.models_bounces import BounceState
from mailer.settings import Settings
from web.admin_bounces import bounce_routes
from web.admin_lists import list_routes
from web.admin_members import member_routes
from web.admin_roster import ROSTER_UPLOAD_LIMIT, ROSTER_UPLOAD_PATH, roster_routes
from web.auth import require_staff
from web.pages import Pages

__all__ = ["ROSTER_UPLOAD_LIMIT", "ROSTER_UPLOAD_PATH", "admin_routes"]


@dataclass(frozen=True)
class Summary:
    members: int
    held: int
    disabled: int


def summary(engine: Engine) -> Summary:
    with reading(engine) as conn:
        members = conn.execute(select(func.count()).select_from(Member)
                               .where(Member.status == "active")).scalar_one()
        held = conn.execute(select(func.count()).select_from(Held)
                            .where(Held.state == "held")).scalar_one()
        disabled = conn.execute(select(func.count()).select_from(BounceState).where(
            BounceState.delivery_status == "disabled_bounce",
            BounceState.removed_at.is_(None))).scalar_one()
    return Summary(members, held, disabled)


def admin_routes(settings: Settings, engine: Engine, pages: Pages) -> list[Route]:
    league = load_league()

    @require_staff(admin=True)
    async def home(request: Request) -> Response:
        counts = await run_in_threadpool(summary, engine)
        return pages.render(request, "admin_home", title="Administration", counts=counts)

    return [Route("/admin/", home, methods=["GET"]),
            *list_routes(settings, engine, pages),
            *member_routes(settings, engine, pages, league),
            *roster_routes(settings, engine, pages, league),
            *bounce_routes(settings, engine, pages)]
