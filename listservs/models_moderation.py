"""Tables of moderation and email commands (migration ``0005mod``).

* ``held_records``: what the hold decision knew that ``held`` does not keep, namely whether
  the poster passed authentication (only then may a rejection or an expiry tell them).
* ``list_requests``: a join, leave or delivery-mode change waiting for the person's
  confirmation by email, or for an owner's approval.  ``inbound_id`` is the message that
  asked for it; with ``list_id`` it is what the confirmation token names.
* ``responses_sent``: who was answered what, per list: a poster is told once that their
  posts are held, and command answers to one address are limited per day.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mailer.db import utcnow
from mailer.models import Base, BigId

__all__ = ["HeldRecord", "ListRequest", "ResponseSent"]


class HeldRecord(Base):
    """Facts about a held message that a later decision needs."""

    __tablename__ = "held_records"
    held_id: Mapped[int] = mapped_column(ForeignKey("held.id", ondelete="CASCADE"),
                                         primary_key=True)
    notify_sender: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ListRequest(Base):
    """A subscription change waiting for a confirmation or an owner's approval."""

    __tablename__ = "list_requests"
    __table_args__ = (UniqueConstraint("inbound_id", "list_id"),
                      Index("ix_list_requests_state_expires", "state", "expires_at"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound.id"))
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    action: Mapped[str] = mapped_column(String(20))  # join | leave | mode
    mode: Mapped[str | None] = mapped_column(String(20))  # regular | digest | nomail
    needs_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    # pending (awaiting the person) -> confirmed (awaiting an owner) -> done
    #   | cancelled | refused | expired
    state: Mapped[str] = mapped_column(String(20), default="pending")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    confirmed_at: Mapped[dt.datetime | None] = mapped_column()
    decided_at: Mapped[dt.datetime | None] = mapped_column()
    decided_by: Mapped[str | None] = mapped_column(String(320))
    reason: Mapped[str | None] = mapped_column(Text)


class ResponseSent(Base):
    """Answers sent to one address about one list, by kind (``hold``, ``answer``)."""

    __tablename__ = "responses_sent"
    __table_args__ = (UniqueConstraint("list_id", "address", "kind"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(20))
    day: Mapped[str] = mapped_column(String(10))  # UTC date of the count, YYYY-MM-DD
    count: Mapped[int] = mapped_column(Integer, default=1)
    first_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
