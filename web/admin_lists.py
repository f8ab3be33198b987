"""``/admin/lists``: every list and newsletter; one list's settings, policy and digest.

``GET  /admin/lists``                         name, kind, subscribers, held posts
``GET  /admin/lists/{name}``                  people with roles and the forms below
``POST /admin/lists/{name}``                  save the policy (``web.admin_policy``)
``POST /admin/lists/{name}/settings``         the ``lists set`` keys (``web.admin_list_settings``)
``POST /admin/lists/{name}/digest``           the digest options, as ``lists digest`` stores them
``POST /admin/lists/{name}/digest/send``      ``lists digest NAME --send-now``
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select, update
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from listservs import digests
from listservs.digest_schedule import DigestRules
from listservs.lists import ListInfo, get_list
from listservs.posting import list_policy
from mailer.db import reading, writing
from mailer.errors import InvalidInput, NotFound
from mailer.models import Held, ListRole, MailingList, Subscription
from mailer.models_web import WebUser, WebUserList
from mailer.settings import Settings
from web.admin_list_settings import (
    FormRefused,
    digest_fields,
    list_settings_of,
    save_digest,
    save_settings,
    setting_fields,
)
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


@dataclass(frozen=True)
class ListDetail:
    info: ListInfo
    roles: dict[str, list[str]]
    subscribers: int
    settings: dict[str, Any]  # every ``lists set`` key's current value


def list_detail(engine: Engine, name: str) -> ListDetail:
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
        current = list_settings_of(conn, info.id)
    return ListDetail(info, roles, subscribers, current)


def save_policy(engine: Engine, name: str, policy: dict[str, Any], announce_only: bool) -> None:
    with writing(engine) as conn:
        info = get_list(conn, name)
        config = {**info.config, "policy": policy}
        conn.execute(update(MailingList).where(MailingList.id == info.id)
                     .values(config=config, announce_only=announce_only))


# ?saved= and ?sent= after a redirect: what the page then says.
SAVED = {"1": "The posting policy is saved.", "settings": "The list settings are saved.",
         "digest": "The digest settings are saved."}


def _notice(query: Mapping[str, str]) -> str:
    sent = query.get("sent", "")
    if sent == "none":
        return "No posts are waiting; no digest was sent."
    numbers = sent.split(".")
    if len(numbers) == 4 and all(n.isdigit() for n in numbers):
        volume, issue, items, recipients = numbers
        return (f"Sent Vol {volume}, Issue {issue} ({items} posts) to {recipients} "
                "members.")
    return SAVED.get(query.get("saved", ""), "")


def list_routes(settings: Settings, engine: Engine, pages: Pages) -> list[Route]:
    @require_staff(admin=True)
    async def index(request: Request) -> Response:
        rows = await run_in_threadpool(list_rows, engine)
        return pages.render(request, "admin_lists", title="Lists and newsletters", rows=rows,
                            domain=settings.list_domain)

    def _digest(info: ListInfo) -> tuple[DigestRules, dict[str, Any] | None, str]:
        """(rules for the form, ``lists digest --status``, why they cannot be read)."""
        try:
            return (digests.rules_for(info, settings),
                    digests.digest_status(engine, settings, info.name), "")
        except InvalidInput as exc:  # settings stored by hand that sending would refuse
            return (DigestRules(zone=settings.timezone), None,
                    f"Stored digest settings are invalid: {exc}")

    async def _detail(request: Request, *, status: int = 200, error: str = "",
                      settings_form: Mapping[str, str] | None = None,
                      settings_errors: Mapping[str, str] | None = None,
                      digest_form: Mapping[str, str] | None = None,
                      digest_errors: Mapping[str, str] | None = None) -> Response:
        name = request.path_params["name"]
        try:
            detail = await run_in_threadpool(list_detail, engine, name)
        except NotFound:
            raise HTTPException(404) from None
        info = detail.info
        try:
            policy = list_policy(info)
        except ValueError as exc:  # stored settings posting would also refuse
            policy, error = list_policy(_without_policy(info)), f"Stored policy is invalid: {exc}"
        rules, digest_status, digest_error = (await run_in_threadpool(_digest, info)
                                              if info.kind == "list" else (None, None, ""))
        return pages.render(
            request, "admin_list", title=info.display_name, status=status, info=info,
            roles=detail.roles, subscribers=detail.subscribers, error=error,
            fields=policy_fields(policy, announce_only=info.announce_only),
            setting_fields=setting_fields(detail.settings, form=settings_form,
                                          errors=settings_errors),
            digest_fields=(digest_fields(rules, form=digest_form, errors=digest_errors)
                           if rules is not None else []),
            digest=digest_status, digest_error=digest_error,
            notice=_notice(request.query_params),
            address=f"{info.name}@{settings.list_domain}")

    async def _form(request: Request) -> dict[str, str]:
        async with request.form(max_files=0, max_fields=100, max_part_size=4096) as form:
            return {k: str(v) for k, v in form.items()}

    def _back(request: Request, query: str) -> Response:
        root = request.scope.get("root_path", "").rstrip("/")
        name = request.path_params["name"]
        return RedirectResponse(f"{root}/admin/lists/{name}?{query}", status_code=303)

    @require_staff(admin=True)
    async def detail(request: Request) -> Response:
        return await _detail(request)

    @require_staff(admin=True)
    async def save(request: Request) -> Response:
        name = request.path_params["name"]
        values = await _form(request)
        try:
            info = (await run_in_threadpool(list_detail, engine, name)).info
            policy, announce_only = read_policy_form(values, info.config.get("policy") or {})
            await run_in_threadpool(save_policy, engine, name, policy, announce_only)
        except NotFound:
            raise HTTPException(404) from None
        except InvalidInput as exc:
            return await _detail(request, status=400, error=f"Nothing was saved: {exc}.")
        log.info("list %s: posting policy changed by %s", name, request.state.principal.email)
        return _back(request, "saved=1")

    @require_staff(admin=True)
    async def save_list_settings(request: Request) -> Response:
        name = request.path_params["name"]
        values = await _form(request)
        try:
            changes = await run_in_threadpool(save_settings, engine, name, values)
        except NotFound:
            raise HTTPException(404) from None
        except FormRefused as exc:
            return await _detail(request, status=400, settings_form=values,
                                 settings_errors=exc.errors,
                                 error="Nothing was saved: correct the settings marked below.")
        log.info("list %s: settings %s changed by %s", name, sorted(changes),
                 request.state.principal.email)
        return _back(request, "saved=settings")

    @require_staff(admin=True)
    async def save_digest_settings(request: Request) -> Response:
        name = request.path_params["name"]
        values = await _form(request)
        try:
            changes = await run_in_threadpool(
                functools.partial(save_digest, engine, name, values, zone=settings.timezone))
        except NotFound:
            raise HTTPException(404) from None
        except FormRefused as exc:
            return await _detail(request, status=400, digest_form=values,
                                 digest_errors=exc.errors, error="Nothing was saved: correct "
                                 "the digest settings marked below.")
        except InvalidInput as exc:  # the options together (or what was stored) are refused
            return await _detail(request, status=400, digest_form=values,
                                 error=f"Nothing was saved: {exc}.")
        log.info("list %s: digest settings %s changed by %s", name, sorted(changes),
                 request.state.principal.email)
        return _back(request, "saved=digest")

    @require_staff(admin=True)
    async def send_now(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            sent = await run_in_threadpool(functools.partial(
                digests.send_digest, engine, settings, name, reason="manual"))
        except NotFound:
            raise HTTPException(404) from None
        except InvalidInput as exc:
            return await _detail(request, status=400, error=f"No digest was sent: {exc}.")
        log.info("list %s: digest sent now by %s (%s)", name, request.state.principal.email,
                 "nothing waiting" if sent is None else f"vol {sent.volume} issue {sent.issue}")
        if sent is None:
            return _back(request, "sent=none")
        return _back(request, f"sent={sent.volume}.{sent.issue}.{sent.items}.{sent.recipients}")

    return [Route("/admin/lists", index, methods=["GET"]),
            Route("/admin/lists/{name}", detail, methods=["GET"]),
            Route("/admin/lists/{name}", save, methods=["POST"]),
            Route("/admin/lists/{name}/settings", save_list_settings, methods=["POST"]),
            Route("/admin/lists/{name}/digest", save_digest_settings, methods=["POST"]),
            Route("/admin/lists/{name}/digest/send", send_now, methods=["POST"])]


def _without_policy(info: ListInfo) -> ListInfo:
    from dataclasses import replace

    return replace(info, config={k: v for k, v in info.config.items() if k != "policy"})
