"""Service functions behind the CLI verbs: each opens its own short transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from listservs.list_settings import current_settings
from listservs.lists import get_list
from mailer import delivery, schema
from mailer.db import make_engine, reading, writing
from mailer.errors import NotFound
from mailer.league import load_league, seed_lists
from mailer.models import Held, MailingList, Member, Outbound, Subscription
from mailer.people import normalise_email
from mailer.settings import Settings
from mailer.welcome import join

__all__ = ["init", "lists_held", "lists_members", "lists_show", "members_add", "members_show"]


def init(settings: Settings) -> int:
    engine = make_engine(settings)
    try:
        schema.upgrade(engine)
        with writing(engine) as conn:
            return seed_lists(conn, load_league())
    finally:
        engine.dispose()


def index_archive(settings: Settings) -> int:
    """Index archived posts that predate the archive's search tables (an upgrade)."""
    from listservs.archive_store import index_missing

    engine = make_engine(settings)
    try:
        total = 0
        while added := index_missing(engine):
            total += added
        return total
    finally:
        engine.dispose()


def lists_show(settings: Settings, name: str | None) -> list[dict[str, Any]]:
    engine = make_engine(settings)
    try:
        with reading(engine) as conn:
            if name is not None:
                get_list(conn, name)  # NotFound with a hint
            counts = (select(Subscription.list_id, func.count().label("n"))
                      .where(Subscription.status == "active").group_by(Subscription.list_id)
                      .subquery())
            stmt = (select(MailingList.__table__, func.coalesce(counts.c.n, 0).label("subs"))
                    .outerjoin(counts, counts.c.list_id == MailingList.id)
                    .order_by(MailingList.kind, MailingList.name))
            if name is not None:
                stmt = stmt.where(MailingList.name == name)
            rows = conn.execute(stmt).mappings().all()
    finally:
        engine.dispose()
    return [{
        "name": r["name"], "kind": r["kind"],
        "address": f"{r['name']}@{settings.list_domain}",
        "display_name": r["display_name"], "description": r["description"],
        "list_id": r["list_id"] or f"{r['name']}.{settings.list_domain}",
        "announce_only": bool(r["announce_only"]), "private_archive": bool(r["private_archive"]),
        "delivery": r["delivery"], "subscribers": int(r["subs"]),
        "settings": current_settings(dict(r["config"] or {}), dict(r)),  # lists set KEY
    } for r in rows]


def lists_members(settings: Settings, name: str) -> list[dict[str, Any]]:
    engine = make_engine(settings)
    try:
        with reading(engine) as conn:
            info = get_list(conn, name)
            rows = conn.execute(
                select(Member.email, Member.name, Subscription.mode)
                .join(Member, Member.id == Subscription.member_id)
                .where(Subscription.list_id == info.id, Subscription.status == "active")
                .order_by(Member.email)).all()
    finally:
        engine.dispose()
    return [{"email": r.email, "name": r.name, "mode": r.mode} for r in rows]


def lists_held(settings: Settings, name: str) -> list[dict[str, Any]]:
    engine = make_engine(settings)
    try:
        with reading(engine) as conn:
            info = get_list(conn, name)
            rows = conn.execute(
                select(Held.__table__).where(Held.list_id == info.id, Held.state == "held")
                .order_by(Held.id)).mappings().all()
    finally:
        engine.dispose()
    return [{"id": r["id"], "sender": r["sender"], "subject": r["subject"],
             "reasons": list(r["reasons"] or []), "received": r["received_at"].isoformat()}
            for r in rows]


@dataclass(frozen=True)
class MemberAdded:
    email: str
    created: bool
    subscribed: tuple[str, ...]
    kept_out: tuple[str, ...]


def members_add(settings: Settings, *, email: str, name: str, city: str, role: str | None,
                lists: list[str], welcome: bool = True) -> MemberAdded:
    """Add a member the way every admin path does: suppression check, then a welcome."""
    engine = make_engine(settings)
    try:
        with writing(engine) as conn:
            result = join(conn, settings, load_league(), email=email, name=name, city=city,
                          role=role, extra_lists=lists, source="cli", welcome=welcome)
    finally:
        engine.dispose()
    return MemberAdded(normalise_email(email), result.created, result.subscribed,
                       result.kept_out)


def deliveries_status(settings: Settings, *, all_messages: bool = False) -> list[dict[str, Any]]:
    engine = make_engine(settings)
    try:
        with reading(engine) as conn:
            rows = delivery.status(conn, include_finished=all_messages)
            info = {r.id: r for r in conn.execute(
                select(Outbound.id, Outbound.kind, Outbound.created_at, MailingList.name)
                .outerjoin(MailingList, MailingList.id == Outbound.list_id)
                .where(Outbound.id.in_([r["id"] for r in rows])))}
    finally:
        engine.dispose()
    for row in rows:
        meta = info.get(row["id"])
        if meta is not None:
            row.update(kind=meta.kind, list=meta.name, created=meta.created_at.isoformat())
    return rows


def members_show(settings: Settings, email: str) -> dict[str, Any]:
    address = normalise_email(email)
    engine = make_engine(settings)
    try:
        with reading(engine) as conn:
            member = conn.execute(select(Member.id, Member.status)
                                  .where(Member.email == address)).first()
            if member is None:
                raise NotFound(f"no member with address {address}")
            subs = conn.execute(
                select(MailingList.kind, MailingList.name, Subscription.mode,
                       Subscription.status)
                .join(MailingList, MailingList.id == Subscription.list_id)
                .where(Subscription.member_id == member.id)
                .order_by(MailingList.kind, MailingList.name)).all()
    finally:
        engine.dispose()
    active = [{"kind": s.kind, "name": s.name, "mode": s.mode} for s in subs
              if s.status == "active"]
    return {
        "email": address,
        "suppressed": member.status == "erased" or (bool(subs) and all(
            s.status == "removed" for s in subs)),
        "subscriptions": active,
        "left": [s.name for s in subs if s.status == "left"],
    }
