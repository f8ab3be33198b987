"""Tables of list digests: the posts waiting for one, the issues sent, last digests owed.

* ``digest_items``: one row per accepted post on a list, written in the transaction that
  accepts the post; ``digest_id`` stays NULL until a digest takes it.
* ``digests``: one row per issue sent (volume and issue number are unique per list, so a
  digest can never be numbered, and sent, twice).
* ``digest_state``: per list, the last volume, issue and send instant; the clock claims a
  digest with a conditional UPDATE of this row (compare-and-set on ``issue``).
* ``digest_last``: a member who switched from a digest mode back to regular is owed one
  last digest of the posts collected so far (``upto_item``), for them alone.

``collect_post`` (the write accepting a post needs) and ``owe_last_digest`` (the one a
mode change needs) live here, in ``mailer``, so that every path that accepts a post or
changes a mode (inbound, moderation, preferences, email commands) can call them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    Connection,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
    insert,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column

from mailer.db import utcnow
from mailer.models import Base, BigId, MailingList, Outbound, Subscription

__all__ = ["DIGEST_MODES", "Digest", "DigestItem", "DigestLast", "DigestState",
           "collect_post", "owe_last_digest"]

DIGEST_MODES = ("digest", "digest-plain")  # subscriptions.mode values that get digests


class DigestItem(Base):
    __tablename__ = "digest_items"
    __table_args__ = (
        UniqueConstraint("post_id"),
        # Waiting items (digest_id NULL) are found without scanning the sent ones.
        Index("ix_digest_items_waiting", "digest_id", "list_id", "id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    size: Mapped[int] = mapped_column(Integer, default=0)  # decorated bytes: size threshold
    added_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    digest_id: Mapped[int | None] = mapped_column(ForeignKey("digests.id"))


class Digest(Base):
    __tablename__ = "digests"
    __table_args__ = (UniqueConstraint("list_id", "volume", "issue"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    volume: Mapped[int] = mapped_column(Integer)
    issue: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(20))  # schedule | size | count | manual
    items: Mapped[int] = mapped_column(Integer, default=0)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DigestState(Base):
    __tablename__ = "digest_state"
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"),
                                         primary_key=True)
    volume: Mapped[int] = mapped_column(Integer, default=0)
    issue: Mapped[int] = mapped_column(Integer, default=0)
    last_sent_at: Mapped[dt.datetime | None] = mapped_column()


class DigestLast(Base):
    __tablename__ = "digest_last"
    __table_args__ = (Index("ix_digest_last_pending", "sent_at", "list_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(20))  # the digest mode they had: the format
    # The posts waiting at the switch, oldest and newest: exactly what the member is owed,
    # whatever digests the others get meanwhile.
    from_item: Mapped[int] = mapped_column(BigId)
    upto_item: Mapped[int] = mapped_column(BigId)
    requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column()


# A digest reads each post's decorated bytes from its outbound row, found by post.
Index("ix_outbound_post_id", Outbound.post_id)


def collect_post(conn: Connection, *, list_id: int, post_id: int, size: int,
                 now: dt.datetime, config: Mapping[str, Any] | None = None) -> bool:
    """Keep an accepted post for the list's next digest, in the accepting transaction.

    Nothing is collected for a list nobody reads as digests (no empty issues, no rows
    that no digest will ever take) or whose digest is switched off (config
    ``digest.enabled`` false); a malformed setting never loses a post (it is collected,
    and reported when sending).  ``config`` is the list's JSON config when the caller has
    it (saves a query).
    """
    if config is None:
        config = conn.execute(select(MailingList.config)
                              .where(MailingList.id == list_id)).scalar() or {}
    stored = config.get("digest")
    if isinstance(stored, Mapping) and stored.get("enabled") is False:
        return False
    readers = conn.execute(select(Subscription.id).where(
        Subscription.list_id == list_id, Subscription.status == "active",
        Subscription.mode.in_(DIGEST_MODES)).limit(1)).first()
    if readers is None:
        return False
    conn.execute(insert(DigestItem).values(list_id=list_id, post_id=post_id, size=size,
                                           added_at=now))
    return True


def owe_last_digest(conn: Connection, *, member_id: int, list_id: int, old_mode: str,
                    new_mode: str, now: dt.datetime | None = None) -> bool:
    """Record that a member leaving digest mode gets one last digest; True if owed.

    Only a switch from a digest mode to ``regular`` owes one (nomail means no mail), and
    only when posts are waiting: from the switch on the member gets single posts, so the
    last digest holds exactly what they would otherwise never see.
    """
    if old_mode not in DIGEST_MODES or new_mode != "regular":
        return False
    first, upto = conn.execute(select(func.min(DigestItem.id), func.max(DigestItem.id)).where(
        DigestItem.list_id == list_id, DigestItem.digest_id.is_(None))).one()
    if upto is None:
        return False
    conn.execute(insert(DigestLast).values(list_id=list_id, member_id=member_id,
                                           mode=old_mode, from_item=first, upto_item=upto,
                                           requested_at=now or utcnow()))
    return True
