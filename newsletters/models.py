"""The newsletter tables: feeds per newsletter, their items, and issues.

A newsletter is a row of ``lists`` with ``kind = "newsletter"`` (it has subscribers,
bounces and unsubscribe links like a list).  These models share ``mailer.models.Base``
so that Alembic sees one schema; the migration is ``0007_newsletters``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mailer.db import utcnow
from mailer.models import Base, BigId

__all__ = ["ISSUE_STATES", "FeedItem", "Issue", "NewsletterFeed"]

ISSUE_STATES = ("draft", "scheduled", "sending", "sent", "paused", "cancelled")


class NewsletterFeed(Base):
    """An RSS/Atom feed whose new items go into a newsletter's next issue."""

    __tablename__ = "newsletter_feeds"
    __table_args__ = (UniqueConstraint("list_id", "url"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))
    title: Mapped[str] = mapped_column(Text, default="")
    # Validators of the last good answer, sent back for a conditional GET.
    etag: Mapped[str | None] = mapped_column(String(1000))
    last_modified: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="new")  # new | ok | error
    last_error: Mapped[str | None] = mapped_column(Text)
    failures: Mapped[int] = mapped_column(Integer, default=0)  # consecutive
    last_polled_at: Mapped[dt.datetime | None] = mapped_column()
    last_ok_at: Mapped[dt.datetime | None] = mapped_column()
    next_poll_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FeedItem(Base):
    """One article, stored once per newsletter (deduplicated by guid), HTML sanitised."""

    __tablename__ = "newsletter_items"
    __table_args__ = (
        UniqueConstraint("list_id", "guid"),
        Index("ix_newsletter_items_list_seen", "list_id", "first_seen_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    feed_id: Mapped[int] = mapped_column(ForeignKey("newsletter_feeds.id", ondelete="CASCADE"))
    guid: Mapped[str] = mapped_column(String(2000))
    title: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[dt.datetime | None] = mapped_column()
    html: Mapped[str] = mapped_column(Text, default="")
    first_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Issue(Base):
    """One issue of a newsletter: draft -> scheduled -> sending -> sent (see issues.py)."""

    __tablename__ = "newsletter_issues"
    __table_args__ = (Index("ix_newsletter_issues_state_send_at", "state", "send_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id"))
    subject: Mapped[str] = mapped_column(Text)
    preheader: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(20), default="draft")
    # The editor's blocks, Markdown, in order; and an optional plain-text version.
    blocks: Mapped[list[Any]] = mapped_column(default=list)
    text_version: Mapped[str | None] = mapped_column(Text)
    # Editor's choices among the new feed items: an explicit order and the dropped ids.
    item_order: Mapped[list[Any]] = mapped_column(default=list)
    dropped_items: Mapped[list[Any]] = mapped_column(default=list)
    # Frozen when the issue starts sending: the item ids it carried.
    sent_items: Mapped[list[Any] | None] = mapped_column()
    # The schedule: UTC instant, and the zone and wall time it was given in.
    send_at: Mapped[dt.datetime | None] = mapped_column()
    send_zone: Mapped[str | None] = mapped_column(String(64))
    send_local: Mapped[str | None] = mapped_column(String(32))
    outbound_id: Mapped[int | None] = mapped_column(ForeignKey("outbound.id"))
    archive_html: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column()
