"""Roster planning: what an import will do, decided from a snapshot without a write lock.

``read_snapshot`` reads members, cities, lists, subscriptions, caucuses and suppressions
in one read transaction, with a ``fingerprint`` that changes whenever any of them does.
``make_plan`` is a pure function from (roster file, snapshot, league defaults) to a
``Plan``: adds (with their member ids reserved), changes, disables, cities, and what is
kept out (people who left a list, or whose address bounced off it) or skipped (addresses
that asked to be forgotten).  ``mailer.roster`` applies a plan.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, func, select

from mailer.errors import NotFound
from mailer.league import League
from mailer.models import City, Member, Subscription
from mailer.models_people import MemberCaucus, Suppression
from mailer.privacy import address_digests
from mailer.rostercsv import RosterFile, RosterRow
from mailer.settings import Settings
from mailer.welcome import ListRef, list_refs

__all__ = [
    "Add", "Change", "CityPlan", "Disable", "Plan", "Snapshot", "fingerprint", "make_plan",
    "read_snapshot",
]


@dataclass(frozen=True)
class Known:
    """A member as the snapshot holds them."""

    id: int
    email: str
    name: str
    title: str
    role: str
    city: str
    status: str
    league: bool


@dataclass(frozen=True)
class CityFacts:
    id: int
    name: str
    county: str
    division: str
    coastal: bool
    rural: bool


@dataclass(frozen=True)
class Snapshot:
    """What the database holds, read in one read transaction."""

    members: Mapping[str, Known]
    cities: Mapping[str, CityFacts]
    lists: Mapping[str, ListRef]
    subscriptions: Mapping[int, Mapping[int, str]]  # member id -> list id -> status
    caucuses: Mapping[int, frozenset[str]]
    suppressed: frozenset[str]
    fingerprint: tuple[Any, ...]
    next_member_id: int


@dataclass(frozen=True)
class Add:
    row: int
    member_id: int
    email: str
    name: str
    title: str
    role: str
    city: str
    lists: tuple[str, ...]
    caucuses: tuple[str, ...]


@dataclass(frozen=True)
class Change:
    row: int
    member_id: int
    email: str
    fields: tuple[tuple[str, str, str], ...]  # (column, old, new)
    lists: tuple[str, ...]  # newly subscribed
    caucuses: tuple[str, ...]  # newly recorded
    values: Mapping[str, Any] = field(default_factory=dict, compare=False)  # final row


@dataclass(frozen=True)
class Disable:
    member_id: int
    email: str


@dataclass(frozen=True)
class CityPlan:
    name: str
    id: int | None  # None: a new city
    county: str
    division: str


@dataclass(frozen=True)
class Plan:
    """Everything an import will do, decided before anything is written."""

    file: RosterFile
    adds: tuple[Add, ...]
    changes: tuple[Change, ...]
    disables: tuple[Disable, ...]
    cities: tuple[CityPlan, ...]
    kept_out: tuple[tuple[str, str], ...]  # (email, list): they left it, not re-added
    suppressed: tuple[tuple[int, str], ...]  # (row, email): asked to be forgotten
    unchanged: int
    sync: bool
    fingerprint: tuple[Any, ...] = field(compare=False)

    @property
    def confirm_token(self) -> str:
        """Names the exact set of disables a ``--sync`` run may apply."""
        ids = ",".join(str(d.member_id) for d in self.disables)
        return hashlib.sha256(ids.encode()).hexdigest()[:10]

    def to_json(self) -> dict[str, Any]:
        f = self.file
        return {
            "file": {"records": f.records, "encoding": f.encoding, "delimiter": f.delimiter,
                     "ignored_columns": list(f.ignored_columns)},
            "errors": [{"row": e.row, "column": e.column, "why": e.why} for e in f.errors],
            "bad_rows": list(f.bad_rows),
            "duplicates": [{"row": d.row, "first_row": d.first_row, "email": d.email,
                            "replaced": list(d.replaced)} for d in f.duplicates],
            "add": [{"row": a.row, "email": a.email, "name": a.name, "title": a.title,
                     "role": a.role, "city": a.city, "lists": list(a.lists),
                     "caucuses": list(a.caucuses)} for a in self.adds],
            "change": [{"row": c.row, "email": c.email,
                        "fields": {k: [old, new] for k, old, new in c.fields},
                        "lists": list(c.lists), "caucuses": list(c.caucuses)}
                       for c in self.changes],
            "disable": [d.email for d in self.disables],
            "cities": [{"name": c.name, "new": c.id is None, "county": c.county,
                        "division": c.division} for c in self.cities],
            "kept_out": [{"email": e, "list": n} for e, n in self.kept_out],
            "suppressed": [{"row": r, "email": e} for r, e in self.suppressed],
            "unchanged": self.unchanged,
            "sync": self.sync,
            "confirm": self.confirm_token if self.sync and self.disables else None,
        }


# -- reading -------------------------------------------------------------------------------
def fingerprint(conn: Connection) -> tuple[Any, ...]:
    """Changes whenever a member, subscription, city, caucus or suppression changes."""
    m, s = Member.__table__.c, Subscription.__table__.c
    row = conn.execute(select(
        select(func.count()).select_from(Member).scalar_subquery(),
        select(func.max(m.id)).scalar_subquery(),
        select(func.max(m.updated_at)).scalar_subquery(),
        select(func.count()).select_from(Subscription).scalar_subquery(),
        select(func.max(s.updated_at)).scalar_subquery(),
        select(func.count()).select_from(City).scalar_subquery(),
        select(func.count()).select_from(MemberCaucus).scalar_subquery(),
        select(func.count()).select_from(Suppression).scalar_subquery(),
    )).one()
    return tuple(row)


def read_snapshot(conn: Connection) -> Snapshot:
    # The fingerprint first: on PostgreSQL (READ COMMITTED) each statement may see newer
    # data, and a change between here and the reads below must make the plan stale.
    mark = fingerprint(conn)
    m = Member.__table__.c
    cities = {r.name: CityFacts(r.id, r.name, r.county or "", r.division or "",
                                bool(r.coastal), bool(r.rural))
              for r in conn.execute(select(City.__table__))}
    by_id = {c.id: c.name for c in cities.values()}
    members = {r.email: Known(r.id, r.email, r.name or "", r.title or "", r.role or "",
                              by_id.get(r.city_id, ""), r.status, bool(r.is_league_member))
               for r in conn.execute(select(m.id, m.email, m.name, m.title, m.role,
                                            m.city_id, m.status, m.is_league_member))}
    subs: dict[int, dict[int, str]] = {}
    for member_id, list_id, status in conn.execute(
            select(Subscription.member_id, Subscription.list_id, Subscription.status)):
        subs.setdefault(member_id, {})[list_id] = status
    caucuses: dict[int, set[str]] = {}
    for member_id, name in conn.execute(select(MemberCaucus.member_id, MemberCaucus.name)):
        caucuses.setdefault(member_id, set()).add(name)
    top = max((k.id for k in members.values()), default=0)
    return Snapshot(
        members=members, cities=cities, lists=list_refs(conn), subscriptions=subs,
        caucuses={k: frozenset(v) for k, v in caucuses.items()},
        suppressed=frozenset(conn.scalars(select(Suppression.digest))),
        fingerprint=mark, next_member_id=top + 1)


# -- planning (pure) -----------------------------------------------------------------------
def _city_plans(rows: Iterable[RosterRow], snap: Snapshot) -> list[CityPlan]:
    plans: dict[str, CityPlan] = {}
    for r in rows:
        if not r.city:
            continue
        known = snap.cities.get(r.city)
        current = plans.get(r.city) or (CityPlan(r.city, known.id, known.county, known.division)
                                        if known else CityPlan(r.city, None, "", ""))
        plans[r.city] = CityPlan(r.city, current.id, r.county or current.county,
                                 r.division or current.division)
    return [p for p in plans.values()
            if p.id is None or (p.county, p.division) != (snap.cities[p.name].county,
                                                          snap.cities[p.name].division)]


def _wanted(league: League, snap: Snapshot, *, role: str, city: str,
            extra: Iterable[str]) -> list[str]:
    facts = snap.cities.get(city)
    names = league.newsletter_names + league.lists_for(
        role=role or None, coastal=bool(facts and facts.coastal), rural=bool(facts and facts.rural))
    missing = [n for n in names if n not in snap.lists]
    if missing:
        raise NotFound(f"the league's defaults name {', '.join(missing)}, which do not exist "
                       "(run: citymail init)")
    return list(dict.fromkeys([*names, *extra]))


def _change(r: RosterRow, k: Known, league: League, snap: Snapshot,
            kept_out: list[tuple[str, str]]) -> Change | None:
    fields = [(name, getattr(k, name), getattr(r, name))
              for name in ("name", "title", "role", "city")
              if getattr(r, name) and getattr(r, name) != getattr(k, name)]
    if k.status != "active":
        fields.append(("status", k.status, "active"))
    if not k.league:
        fields.append(("league member", "no", "yes"))
    role, city = r.role or k.role, r.city or k.city
    current = snap.subscriptions.get(k.id, {})
    lists = []
    for name in _wanted(league, snap, role=role, city=city, extra=r.lists):
        status = current.get(snap.lists[name].id)
        if status is None:
            lists.append(name)
        elif status != "active":
            kept_out.append((k.email, name))
    had = snap.caucuses.get(k.id, frozenset())
    caucuses = tuple(c for c in r.caucuses if c not in had)
    if not (fields or lists or caucuses):
        return None
    values = {"name": r.name or k.name, "title": r.title or k.title or None,
              "role": role or None, "city": city, "status": "active"}
    return Change(r.row, k.id, k.email, tuple(fields), tuple(lists), caucuses, values)


def _known_city_spelling(rows: Iterable[RosterRow], snap: Snapshot) -> list[RosterRow]:
    """"SACRAMENTO" in a file is the Sacramento citymail knows (or the file's first spelling)."""
    spelling = {name.lower(): name for name in snap.cities}
    out = []
    for r in rows:
        city = spelling.setdefault(r.city.lower(), r.city) if r.city else ""
        out.append(r if city == r.city else replace(r, city=city))
    return out


def make_plan(roster: RosterFile, snap: Snapshot, league: League, settings: Settings, *,
              sync: bool = False) -> Plan:
    """Decide every add, change and disable; reads nothing but its arguments."""
    adds: list[Add] = []
    changes: list[Change] = []
    kept_out: list[tuple[str, str]] = []
    suppressed: list[tuple[int, str]] = []
    unchanged = 0
    next_id = snap.next_member_id
    rows = _known_city_spelling(roster.rows, snap)
    for r in rows:
        if snap.suppressed.intersection(address_digests(settings, r.email)):
            suppressed.append((r.row, r.email))
            continue
        known = snap.members.get(r.email)
        if known is None:
            lists = _wanted(league, snap, role=r.role, city=r.city, extra=r.lists)
            adds.append(Add(r.row, next_id, r.email, r.name, r.title, r.role, r.city,
                            tuple(lists), r.caucuses))
            next_id += 1
            continue
        change = _change(r, known, league, snap, kept_out)
        if change is None:
            unchanged += 1
        else:
            changes.append(change)
    disables: list[Disable] = []
    if sync:
        present = roster.mentioned
        disables = [Disable(k.id, k.email) for k in sorted(snap.members.values(),
                                                           key=lambda k: k.email)
                    if k.league and k.status == "active" and k.email not in present]
    return Plan(roster, tuple(adds), tuple(changes), tuple(disables),
                tuple(_city_plans(rows, snap)), tuple(kept_out), tuple(suppressed),
                unchanged, sync, snap.fingerprint)
