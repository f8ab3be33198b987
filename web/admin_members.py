"""``/admin/members`` and ``/admin/cities``: find people, see one, add one.

``GET  /admin/members?q=&city=``  search by address or name, or by city (100 at most)
``GET  /admin/members/{id}``      a person, their city and every subscription
``GET  /admin/members/new``       the add form; ``POST`` adds through ``mailer.welcome.join``
                                  (suppression check, the role's and city's lists, both
                                  newsletters, a welcome), like ``citymail members add``
``GET  /admin/cities``            the cities with their member counts
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine, func, or_, select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from mailer import preferences as prefs
from mailer.db import reading, writing
from mailer.errors import InvalidInput
from mailer.league import League
from mailer.models import City, Member
from mailer.settings import Settings
from mailer.welcome import join
from web.auth import require_staff
from web.pages import Pages

__all__ = ["member_routes"]

log = logging.getLogger(__name__)

MAX_RESULTS = 100
MAX_FIELD = 320


@dataclass(frozen=True)
class MemberRow:
    id: int
    email: str
    name: str
    role: str | None
    city: str | None
    status: str


@dataclass(frozen=True)
class CityRow:
    name: str
    county: str | None
    coastal: bool
    rural: bool
    members: int


_MEMBERS = (select(Member.id, Member.email, Member.name, Member.role, City.name, Member.status)
            .outerjoin(City, City.id == Member.city_id))


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_members(engine: Engine, query: str, city: str) -> list[MemberRow]:
    stmt = _MEMBERS.order_by(Member.email).limit(MAX_RESULTS)
    if query:
        pattern = _like(query.lower())
        stmt = stmt.where(or_(func.lower(Member.email).like(pattern, escape="\\"),
                              func.lower(Member.name).like(pattern, escape="\\")))
    if city:
        stmt = stmt.where(City.name == city)
    with reading(engine) as conn:
        return [MemberRow(*r) for r in conn.execute(stmt)]


def member_detail(engine: Engine, member_id: int
                  ) -> tuple[MemberRow, list[prefs.SubscriptionView]] | None:
    with reading(engine) as conn:
        row = conn.execute(_MEMBERS.where(Member.id == member_id)).first()
        if row is None:
            return None
        return MemberRow(*row), prefs.subscriptions_of(conn, member_id)


def city_rows(engine: Engine) -> list[CityRow]:
    counts = (select(Member.city_id, func.count().label("n")).where(Member.status == "active")
              .group_by(Member.city_id).subquery())
    with reading(engine) as conn:
        return [CityRow(*r) for r in conn.execute(
            select(City.name, City.county, City.coastal, City.rural,
                   func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.city_id == City.id).order_by(City.name))]


def member_routes(settings: Settings, engine: Engine, pages: Pages,
                  league: League) -> list[Route]:
    def add(fields: dict[str, str]) -> tuple[int, bool]:
        with writing(engine) as conn:
            result = join(conn, settings, league, email=fields["email"], name=fields["name"],
                          city=fields["city"] or None, role=fields["role"] or None,
                          title=fields["title"] or None, source="web")
        return result.member_id, result.created

    @require_staff(admin=True)
    async def index(request: Request) -> Response:
        query = request.query_params.get("q", "").strip()[:MAX_FIELD]
        city = request.query_params.get("city", "").strip()[:MAX_FIELD]
        rows = (await run_in_threadpool(search_members, engine, query, city)
                if query or city else [])
        return pages.render(request, "admin_members", title="Members", rows=rows, q=query,
                            city=city, searched=bool(query or city), limit=MAX_RESULTS)

    @require_staff(admin=True)
    async def person(request: Request) -> Response:
        found = await run_in_threadpool(member_detail, engine, request.path_params["id"])
        if found is None:
            raise HTTPException(404)
        member, subs = found
        return pages.render(request, "admin_member", title=member.name or member.email,
                            member=member, subs=subs,
                            added=request.query_params.get("added", ""))

    async def _form(request: Request, *, values: dict[str, str] | None = None,
                    error: str = "", status: int = 200) -> Response:
        cities = await run_in_threadpool(city_rows, engine)
        blank = {k: "" for k in ("email", "name", "city", "role", "title")}
        return pages.render(request, "admin_member_new", title="Add a member", status=status,
                            values=values or blank, error=error,
                            cities=[c.name for c in cities],
                            roles=sorted(r.title() for r in league.roles))

    @require_staff(admin=True)
    async def new(request: Request) -> Response:
        return await _form(request)

    @require_staff(admin=True)
    async def create(request: Request) -> Response:
        async with request.form(max_files=0, max_fields=20, max_part_size=4096) as form:
            values = {k: str(form.get(k, "")).strip()[:MAX_FIELD]
                      for k in ("email", "name", "city", "role", "title")}
        if not values["email"]:
            return await _form(request, values=values, status=400,
                               error="Enter the person's email address.")
        try:
            member_id, created = await run_in_threadpool(add, values)
        except InvalidInput as exc:
            return await _form(request, values=values, status=400,
                               error=f"Nobody was added: {exc}.")
        log.info("member %d %s by %s", member_id, "added" if created else "updated",
                 request.state.principal.email)
        root = request.scope.get("root_path", "").rstrip("/")
        state = "new" if created else "updated"
        return RedirectResponse(f"{root}/admin/members/{member_id}?added={state}",
                                status_code=303)

    @require_staff(admin=True)
    async def cities(request: Request) -> Response:
        rows = await run_in_threadpool(city_rows, engine)
        return pages.render(request, "admin_cities", title="Cities", rows=rows)

    return [Route("/admin/members", index, methods=["GET"]),
            Route("/admin/members/new", new, methods=["GET"]),
            Route("/admin/members/new", create, methods=["POST"]),
            Route("/admin/members/{id:int}", person, methods=["GET"]),
            Route("/admin/cities", cities, methods=["GET"])]
