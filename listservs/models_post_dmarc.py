"""``post_dmarc`` (migration ``0015listserv``): a held post's DMARC policy, for its approval.

The policy is looked up from DNS when the post arrives (outside any transaction); a
moderator approves later, inside one, so the approval reads the answer stored here
instead of asking DNS again. Only policies that need mitigation are stored.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, ForeignKey, String, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from mailer.db import utcnow
from mailer.dmarc_policy import MITIGATED
from mailer.models import Base, BigId

__all__ = ["PostDmarc", "RememberDmarc", "remember_for_hold", "stored_policy"]


class PostDmarc(Base):
    __tablename__ = "post_dmarc"
    inbound_id: Mapped[int] = mapped_column(BigId, ForeignKey("inbound.id", ondelete="CASCADE"),
                                            primary_key=True)
    policy: Mapped[str] = mapped_column(String(20))  # reject | quarantine
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True)
class RememberDmarc:
    """Effect: store the policy found for a held post (``listservs.effects`` protocol)."""

    inbound_id: int
    policy: str

    def apply(self, conn: Connection, *, now: dt.datetime) -> bool:
        if conn.scalar(select(PostDmarc.inbound_id)
                       .where(PostDmarc.inbound_id == self.inbound_id)) is None:
            conn.execute(insert(PostDmarc).values(inbound_id=self.inbound_id,
                                                  policy=self.policy, created_at=now))
        return True


def stored_policy(conn: Connection, inbound_id: int) -> str | None:
    """The policy remembered for a post, None when it needed no mitigation."""
    return conn.scalar(select(PostDmarc.policy).where(PostDmarc.inbound_id == inbound_id))


def remember_for_hold(inbound_id: int, policy: str | None) -> RememberDmarc | None:
    """The effect that keeps a held post's policy, when it is one that needs mitigation."""
    return RememberDmarc(inbound_id, policy) if policy in MITIGATED and policy else None
