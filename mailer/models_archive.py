"""The list archive's search index: one row per archived post (``archive_messages``).

``posts`` stays the archive's list of messages (and ``inbound`` holds their bytes); this
table adds what the archive pages and full-text search need and that is costly to get
from the raw bytes every time: the date the author wrote, the thread keys, the decoded
subject and author name, and the text that is searched.

Search itself is dialect-specific DDL made by the migration ``0014archive``: on SQLite an
FTS5 table ``archive_fts`` (external content, kept in step by triggers); on PostgreSQL a
generated ``tsvector`` column ``search`` with a GIN index.  Neither is declared here, so
the ORM model is the same on both.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models import Base, BigId

__all__ = ["ArchiveMessage"]


class ArchiveMessage(Base):
    """What the archive knows about one post beyond ``posts``."""

    __tablename__ = "archive_messages"
    __table_args__ = (Index("ix_archive_messages_list_sent", "list_id", "sent_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"),
                                         unique=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    sent_at: Mapped[dt.datetime] = mapped_column()  # the Date header (else when received)
    subject: Mapped[str] = mapped_column(Text, default="")  # decoded
    author: Mapped[str] = mapped_column(Text, default="")  # display name, decoded
    refs: Mapped[str] = mapped_column(Text, default="")  # References + In-Reply-To, spaced
    body: Mapped[str] = mapped_column(Text, default="")  # the text that search reads
