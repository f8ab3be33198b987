"""Welcome messages: a new member hears what they were subscribed to and how to leave each.

The text comes from ``templates/notices/welcome.txt``.  Python's email package builds one
prototype message per process (``mailer.notices.build_notice``, ~2 ms); each welcome then
only splices its own To, Message-ID and quoted-printable body into those bytes, so a
roster of thousands of new members costs milliseconds, not seconds.  Welcomes are queued
like notices (an outbound row and its delivery; the workers' clock dispatches them),
inside the caller's transaction, so they exist if and only if the member does.
"""

from __future__ import annotations

import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import format_datetime

from sqlalchemy import Connection, select

from mailer.bulk import bulk_insert, reserve_ids
from mailer.db import utcnow
from mailer.league import League
from mailer.models import City, Delivery, MailingList, Member, Outbound, Subscription
from mailer.notices import build_notice, render_notice
from mailer.people import AddResult, add_member, normalise_email
from mailer.privacy import Suppressed, is_suppressed
from mailer.sending import unsubscribe_url
from mailer.settings import Settings

__all__ = [
    "ListRef", "Welcome", "WelcomeWriter", "join", "queue_welcomes", "welcome_member",
]

SENDER_LOCAL = "citymail-owner"
SENDER_NAME = "League of California Cities"
BOUNCE_LOCAL = "citymail-bounces"
_DROP = (b"to:", b"message-id:", b"date:")


@dataclass(frozen=True)
class ListRef:
    """What a welcome says about one list or newsletter."""

    id: int
    name: str
    kind: str  # list | newsletter
    display_name: str
    description: str = ""
    cadence: str = ""
    announce_only: bool = False


@dataclass(frozen=True)
class Welcome:
    """A ready welcome message for one member."""

    member_id: int
    email: str
    data: bytes


def _qp(text: str) -> bytes:
    body = binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8"), istext=True)
    return body.replace(b"\n", b"\r\n")


class WelcomeWriter:
    """Writes welcome messages for one settings object (one prototype per subject)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._heads: dict[str, bytes] = {}

    def context(self, *, member_id: int, email: str, name: str, role: str, city: str,
                lists: Sequence[ListRef]) -> dict[str, object]:
        s, domain = self.settings, self.settings.list_domain

        def item(ref: ListRef) -> dict[str, object]:
            return {"name": ref.name, "display_name": ref.display_name,
                    "description": ref.description, "cadence": ref.cadence,
                    "announce_only": ref.announce_only,
                    "address": f"{ref.name}@{domain}",
                    "leave_address": f"{ref.name}-leave@{domain}",
                    "unsubscribe_url": unsubscribe_url(s, member_id, ref.id)}

        return {"email": email, "name": name, "role": role, "city": city,
                "owner": f"{SENDER_LOCAL}@{domain}",
                "newsletters": [item(r) for r in lists if r.kind == "newsletter"],
                "lists": [item(r) for r in lists if r.kind != "newsletter"]}

    def _head(self, subject: str) -> bytes:
        """The header block shared by every welcome with this subject (no To, Date, Message-ID)."""
        head = self._heads.get(subject)
        if head is None:
            domain = self.settings.list_domain
            proto = build_notice(sender=f"{SENDER_LOCAL}@{domain}", sender_name=SENDER_NAME,
                                 to="prototype@invalid", subject=subject, text="-",
                                 domain=domain)
            fields: list[bytes] = []
            for line in proto.partition(b"\r\n\r\n")[0].split(b"\r\n"):
                if line[:1] in (b" ", b"\t") and fields:
                    fields[-1] += b"\r\n" + line
                else:
                    fields.append(line)
            head = b"".join(f + b"\r\n" for f in fields if not f.lower().startswith(_DROP))
            self._heads[subject] = head
        return head

    def message(self, *, member_id: int, email: str, name: str = "", role: str = "",
                city: str = "", lists: Sequence[ListRef]) -> Welcome:
        subject, text = render_notice("welcome", self.context(
            member_id=member_id, email=email, name=name, role=role, city=city, lists=lists))
        personal = (f"To: {email}\r\nDate: {format_datetime(utcnow())}\r\n"
                    f"Message-ID: <{uuid.uuid4().hex}@{self.settings.list_domain}>\r\n"
                    "\r\n").encode()
        return Welcome(member_id, email, self._head(subject) + personal + _qp(text))


def queue_welcomes(conn: Connection, welcomes: Sequence[Welcome]) -> list[int]:
    """Queue welcomes as notices in the caller's transaction (two set-based INSERTs)."""
    if not welcomes:
        return []
    now = utcnow()
    ids = reserve_ids(conn, Outbound, len(welcomes))
    bulk_insert(conn, Outbound, [
        {"id": ident, "kind": "notice", "list_id": None, "personal": False, "body": w.data,
         "bounce_local": BOUNCE_LOCAL, "created_at": now, "dispatched_at": None}
        for ident, w in zip(ids, welcomes, strict=True)])
    bulk_insert(conn, Delivery, [
        {"outbound_id": ident, "member_id": w.member_id, "list_id": None,
         "recipient": w.email, "state": "pending", "attempts": 0, "due_at": now,
         "created_at": now}
        for ident, w in zip(ids, welcomes, strict=True)])
    return ids


