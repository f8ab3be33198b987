"""The schema: SQLAlchemy 2 declarative models.  Alembic owns the migrations.

Hot paths (gateway inserts, fan-out, delivery claims) use these tables through Core
statements; the ORM classes are for readable admin code and for Alembic.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from mailer.db import UTCDateTime, utcnow

__all__ = [
    "Base", "City", "Delivery", "Held", "Inbound", "MailingList", "Member", "Outbound",
    "Post", "Subscription", "WorkerBeat",
]

# Integer ids that autoincrement on SQLite and are BIGINT on PostgreSQL.
BigId = BigInteger().with_variant(Integer, "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar = {
        dt.datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON,
    }


class City(Base):
    __tablename__ = "cities"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    county: Mapped[str | None] = mapped_column(String(200))
    division: Mapped[str | None] = mapped_column(String(200))
    coastal: Mapped[bool] = mapped_column(Boolean, default=False)
    rural: Mapped[bool] = mapped_column(Boolean, default=False)


class Member(Base):
    """A person: a league member, or a public newsletter subscriber (city is None)."""

    __tablename__ = "members"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    title: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str | None] = mapped_column(String(200))
    city_id: Mapped[int | None] = mapped_column(ForeignKey("cities.id"))
    is_league_member: Mapped[bool] = mapped_column(Boolean, default=True)
    # active | disabled (missing from a --sync roster) | erased (privacy request)
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MailingList(Base):
    """A discussion list or a newsletter: both have subscribers and send through deliveries."""

    __tablename__ = "lists"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)  # local part: city-clerks
    kind: Mapped[str] = mapped_column(String(20), default="list")  # list | newsletter
    display_name: Mapped[str] = mapped_column(String(200))
    short_name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    list_id: Mapped[str | None] = mapped_column(String(255))  # kept from a migrated server
    announce_only: Mapped[bool] = mapped_column(Boolean, default=False)
    private_archive: Mapped[bool] = mapped_column(Boolean, default=True)
    delivery: Mapped[str] = mapped_column(String(20), default="personalised")  # | bulk
    footer: Mapped[str] = mapped_column(Text, default="")
    # Policy actions, reply-to, limits: a JSON document read by listservs.config.
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ListRole(Base):
    """Owners, moderators and named posters of a list, by address."""

    __tablename__ = "list_roles"
    __table_args__ = (UniqueConstraint("list_id", "email", "role"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(20))  # owner | moderator | poster


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        UniqueConstraint("member_id", "list_id"),
        Index("ix_subscriptions_list_status", "list_id", "status"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    # regular | digest (MIME) | digest-plain (RFC 1153) | nomail
    mode: Mapped[str] = mapped_column(String(20), default="regular")
    # active | left (the person unsubscribed: never re-added for them) | removed (bounces)
    status: Mapped[str] = mapped_column(String(20), default="active")
    source: Mapped[str] = mapped_column(String(40), default="cli")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Inbound(Base):
    """A message exactly as the gateway received it.  Never modified after insert."""

    __tablename__ = "inbound"
    __table_args__ = (Index("ix_inbound_state", "state", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    peer: Mapped[str | None] = mapped_column(String(100))
    mail_from: Mapped[str] = mapped_column(String(400), default="")
    rcpt_to: Mapped[list[Any]] = mapped_column()  # parsed targets, see mailer.addresses
    size: Mapped[int] = mapped_column(Integer)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    # received -> done | failed ; enqueued_at tells the sweeper it is already on its way.
    state: Mapped[str] = mapped_column(String(20), default="received")
    enqueued_at: Mapped[dt.datetime | None] = mapped_column()
    processed_at: Mapped[dt.datetime | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)


class Post(Base):
    """An accepted message on one list, as archived (threading keys kept)."""

    __tablename__ = "posts"
    __table_args__ = (
        UniqueConstraint("inbound_id", "list_id"),
        Index("ix_posts_list_message_id", "list_id", "message_id"),  # duplicate check
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound.id"))
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id"))
    message_id: Mapped[str] = mapped_column(String(998))
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    subject: Mapped[str] = mapped_column(Text, default="")
    sender: Mapped[str] = mapped_column(String(400), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Outbound(Base):
    """A message built once for many recipients: a list post, an issue, a notice."""

    __tablename__ = "outbound"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # post | notice | issue | digest
    list_id: Mapped[int | None] = mapped_column(ForeignKey("lists.id"))
    post_id: Mapped[int | None] = mapped_column(ForeignKey("posts.id"))
    personal: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bytes shared by every copy; personal header lines are spliced in front per recipient.
    body: Mapped[bytes] = mapped_column(LargeBinary)
    bounce_local: Mapped[str] = mapped_column(String(200))  # e.g. city-clerks-bounces
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Set once its chunks were handed to the workers; NULL rows are picked up by the clock
    # (notices queued by the CLI or the web, which cannot reach the workers' broker).
    dispatched_at: Mapped[dt.datetime | None] = mapped_column()


class Delivery(Base):
    """One recipient of one outbound message: pending -> sending -> sent|deferred|failed."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_outbound_state", "outbound_id", "state"),
        Index("ix_deliveries_state_due", "state", "due_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    outbound_id: Mapped[int] = mapped_column(ForeignKey("outbound.id"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    list_id: Mapped[int | None] = mapped_column(ForeignKey("lists.id"))
    recipient: Mapped[str] = mapped_column(String(320))
    state: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[dt.datetime | None] = mapped_column()
    sent_at: Mapped[dt.datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Held(Base):
    """A message waiting for a moderator."""

    __tablename__ = "held"
    __table_args__ = (UniqueConstraint("inbound_id", "list_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound.id"))
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id"))
    sender: Mapped[str] = mapped_column(String(400), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    # held -> approved | rejected | discarded | expired
    state: Mapped[str] = mapped_column(String(20), default="held")
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column()
    decided_by: Mapped[str | None] = mapped_column(String(320))


class Throttle(Base):
    """One sending limit's state (GCRA): shared by every worker process."""

    __tablename__ = "throttles"
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    tat: Mapped[dt.datetime] = mapped_column()  # theoretical arrival time of the next slot
    interval: Mapped[float] = mapped_column(default=0.0)  # learnt limits only
    until: Mapped[dt.datetime | None] = mapped_column()  # learnt limits expire


class WorkerBeat(Base):
    """Live worker processes; claims held by a process that stopped beating are released."""

    __tablename__ = "worker_beats"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    beat_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
