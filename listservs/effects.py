"""Outcomes: what handling one message will write, decided before the write transaction.

Planning (parsing, templates, decoration, token checks) happens in a read transaction or
none; it returns an :class:`Outcome`, a frozen list of effects.  ``Outcome.apply(conn)``
then runs inside the caller's single write transaction (the one that also marks the inbound
message done), so a message is acted on exactly once.  Effects that change a state are
*guarded*: ``UPDATE … WHERE state = <expected>``; when another worker, a moderator's second
reply or the CLI got there first, the guard matches no row and the effects that depend on
it (the post, the answer) are skipped.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Connection, insert, select, update

from listservs.archive_store import index_post
from listservs.models_moderation import HeldRecord, ListRequest, ResponseSent
from mailer import delivery, webhooks
from mailer.models import Held, Member, Outbound, Post, Subscription
from mailer.models_digests import collect_post, owe_last_digest
from mailer.notices import queue_notice
from mailer.people import subscribe

__all__ = [
    "DecideHeld", "Effect", "Leave", "Limit", "MoveRequest", "NewRequest", "Outcome",
    "RecordHold", "SendMail", "SetMode", "StorePost", "Subscribe",
]

log = logging.getLogger(__name__)


class Effect(Protocol):
    def apply(self, conn: Connection, *, now: dt.datetime) -> bool: ...


@dataclass(frozen=True)
class Outcome:
    """Everything one message (or one CLI decision) does, ready to write."""

    note: str
    effects: tuple[Effect, ...] = ()
    error: str | None = None  # set when the message could not be handled (kept on inbound)

    def apply(self, conn: Connection, *, now: dt.datetime) -> bool:
        """Write the effects in ``conn``'s transaction; False when a guard found it done."""
        done = all([effect.apply(conn, now=now) for effect in self.effects])
        log.info("%s%s", self.note, "" if done else " (already decided elsewhere: skipped)")
        return done

    def apply_isolated(self, conn: Connection, *, now: dt.datetime) -> bool:
        """``apply`` inside a SAVEPOINT: a failure undoes only this outcome, and is logged.

        For callers that store many messages in one transaction: one bad outcome must not
        roll back (and so stall) the others.
        """
        try:
            with conn.begin_nested():
                return self.apply(conn, now=now)
        except Exception:
            log.exception("%s: could not be stored; undone", self.note)
            return False


def _run(effects: tuple[Effect, ...], conn: Connection, now: dt.datetime) -> None:
    for effect in effects:
        effect.apply(conn, now=now)


@dataclass(frozen=True)
class Limit:
    """Send only if this address was not told too often: ``per_day`` None means once ever."""

    list_id: int
    address: str
    kind: str
    per_day: int | None = None


def _allowed(conn: Connection, limit: Limit, now: dt.datetime) -> bool:
    t = ResponseSent.__table__
    day = now.date().isoformat()
    key = (t.c.list_id == limit.list_id) & (t.c.address == limit.address.lower()) & (
        t.c.kind == limit.kind)
    row = conn.execute(select(t.c.id, t.c.day, t.c.count).where(key)).first()
    if row is None:
        conn.execute(insert(t).values(list_id=limit.list_id, address=limit.address.lower(),
                                      kind=limit.kind, day=day, count=1, first_at=now,
                                      last_at=now))
        return True
    if limit.per_day is None:
        return False
    count = 1 if row.day != day else row.count + 1
    if count > limit.per_day:
        return False
    conn.execute(update(t).where(t.c.id == row.id).values(day=day, count=count, last_at=now))
    return True


@dataclass(frozen=True)
class SendMail:
    """Queue a ready message; the workers' clock dispatches it (``dispatched_at`` NULL)."""

    data: bytes
    recipients: tuple[str, ...]
    bounce_local: str
    list_id: int | None = None
    limit: Limit | None = None

    def apply(self, conn: Connection, *, now: dt.datetime) -> bool:
        if not self.recipients:
            return True
        if self.limit is not None and not _allowed(conn, self.limit, now):
            log.info("not answering %s again (%s)", self.limit.address, self.limit.kind)
            return True
        queue_notice(conn, data=self.data, recipients=self.recipients,
                     bounce_local=self.bounce_local, list_id=self.list_id)
        return True


@dataclass(frozen=True)
class DecideHeld:
    """held -> approved | rejected | discarded | expired, then the effects that follow."""

    held_id: int
    state: str
    decided_by: str
    then: tuple[Effect, ...] = ()

    def apply(self, conn: Connection, *, now: dt.datetime) -> bool:
        hit = conn.execute(update(Held).where(Held.id == self.held_id, Held.state == "held")
                           .values(state=self.state, decided_at=now,
                                   decided_by=self.decided_by[:320])).rowcount
        if hit:
            _run(self.then, conn, now)
        return bool(hit)


@dataclass(frozen=True)
class RecordHold:
    """Remember what the hold decision knew (the row was inserted just before)."""

    inbound_id: int
    list_id: int
    notify_sender: bool

    def apply(self, conn: Connection, *, now: dt.datetime) -> bool:
        held_id = conn.execute(select(Held.id).where(Held.inbound_id == self.inbound_id,
                                                     Held.list_id == self.list_id)).scalar()
        if held_id is None:
            return False
        conn.execute(insert(HeldRecord).values(held_id=held_id,
                                               notify_sender=self.notify_sender,
                                               created_at=now))
        return True