def list_refs(conn: Connection) -> dict[str, ListRef]:
    """Every list and newsletter, by name."""
    rows = conn.execute(select(MailingList.id, MailingList.name, MailingList.kind,
                               MailingList.display_name, MailingList.description,
                               MailingList.announce_only, MailingList.config)).all()
    return {r.name: ListRef(r.id, r.name, r.kind, r.display_name, r.description or "",
                            str((r.config or {}).get("cadence", "")), bool(r.announce_only))
            for r in rows}


def ordered(refs: Sequence[ListRef]) -> list[ListRef]:
    """Newsletters first, then lists, each by name: the order a welcome lists them in."""
    return sorted(refs, key=lambda r: (r.kind != "newsletter", r.name))


def welcome_member(conn: Connection, settings: Settings, member_id: int, *,
                   writer: WelcomeWriter | None = None) -> int | None:
    """Queue a welcome naming the member's active subscriptions; returns the outbound id."""
    member = conn.execute(select(Member.email, Member.name, Member.role, City.name.label("city"))
                          .outerjoin(City, City.id == Member.city_id)
                          .where(Member.id == member_id, Member.status == "active")).first()
    if member is None:
        return None
    refs = list_refs(conn)
    names = conn.scalars(select(MailingList.name)
                         .join(Subscription, Subscription.list_id == MailingList.id)
                         .where(Subscription.member_id == member_id,
                                Subscription.status == "active"))
    lists = ordered([refs[n] for n in names])
    if not lists:
        return None
    welcome = (writer or WelcomeWriter(settings)).message(
        member_id=member_id, email=member.email, name=member.name, role=member.role or "",
        city=member.city or "", lists=lists)
    return queue_welcomes(conn, [welcome])[0]


def join(conn: Connection, settings: Settings, league: League, *, email: str, name: str = "",
         city: str | None = None, role: str | None = None, title: str | None = None,
         extra_lists: list[str] | None = None, source: str = "cli",
         welcome: bool = True) -> AddResult:
    """``people.add_member`` behind the suppression check, with a welcome for a new member.

    Raises ``Suppressed`` for an address that asked to be forgotten.
    """
    address = normalise_email(email)
    if is_suppressed(conn, settings, address):
        raise Suppressed(f"{address} asked to be forgotten; citymail will not add it again")
    result = add_member(conn, league, email=address, name=name, city=city, role=role,
                        title=title, extra_lists=extra_lists, source=source)
    if result.created and welcome:
        welcome_member(conn, settings, result.member_id)
    return result
