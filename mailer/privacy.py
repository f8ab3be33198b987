"""Privacy: what citymail holds about one person, erasing it, and never adding them again.

Erasure keeps nothing that names the person: their member row is blanked (address replaced
by ``erased-HASH@erased.invalid``), subscriptions, caucuses and list roles are deleted,
their deliveries keep only the placeholder, posts and held messages lose their author,
and notices written only to them lose their bodies.  What stays is one HMAC of the
normalised address (``suppressions``), keyed with ``CITYMAIL_SECRET_KEY``: enough to
recognise the address if an import, an admin or an auto-subscription offers it again,
useless for recovering it.  Every key in the rotation list is tried, so keep retired keys
listed for as long as their suppressions must hold.

The raw inbound bytes are kept exactly as received (DESIGN.md, principle 2); everything
derived from them is erased here.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, or_, select, update

from mailer import webhooks
from mailer.db import reading, utcnow, writing
from mailer.errors import InvalidInput, NotFound
from mailer.models import (
    City,
    Delivery,
    Held,
    ListRole,
    MailingList,
    Member,
    Outbound,
    Post,
    Subscription,
)
from mailer.models_people import MemberCaucus, Suppression
from mailer.people import normalise_email
from mailer.privacy_sweep import find_traces, person_names, scrub_rows
from mailer.settings import Settings

__all__ = [
    "Eraser", "Forgotten", "Suppressed", "address_digests", "export_person", "forget",
    "is_suppressed", "member_summary", "placeholder", "suppress", "unsuppress",
]

ERASED_DOMAIN = "erased.invalid"
# Erases one person from tables this module does not know (bounce events, list requests):
# called inside the erasure's transaction with (conn, address, placeholder); returns rows.
Eraser = Callable[[Connection, str, str], int]


class Suppressed(InvalidInput):
    """The address asked to be forgotten: citymail must not add or mail it again."""


def address_digests(settings: Settings, address: str) -> list[str]:
    """HMAC-SHA256 of a normalised address under each secret key, newest key first."""
    message = b"suppress\0" + address.encode()
    return [hmac.new(k.encode(), message, hashlib.sha256).hexdigest()
            for k in settings.secret_keys]


def placeholder(settings: Settings, address: str) -> str:
    """The address an erased member is stored under: unique, unreadable, undeliverable."""
    return f"erased-{address_digests(settings, address)[0][:32]}@{ERASED_DOMAIN}"


def is_suppressed(conn: Connection, settings: Settings, email: str) -> bool:
    """Whether ``email`` (any spelling) asked to be forgotten."""
    digests = address_digests(settings, normalise_email(email))
    return conn.execute(select(Suppression.id).where(Suppression.digest.in_(digests))
                        .limit(1)).first() is not None


def suppress(conn: Connection, settings: Settings, address: str, *,
             reason: str = "erased") -> bool:
    """Record a normalised address as never to be added again; False if it already was."""
    digests = address_digests(settings, address)
    if conn.execute(select(Suppression.id).where(Suppression.digest.in_(digests))).first():
        return False
    conn.execute(insert(Suppression).values(digest=digests[0], reason=reason,
                                            created_at=utcnow()))
    return True


def unsuppress(conn: Connection, settings: Settings, email: str) -> bool:
    """Lift a suppression: only for the person's own, confirmed opt-in.  True if one was."""
    digests = address_digests(settings, normalise_email(email))
    return bool(conn.execute(delete(Suppression).where(Suppression.digest.in_(digests)))
                .rowcount)


def member_summary(conn: Connection, settings: Settings, email: str) -> dict[str, Any]:
    """``citymail members show --json``: the DESIGN.md shape, plus the member's status."""
    address = normalise_email(email)
    suppressed = is_suppressed(conn, settings, address)
    member = conn.execute(select(Member.id, Member.status)
                          .where(Member.email == address)).first()
    if member is None:
        if suppressed:
            return {"email": address, "suppressed": True, "status": "erased",
                    "subscriptions": [], "left": []}
        raise NotFound(f"no member with address {address}")
    subs = conn.execute(
        select(MailingList.kind, MailingList.name, Subscription.mode, Subscription.status)
        .join(MailingList, MailingList.id == Subscription.list_id)
        .where(Subscription.member_id == member.id)
        .order_by(MailingList.kind, MailingList.name)).all()
    dead = bool(subs) and all(s.status == "removed" for s in subs)
    return {
        "email": address,
        "suppressed": suppressed or member.status == "erased" or dead,
        "status": member.status,
        "subscriptions": [{"kind": s.kind, "name": s.name, "mode": s.mode} for s in subs
                          if s.status == "active"],
        "left": [s.name for s in subs if s.status == "left"],
    }


def _rows(conn: Connection, stmt: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(stmt).mappings()]


