"""Roster import and export: plan from a snapshot without a write lock, then apply at once.

An import reads what the database holds in a read transaction (no write lock), decides
every add, change and disable from the file (``make_plan``, a pure function), and builds
every welcome message.  Only then does ``apply_plan`` write, in ONE transaction of
set-based statements (executemany INSERTs and UPDATEs), which holds the write lock for a
fraction of a second even for thousands of rows, so the gateway never waits long enough
to answer 451.  The transaction first checks that the snapshot is still current (a
fingerprint of members, subscriptions, cities, caucuses and suppressions); if another
writer changed them meanwhile nothing is written and the import plans again.  So an
import is all or nothing, and a dry run reports exactly what the import then does.

Rules (DESIGN.md, "Who joins what"; decided in ``mailer.rosterplan``): an import is an
upsert; an empty cell leaves a value as it is; everyone joins both newsletters and their
role's and city's lists; what a person left, or what bounces removed, is never re-added
(``mailer.people.subscribe`` with a source other than "self"); an address that asked to be
forgotten is skipped; with ``sync`` the file is the whole roster and league members
missing from it are disabled, never deleted, and only with the ``confirm`` token of a dry
run that listed exactly them.  New members' ids are reserved in the plan, so welcomes are
built before the write.
"""

from __future__ import annotations

import datetime as dt
import gc
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select, text

from mailer import webhooks
from mailer.bulk import bulk_insert, bulk_update, reserve_ids
from mailer.db import reading, utcnow, writing
from mailer.errors import CitymailError, InvalidInput
from mailer.league import League
from mailer.models import City, Member, Subscription
from mailer.models_people import MemberCaucus
from mailer.rostercsv import RosterFile, RosterRow, read_roster
from mailer.rosterplan import Plan, Snapshot, fingerprint, make_plan, read_snapshot
from mailer.settings import Settings
from mailer.welcome import ListRef, Welcome, WelcomeWriter, list_refs, ordered, queue_welcomes

__all__ = ["ImportResult", "StalePlan", "apply_plan", "export_rows", "import_roster"]

Progress = Callable[[str, int, int], None]  # (stage, done, total)
SOURCE = "import"


class StalePlan(CitymailError):
    """The database changed between planning and applying; nothing was written."""


def build_welcomes(plan: Plan, snap: Snapshot, settings: Settings, *,
                   progress: Progress | None = None) -> list[Welcome]:
    writer = WelcomeWriter(settings)
    out = []
    for i, a in enumerate(plan.adds, 1):
        out.append(writer.message(member_id=a.member_id, email=a.email, name=a.name,
                                  role=a.role, city=a.city,
                                  lists=ordered([snap.lists[n] for n in a.lists])))
        if progress and (i % 250 == 0 or i == len(plan.adds)):
            progress("writing welcomes", i, len(plan.adds))
    return out


# -- applying ------------------------------------------------------------------------------
def _write_cities(conn: Connection, plan: Plan, snap: Snapshot) -> dict[str, int]:
    ids = {name: c.id for name, c in snap.cities.items()}
    new = [c for c in plan.cities if c.id is None]
    if new:
        created = reserve_ids(conn, City, len(new))
        bulk_insert(conn, City, [
            {"id": ident, "name": c.name, "county": c.county or None,
             "division": c.division or None, "coastal": False, "rural": False}
            for ident, c in zip(created, new, strict=True)])
        ids.update(zip((c.name for c in new), created, strict=True))
    bulk_update(conn, City, [
        {"id": c.id, "county": c.county or None, "division": c.division or None}
        for c in plan.cities if c.id is not None])
    return ids


def apply_plan(engine: Engine, plan: Plan, snap: Snapshot, *,
               welcomes: list[Welcome]) -> float:
    """Write the plan in one transaction; returns the seconds the write lock was held
    (from BEGIN IMMEDIATE to the end of COMMIT).

    Raises ``StalePlan`` (nothing written) when the database changed since the snapshot.
    """
    now = utcnow()
    lists = {name: ref.id for name, ref in snap.lists.items()}
    collecting = gc.isenabled()
    gc.disable()  # no collector pauses of the large plan while the lock is held (~30%)
    try:
        return _apply(engine, plan, snap, welcomes, now, lists)
    finally:
        if collecting:
            gc.enable()


def _emit_roster_events(conn: Connection, plan: Plan) -> None:
    """Webhook events of an import, set-based like the rest (nothing when nobody listens)."""
    webhooks.emit(conn, "member.added", [
        {"email": a.email, "name": a.name, "city": a.city, "role": a.role,
         "league_member": True, "source": SOURCE} for a in plan.adds])
    webhooks.emit(conn, "member.removed", [
        {"email": d.email, "reason": "disabled"} for d in plan.disables])
    webhooks.emit(conn, "subscription.changed", [
        {"email": x.email, "list": n, "status": "active", "mode": "regular",
         "source": SOURCE} for x in (*plan.adds, *plan.changes) for n in x.lists])


