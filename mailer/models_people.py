"""Tables about people beyond ``mailer.models``: caucuses and privacy suppressions.

``suppressions`` holds no address, only an HMAC of it (see ``mailer.privacy``), so that a
person who asked to be forgotten is never added again and nothing of them is kept.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mailer.db import utcnow
from mailer.models import Base, BigId, Delivery

__all__ = ["MemberCaucus", "Suppression"]


class MemberCaucus(Base):
    """A caucus a member belongs to (e.g. "Women's Caucus"), as a roster names it."""

    __tablename__ = "member_caucuses"
    __table_args__ = (UniqueConstraint("member_id", "name"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))


class Suppression(Base):
    """An address that must never be added or mailed again, kept only as an HMAC."""

    __tablename__ = "suppressions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # hex HMAC-SHA256
    reason: Mapped[str] = mapped_column(String(40), default="erased")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# A person's deliveries are looked up by member (privacy export and erasure).
Index("ix_deliveries_member_id", Delivery.member_id)