def export_person(conn: Connection, settings: Settings, email: str) -> dict[str, Any]:
    """Everything citymail holds about one person, as JSON-ready data."""
    address = normalise_email(email)
    m = Member.__table__
    member = conn.execute(select(m, City.name.label("city"), City.county, City.division)
                          .outerjoin(City, City.id == m.c.city_id)
                          .where(m.c.email == address)).mappings().first()
    member_id = member["id"] if member else None
    mine = Delivery.recipient == address
    if member_id is not None:
        mine = or_(mine, Delivery.member_id == member_id)
    data: dict[str, Any] = {
        "email": address,
        "suppressed": is_suppressed(conn, settings, address),
        "member": dict(member) if member else None,
        "caucuses": [] if member_id is None else list(conn.scalars(
            select(MemberCaucus.name).where(MemberCaucus.member_id == member_id)
            .order_by(MemberCaucus.name))),
        "subscriptions": [] if member_id is None else _rows(conn, (
            select(MailingList.name.label("list"), MailingList.kind, Subscription.mode,
                   Subscription.status, Subscription.source, Subscription.created_at,
                   Subscription.updated_at)
            .join(MailingList, MailingList.id == Subscription.list_id)
            .where(Subscription.member_id == member_id).order_by(MailingList.name))),
        "list_roles": _rows(conn, (
            select(MailingList.name.label("list"), ListRole.role)
            .join(MailingList, MailingList.id == ListRole.list_id)
            .where(func.lower(ListRole.email) == address).order_by(MailingList.name))),
        "deliveries": _rows(conn, (
            select(Delivery.id, Delivery.outbound_id, Outbound.kind,
                   MailingList.name.label("list"), Delivery.recipient, Delivery.state,
                   Delivery.attempts, Delivery.created_at, Delivery.sent_at,
                   Delivery.last_error)
            .join(Outbound, Outbound.id == Delivery.outbound_id)
            .outerjoin(MailingList, MailingList.id == Delivery.list_id)
            .where(mine).order_by(Delivery.id))),
        "held": _rows(conn, (
            select(Held.id, MailingList.name.label("list"), Held.sender, Held.subject,
                   Held.reasons, Held.state, Held.received_at, Held.decided_at)
            .join(MailingList, MailingList.id == Held.list_id)
            .where(Held.sender == address).order_by(Held.id))),
        "posts": _rows(conn, (
            select(Post.id, MailingList.name.label("list"), Post.sender, Post.subject,
                   Post.message_id, Post.in_reply_to, Post.created_at)
            .join(MailingList, MailingList.id == Post.list_id)
            .where(Post.sender == address).order_by(Post.id))),
    }
    return data


@dataclass(frozen=True)
class Forgotten:
    """What ``forget`` erased (counts), and whether the address was newly suppressed."""

    address: str
    member: bool
    newly_suppressed: bool
    subscriptions: int
    deliveries: int
    posts: int
    held: int
    notices: int
    other_rows: int = 0  # rows the erasers changed


def _ids(conn: Connection, stmt: Any) -> list[int]:
    return list(conn.scalars(stmt))


def _chunks(ids: list[int], size: int = 500) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def forget(engine: Engine, settings: Settings, email: str, *,
           erasers: Sequence[Eraser] = ()) -> Forgotten:
    """Erase one person and suppress their address (works even if they were never a member).

    Rows are found with a read transaction (full scans of deliveries by address take no
    write lock); the erasure itself is one short write transaction by primary keys.
    ``erasers`` extend it to the tables of the outer layers.
    """
    address = normalise_email(email)
    hidden = placeholder(settings, address)
    with reading(engine) as conn:
        member_id = conn.scalar(select(Member.id).where(Member.email == address))
        by_address = _ids(conn, select(Delivery.id).where(Delivery.recipient == address))
        posts = _ids(conn, select(Post.id).where(Post.sender == address))
        held = _ids(conn, select(Held.id).where(Held.sender == address))
        # Notices (welcome, confirmations) addressed to them alone.
        others = (select(Delivery.outbound_id).where(Delivery.recipient != address,
                                                     Delivery.recipient != hidden))
        notices = _ids(conn, select(Outbound.id).where(
            Outbound.kind == "notice",
            Outbound.id.in_(select(Delivery.outbound_id).where(Delivery.recipient == address)),
            Outbound.id.not_in(others)))
        # Every other table (bounce events, list requests, archives...): found by scanning.
        names = person_names(conn, address)
        traces = find_traces(conn, address, names)
    now = utcnow()
    with writing(engine) as conn:
        newly = suppress(conn, settings, address)
        subs = 0
        if member_id is not None:
            # Receivers are told the address once, so that they can erase it too.
            webhooks.emit(conn, "member.removed", {"email": address, "reason": "erased"})
            conn.execute(update(Member).where(Member.id == member_id).values(
                email=hidden, name="", title=None, role=None, city_id=None, status="erased",
                updated_at=now))
            subs = conn.execute(delete(Subscription)
                                .where(Subscription.member_id == member_id)).rowcount or 0
            conn.execute(delete(MemberCaucus).where(MemberCaucus.member_id == member_id))
            by_address += _ids(conn, select(Delivery.id)
                               .where(Delivery.member_id == member_id))
        conn.execute(delete(ListRole).where(func.lower(ListRole.email) == address))
        deliveries = sorted(set(by_address))
        for part in _chunks(deliveries):
            conn.execute(update(Delivery).where(Delivery.id.in_(part),
                                                Delivery.state.in_(("pending", "deferred")))
                         .values(state="failed", last_error="recipient erased on request"))
            conn.execute(update(Delivery).where(Delivery.id.in_(part))
                         .values(recipient=hidden))
        for part in _chunks(posts):
            conn.execute(update(Post).where(Post.id.in_(part)).values(sender=""))
        for part in _chunks(held):
            conn.execute(update(Held).where(Held.id.in_(part)).values(sender=""))
            conn.execute(update(Held).where(Held.id.in_(part), Held.state == "held")
                         .values(state="discarded", decided_at=now,
                                 decided_by="privacy erasure"))
        for part in _chunks(notices):
            conn.execute(update(Outbound).where(Outbound.id.in_(part)).values(body=b""))
        extra = sum(erase(conn, address, hidden) for erase in erasers)
        extra += scrub_rows(conn, traces, address=address, names=names, hidden=hidden)
    return Forgotten(address, member_id is not None, newly, subs, len(deliveries),
                     len(posts), len(held), len(notices), extra)