def _apply(engine: Engine, plan: Plan, snap: Snapshot, welcomes: list[Welcome],
           now: dt.datetime, lists: Mapping[str, int]) -> float:
    with writing(engine) as conn:
        started = time.perf_counter()
        if conn.dialect.name == "postgresql":
            conn.execute(text("LOCK TABLE members, subscriptions, cities, member_caucuses, "
                              "suppressions IN SHARE ROW EXCLUSIVE MODE"))
        if fingerprint(conn) != plan.fingerprint:
            raise StalePlan("the members changed while the import was being planned")
        city_ids = _write_cities(conn, plan, snap)
        bulk_insert(conn, Member, [
            {"id": a.member_id, "email": a.email, "name": a.name, "title": a.title or None,
             "role": a.role or None, "city_id": city_ids.get(a.city), "is_league_member": True,
             "status": "active", "created_at": now, "updated_at": now} for a in plan.adds])
        if plan.adds and conn.dialect.name == "postgresql":
            conn.execute(text("SELECT setval(pg_get_serial_sequence('members', 'id'), "
                              "(SELECT max(id) FROM members))"))
        bulk_update(conn, Member, [
            {"id": c.member_id, "name": c.values["name"], "title": c.values["title"],
             "role": c.values["role"], "city_id": city_ids.get(c.values["city"]),
             "status": "active", "is_league_member": True, "updated_at": now}
            for c in plan.changes])
        subscriptions = [(a.member_id, n) for a in plan.adds for n in a.lists]
        subscriptions += [(c.member_id, n) for c in plan.changes for n in c.lists]
        bulk_insert(conn, Subscription, [
            {"member_id": m, "list_id": lists[n], "mode": "regular", "status": "active",
             "source": SOURCE, "created_at": now, "updated_at": now}
            for m, n in subscriptions])
        caucuses = [(a.member_id, n) for a in plan.adds for n in a.caucuses]
        caucuses += [(c.member_id, n) for c in plan.changes for n in c.caucuses]
        bulk_insert(conn, MemberCaucus,
                    [{"member_id": m, "name": n} for m, n in caucuses])
        bulk_update(conn, Member, [
            {"id": d.member_id, "status": "disabled", "updated_at": now}
            for d in plan.disables])
        _emit_roster_events(conn, plan)
        queue_welcomes(conn, welcomes)
    return time.perf_counter() - started  # the commit (and its fsync) included


@dataclass(frozen=True)
class ImportResult:
    plan: Plan
    applied: bool
    welcomes: int = 0
    lock_seconds: float | None = None
    seconds: float = 0.0
    attempts: int = 1
    rejected: bool = False  # bad rows, and skipping them was not asked for


def import_roster(engine: Engine, settings: Settings, league: League, data: bytes, *,
                  sync: bool = False, dry_run: bool = False, skip_bad_rows: bool = False,
                  welcome: bool = True, confirm: str | None = None,
                  progress: Progress | None = None, attempts: int = 3) -> ImportResult:
    """Plan, and unless told otherwise apply, a roster import (see the module docstring).

    Not applied (``applied`` False): a dry run; a file with bad rows (unless
    ``skip_bad_rows``); a ``sync`` that would disable members without the ``confirm`` token
    a dry run printed for exactly those members.
    """
    if sync and skip_bad_rows:
        raise InvalidInput("--sync needs the whole roster: fix the bad rows instead of "
                           "skipping them (a skipped row's member would be disabled)")
    started = time.perf_counter()
    roster: RosterFile | None = None
    for attempt in range(1, attempts + 1):
        with reading(engine) as conn:
            snap = read_snapshot(conn)
        if roster is None:
            roster = read_roster(data, known_lists=snap.lists.keys())
            if progress:
                progress("reading rows", roster.records, roster.records)
        plan = make_plan(roster, snap, league, settings, sync=sync)
        rejected = bool(roster.errors) and not skip_bad_rows
        unconfirmed = sync and bool(plan.disables) and confirm != plan.confirm_token
        if dry_run or rejected or unconfirmed:
            return ImportResult(plan, False, seconds=time.perf_counter() - started,
                                attempts=attempt, rejected=rejected)
        if not (plan.adds or plan.changes or plan.disables or plan.cities):
            return ImportResult(plan, True, 0, 0.0, time.perf_counter() - started, attempt)
        welcomes = build_welcomes(plan, snap, settings, progress=progress) if welcome else []
        size = len(plan.adds) + len(plan.changes) + len(plan.disables)
        if progress:
            progress("saving members", 0, size)
        try:
            lock = apply_plan(engine, plan, snap, welcomes=welcomes)
        except StalePlan:
            continue
        if progress:
            progress("saving members", size, size)
        return ImportResult(plan, True, len(welcomes), lock, time.perf_counter() - started,
                            attempt)
    raise StalePlan(f"the members kept changing during the import ({attempts} attempts); "
                    "nothing was imported; try again")


# -- export --------------------------------------------------------------------------------
def export_rows(conn: Connection) -> list[RosterRow]:
    """Active league members as roster rows (lists: their active subscriptions)."""
    m = Member.__table__.c
    rows = conn.execute(
        select(m.id, m.email, m.name, m.title, m.role, City.name.label("city"), City.county,
               City.division)
        .outerjoin(City, City.id == m.city_id)
        .where(m.status == "active", m.is_league_member.is_(True)).order_by(m.email)).all()
    snap_lists = {ref.id: ref for ref in list_refs(conn).values()}
    subs: dict[int, list[ListRef]] = {}
    for member_id, list_id in conn.execute(
            select(Subscription.member_id, Subscription.list_id)
            .where(Subscription.status == "active")):
        subs.setdefault(member_id, []).append(snap_lists[list_id])
    caucuses: dict[int, list[str]] = {}
    for member_id, name in conn.execute(select(MemberCaucus.member_id, MemberCaucus.name)
                                        .order_by(MemberCaucus.name)):
        caucuses.setdefault(member_id, []).append(name)
    return [RosterRow(0, r.email, r.name or "", r.title or "", r.role or "", r.city or "",
                      r.county or "", r.division or "", tuple(caucuses.get(r.id, ())),
                      tuple(ref.name for ref in ordered(subs.get(r.id, []))))
            for r in rows]