@dataclass(frozen=True)
class StorePost:
    """An accepted post: archive row, one outbound message, a delivery per subscriber."""

    inbound_id: int
    list_id: int
    list_name: str
    personal: bool
    body: bytes
    message_id: str
    in_reply_to: str | None
    subject: str
    sender: str

    def apply(self, conn: Connection, *, now: dt.datetime) -> bool:
        post_id = conn.execute(insert(Post).values(
            inbound_id=self.inbound_id, list_id=self.list_id, message_id=self.message_id,
            in_reply_to=self.in_reply_to, subject=self.subject, sender=self.sender,
            created_at=now).returning(Post.id)).scalar_one()
        outbound_id = conn.execute(insert(Outbound).values(
            kind="post", list_id=self.list_id, post_id=post_id, personal=self.personal,
            body=self.body, bounce_local=f"{self.list_name}-bounces", created_at=now,
            dispatched_at=None).returning(Outbound.id)).scalar_one()
        collect_post(conn, list_id=self.list_id, post_id=post_id, size=len(self.body), now=now)
        index_post(conn, post_id=post_id, list_id=self.list_id, inbound_id=self.inbound_id,
                   now=now)  # the archive's search index
        count = delivery.fan_out(conn, outbound_id=outbound_id, list_id=self.list_id, now=now)
        log.info("inbound %d approved on %s: %d recipients", self.inbound_id, self.list_name,
                 count)
        return True


@dataclass(frozen=True)
class NewRequest:
    inbound_id: int
    list_id: int
    email: str
    name: str
    action: str  # join | leave | mode
    mode: str | None
    needs_approval: bool
    expires_at: dt.datetime

    def apply(self, conn: Connection, *, now: dt.datetime) -> bool:
        conn.execute(insert(ListRequest).values(
            inbound_id=self.inbound_id, list_id=self.list_id, email=self.email,
            name=self.name[:200], action=self.action, mode=self.mode,
            needs_approval=self.needs_approval, state="pending", created_at=now,
            expires_at=self.expires_at))
        return True


@dataclass(frozen=True)
class MoveRequest:
    """A guarded state change of a request, then the effects that follow."""

    request_id: int
    expected: str
    state: str
    decided_by: str | None = None
    reason: str | None = None
    then: tuple[Effect, ...] = field(default=())

    def apply(self, conn: Connection, *, now: dt.datetime) -> bool:
        values: dict[str, object] = {"state": self.state}
        if self.state == "confirmed":
            values["confirmed_at"] = now
        else:
            values.update(decided_at=now, decided_by=self.decided_by, reason=self.reason)
        hit = conn.execute(update(ListRequest).where(ListRequest.id == self.request_id,
                                                     ListRequest.state == self.expected)
                           .values(**values)).rowcount
        if hit:
            _run(self.then, conn, now)
        return bool(hit)


def _member_id(conn: Connection, email: str) -> int | None:
    return conn.execute(select(Member.id).where(Member.email == email.lower())).scalar()


@dataclass(frozen=True)
class Subscribe:
    """The person's own opt-in (``source="self"``): brings back a list they had left."""

    list_name: str
    email: str
    name: str = ""
    mode: str = "regular"

    def apply(self, conn: Connection, *, now: dt.datetime) -> bool:
        member_id = _member_id(conn, self.email)
        if member_id is None:  # not a league member: a subscriber of their own
            member_id = conn.execute(insert(Member).values(
                email=self.email.lower(), name=self.name[:200], is_league_member=False,
                status="active", created_at=now, updated_at=now)
                .returning(Member.id)).scalar_one()
            webhooks.emit(conn, "member.added", {"email": self.email.lower(),
                                                 "name": self.name[:200],
                                                 "league_member": False, "source": "email"})
        subscribe(conn, member_id, [self.list_name], source="self", mode=self.mode)
        return True


@dataclass(frozen=True)
class Leave:
    list_id: int
    email: str

    def apply(self, conn: Connection, *, now: dt.datetime) -> bool:
        member_id = _member_id(conn, self.email)
        if member_id is not None and conn.execute(update(Subscription).where(
                Subscription.member_id == member_id, Subscription.list_id == self.list_id,
                Subscription.status == "active").values(status="left", updated_at=now)
        ).rowcount:
            webhooks.subscription_changed(conn, member_id, [self.list_id], status="left",
                                          source="email")
        return True


@dataclass(frozen=True)
class SetMode:
    list_id: int
    email: str
    mode: str  # regular | digest | nomail

    def apply(self, conn: Connection, *, now: dt.datetime) -> bool:
        member_id = _member_id(conn, self.email)
        if member_id is not None:
            where = (Subscription.member_id == member_id,
                     Subscription.list_id == self.list_id, Subscription.status == "active")
            old = conn.execute(select(Subscription.mode).where(*where)).scalar()
            conn.execute(update(Subscription).where(*where)
                         .values(mode=self.mode, updated_at=now))
            if old is not None:  # leaving digest mode: one last digest of what waits
                owe_last_digest(conn, member_id=member_id, list_id=self.list_id,
                                old_mode=old, new_mode=self.mode, now=now)
            if old is not None and old != self.mode:
                webhooks.subscription_changed(conn, member_id, [self.list_id],
                                              status="active", source="email", mode=self.mode)
        return True
