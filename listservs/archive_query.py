"""Reading a list's archive: months, a month's posts, one post, its neighbours, its bytes.

A post without an ``archive_messages`` row (not yet indexed) still shows: its date is
when it was received and its subject the one ``posts`` keeps. Months are the league's
local months (``CITYMAIL_TIMEZONE``). An erased author (``posts.sender`` emptied by
``citymail members forget``) is shown as nobody.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, func, or_, select

from listservs.archive_text import erased_copy
from mailer.errors import InvalidInput, NotFound
from mailer.models import Inbound, MailingList, Post
from mailer.models_archive import ArchiveMessage

__all__ = ["ArchiveList", "ArchivedPost", "archive_list", "month_bounds", "month_of",
           "month_posts", "months", "neighbours", "post", "post_by_message_id", "raw_of",
           "shown_bytes"]

_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
SENT = func.coalesce(ArchiveMessage.sent_at, Post.created_at)


@dataclass(frozen=True)
class ArchiveList:
    id: int
    name: str
    display_name: str
    private: bool


def archive_list(conn: Connection, name: str) -> ArchiveList:
    """The discussion list ``name`` (newsletters have their own archive); else NotFound."""
    row = conn.execute(select(MailingList.id, MailingList.name, MailingList.display_name,
                              MailingList.private_archive)
                       .where(MailingList.name == name, MailingList.kind == "list")).first()
    if row is None:
        raise NotFound(f"no list named {name!r}")
    return ArchiveList(row.id, row.name, row.display_name, bool(row.private_archive))


@dataclass(frozen=True)
class ArchivedPost:
    id: int
    message_id: str
    subject: str
    author: str  # "" when erased
    sender: str
    sent_at: dt.datetime
    refs: tuple[str, ...]


def _columns():
    return (Post.id, Post.message_id, Post.subject.label("post_subject"), Post.sender,
            Post.in_reply_to, Post.created_at, ArchiveMessage.subject, ArchiveMessage.author,
            ArchiveMessage.sent_at, ArchiveMessage.refs)


def _row(r) -> ArchivedPost:
    refs = tuple((r.refs or "").split()) or ((r.in_reply_to,) if r.in_reply_to else ())
    sent = r.sent_at or r.created_at
    return ArchivedPost(r.id, r.message_id, r.subject or r.post_subject or "",
                        (r.author or r.sender) if r.sender else "", r.sender or "", sent, refs)


def _select():
    return select(*_columns()).outerjoin(ArchiveMessage, ArchiveMessage.post_id == Post.id)


def month_bounds(month: str, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """UTC start and end of a local month given as YYYY-MM."""
    match = _MONTH.fullmatch(month)
    if not match:
        raise InvalidInput(f"a month is written YYYY-MM, such as 2025-03, got {month!r}")
    year, number = int(match.group(1)), int(match.group(2))
    start = dt.datetime(year, number, 1, tzinfo=zone)
    end = dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def month_of(when: dt.datetime, zone: ZoneInfo) -> str:
    return when.astimezone(zone).strftime("%Y-%m")


def months(conn: Connection, list_id: int, zone: ZoneInfo) -> list[tuple[str, int]]:
    """(YYYY-MM, posts) for every month with posts, newest first."""
    counts: dict[str, int] = {}
    for when in conn.scalars(select(SENT).select_from(Post)
                             .outerjoin(ArchiveMessage, ArchiveMessage.post_id == Post.id)
                             .where(Post.list_id == list_id)):
        key = month_of(when, zone)
        counts[key] = counts.get(key, 0) + 1
    return sorted(counts.items(), reverse=True)


def month_posts(conn: Connection, list_id: int, month: str, zone: ZoneInfo) -> list[ArchivedPost]:
    """A local month's posts, oldest first."""
    start, end = month_bounds(month, zone)
    rows = conn.execute(_select().where(Post.list_id == list_id, start <= SENT, end > SENT)
                        .order_by(SENT, Post.id)).all()
    return [_row(r) for r in rows]


def post(conn: Connection, list_id: int, post_id: int) -> ArchivedPost | None:
    r = conn.execute(_select().where(Post.list_id == list_id, Post.id == post_id)).first()
    return _row(r) if r else None


def post_by_message_id(conn: Connection, list_id: int, message_id: str) -> ArchivedPost | None:
    """The post with this Message-ID (with or without its angle brackets)."""
    wanted = message_id.strip()
    wanted = wanted if wanted.startswith("<") else f"<{wanted}>"
    r = conn.execute(_select().where(Post.list_id == list_id, Post.message_id == wanted)
                     .order_by(Post.id).limit(1)).first()
    return _row(r) if r else None


def neighbours(conn: Connection, list_id: int, current: ArchivedPost
               ) -> tuple[ArchivedPost | None, ArchivedPost | None]:
    """The posts just before and just after ``current`` by date."""
    when, ident = current.sent_at, current.id
    before = conn.execute(_select().where(
        Post.list_id == list_id, or_(when > SENT, and_(when == SENT, Post.id < ident)))
        .order_by(SENT.desc(), Post.id.desc()).limit(1)).first()
    after = conn.execute(_select().where(
        Post.list_id == list_id, or_(when < SENT, and_(when == SENT, Post.id > ident)))
        .order_by(SENT, Post.id).limit(1)).first()
    return (_row(before) if before else None), (_row(after) if after else None)


def raw_of(conn: Connection, post_id: int) -> bytes:
    """The post's bytes as received (the archive shows the original, not the decorated copy)."""
    return bytes(conn.execute(select(Inbound.raw).join(Post, Post.inbound_id == Inbound.id)
                              .where(Post.id == post_id)).scalar_one())


def shown_bytes(conn: Connection, post: ArchivedPost) -> bytes:
    """What the archive shows and exports of a post: its bytes as received, or, once its
    author was erased (``citymail members forget``), a plain copy of the scrubbed text
    (the received bytes are kept as received, but no page or mbox shows them)."""
    if post.sender:
        return raw_of(conn, post.id)
    body = conn.scalar(select(ArchiveMessage.body).where(ArchiveMessage.post_id == post.id))
    return erased_copy(post.message_id, post.subject, post.sent_at, body or "")
