"""Bounce tables: events as they happened, each subscription's bounce state, the intake log.

``subscriptions`` is shared by many parts, so bounce handling keeps its own state beside
it, keyed by subscription id: ``delivery_status`` is ``enabled`` or ``disabled_bounce``.
Every fan-out skips disabled subscriptions with ``delivery_enabled(Subscription.id)``.
Rows go with their member, list or subscription (``ON DELETE CASCADE``), so erasing a
person erases their bounce history too.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, exists
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from mailer.db import utcnow
from mailer.models import Base, BigId

__all__ = ["BounceEvent", "BounceIntake", "BounceState", "delivery_enabled"]


class BounceEvent(Base):
    """One failure (or complaint) reported for one subscription."""

    __tablename__ = "bounce_events"
    __table_args__ = (
        Index("ix_bounce_events_subscription_at", "subscription_id", "occurred_at"),
        Index("ix_bounce_events_member_id", "member_id"),
        Index("ix_bounce_events_delivery_id", "delivery_id"),
        Index("ix_bounce_events_outbound_kind", "outbound_id", "kind"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(20))  # permanent|temporary|policy|complaint
    source: Mapped[str] = mapped_column(String(10))  # verp | dsn | smtp
    address: Mapped[str] = mapped_column(String(320))  # the address that failed
    status: Mapped[str | None] = mapped_column(String(32))  # 5.1.1, or a bare 550
    diagnostic: Mapped[str | None] = mapped_column(Text)
    # Where it came from; plain ids (no foreign keys) so old deliveries may be purged.
    delivery_id: Mapped[int | None] = mapped_column(BigId)
    outbound_id: Mapped[int | None] = mapped_column(BigId)
    inbound_id: Mapped[int | None] = mapped_column(BigId)


class BounceState(Base):
    """Bounce score and delivery status of one subscription (no row: enabled, score 0)."""

    __tablename__ = "bounce_states"
    __table_args__ = (Index("ix_bounce_states_due", "delivery_status", "next_action_at"),)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE"), primary_key=True)
    delivery_status: Mapped[str] = mapped_column(String(20), default="enabled")
    score: Mapped[float] = mapped_column(Float, default=0.0)  # as of score_at
    score_at: Mapped[dt.datetime | None] = mapped_column()
    # Events before this never count again (set by a re-enable or a re-join).
    reenabled_at: Mapped[dt.datetime | None] = mapped_column()
    # The last disable episode; kept after a re-enable, for the record.
    disabled_at: Mapped[dt.datetime | None] = mapped_column()
    warnings_sent: Mapped[int] = mapped_column(Integer, default=0)
    last_warning_at: Mapped[dt.datetime | None] = mapped_column()
    next_action_at: Mapped[dt.datetime | None] = mapped_column()  # the clock's due time
    removed_at: Mapped[dt.datetime | None] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BounceIntake(Base):
    """One message that reached a -bounces address, and what became of it."""

    __tablename__ = "bounce_intake"
    __table_args__ = (Index("ix_bounce_intake_outcome_at", "outcome", "created_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    inbound_id: Mapped[int | None] = mapped_column(BigId)
    list_id: Mapped[int | None] = mapped_column(ForeignKey("lists.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(10))  # verp | plain
    # recorded | complaint | autoreply | not_bounce | unknown | forged | unmatched | stale
    # | no_list
    outcome: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(Text, default="")
    events: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


def delivery_enabled(subscription_id: Any) -> ColumnElement[bool]:
    """SQL: true unless bounces disabled delivery to the subscription (for fan-outs).

    ``subscription_id`` is the outer query's column, e.g. ``Subscription.id``.  A state
    left over from a removal does not hold back someone who later joined again.
    """
    return ~exists().where(
        BounceState.subscription_id == subscription_id,
        BounceState.delivery_status == "disabled_bounce",
        BounceState.removed_at.is_(None),
    )
