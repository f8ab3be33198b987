"""``/admin/lists``: every list and newsletter; one list's settings and its posting policy.

``GET  /admin/lists``          name, kind, subscribers, held posts
``GET  /admin/lists/{name}``   settings, people with roles, the policy form
``POST /admin/lists/{name}``   save the policy (``web.admin_policy`` validates it first)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select, update
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from listservs.lists import ListInfo, get_list
from listservs.posting import list_policy
from mailer.db import reading, writing
from mailer.errors import InvalidInput, NotFound
from mailer.models import Held, ListRole, MailingList, Subscription
from mailer.models_web import WebUser, WebUserList
from mailer.settings import Settings
from web.admin_policy import policy_fields, read_policy_form
from web.auth import require_staff
from web.pages import Pages

__all__ = ["list_routes"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListRow:
    name: str
    kind: str
    display_name: str
    subscribers: int
    held: int
    announce_only: bool
    delivery: str


def list_rows(engine: Engine) -> list[ListRow]:
    with reading(engine) as conn:
        subs = (select(Subscription.list_id, func.count().label("n"))
                .where(Subscription.status == "active").group_by(Subscription.list_id)
                .subquery())
        held = (select(Held.list_id, func.count().label("n")).where(Held.state == "held")
                .group_by(Held.list_id).subquery())
        rows = conn.execute(
            select(MailingList.name, MailingList.kind, MailingList.display_name,
                   func.coalesce(subs.c.n, 0), func.coalesce(held.c.n, 0),
                   MailingList.announce_only, MailingList.delivery)
            .outerjoin(subs, subs.c.list_id == MailingList.id)
            .outerjoin(held, held.c.list_id == MailingList.id)
            .order_by(MailingList.kind, MailingList.name)).all()
    return [ListRow(*r) for r in rows]


def list_detail(engine: Engine, name: str) -> tuple[ListInfo, dict[str, list[str]], int]:
    with reading(engine) as conn:
        info = get_list(conn, name)
        roles: dict[str, list[str]] = {}
        for email, role in conn.execute(select(ListRole.email, ListRole.role)
                                        .where(ListRole.list_id == info.id)
                                        .order_by(ListRole.role, ListRole.email)):
            roles.setdefault(role, []).append(email)
        staff = conn.execute(select(WebUser.email).join(
            WebUserList, WebUserList.user_id == WebUser.id).where(
            WebUserList.list_id == info.id)).scalars().all()
        if staff:
            roles["moderator (web)"] = sorted(staff)
        subscribers = conn.execute(select(func.count()).select_from(Subscription).where(
            Subscription.list_id == info.id, Subscription.status == "active")).scalar_one()
    return info, roles, subscribers


def save_policy(engine: Engine, name: str, policy: dict[str, Any], announce_only: bool) -> None:
    with writing(engine) as conn:
        info = get_list(conn, name)
        config = {**info.config, "policy": policy}
        conn.execute(update(MailingList).where(MailingList.id == info.id)
                     .values(config=config, announce_only=announce_only))


def list_routes(settings: Settings, engine: Engine, pages: Pages) -> list[Route]:
    @require_staff(admin=True)
    async def index(request: Request) -> Response:
        rows = await run_in_threadpool(list_rows, engine)
        return pages.render(request, "admin_lists", title="Lists and newsletters", rows=rows,
                            domain=settings.list_domain)

    async def _detail(request: Request, *, status: int = 200, error: str = "",
                      form: dict[str, str] | None = None) -> Response:
        name = request.path_params["name"]
        try:
            info, roles, subscribers = await run_in_threadpool(list_detail, engine, name)
        except NotFound:
            raise HTTPException(404) from None
        try:
            policy = list_policy(info)
        except ValueError as exc:  # stored settings posting would also refuse
            policy, error = list_policy(_without_policy(info)), f"Stored policy is invalid: {exc}"
        fields = policy_fields(policy, announce_only=info.announce_only)
        return pages.render(request, "admin_list", title=info.display_name, status=status,
                            info=info, roles=roles, subscribers=subscribers, fields=fields,
                            error=error, saved=request.query_params.get("saved") == "1",
                            address=f"{info.name}@{settings.list_domain}")

    @require_staff(admin=True)
    async def detail(request: Request) -> Response:
        return await _detail(request)

    @require_staff(admin=True)
    async def save(request: Request) -> Response:
        name = request.path_params["name"]
        async with request.form(max_files=0, max_fields=100, max_part_size=4096) as form:
            values = {k: str(v) for k, v in form.items()}
        try:
            info, _roles, _n = await run_in_threadpool(list_detail, engine, name)
            policy, announce_only = read_policy_form(values, info.config.get("policy") or {})
            await run_in_threadpool(save_policy, engine, name, policy, announce_only)
        except NotFound:
            raise HTTPException(404) from None
        except InvalidInput as exc:
            return await _detail(request, status=400, error=f"Nothing was saved: {exc}.")
        log.info("list %s: posting policy changed by %s", name, request.state.principal.email)
        root = request.scope.get("root_path", "").rstrip("/")
        return RedirectResponse(f"{root}/admin/lists/{name}?saved=1", status_code=303)

    return [Route("/admin/lists", index, methods=["GET"]),
            Route("/admin/lists/{name}", detail, methods=["GET"]),
            Route("/admin/lists/{name}", save, methods=["POST"])]


def _without_policy(info: ListInfo) -> ListInfo:
    from dataclasses import replace

    return replace(info, config={k: v for k, v in info.config.items() if k != "policy"})
