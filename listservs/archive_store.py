"""Writing the archive index: a post's entry when it is archived, catch-up, and imports.

* ``store_entry`` in the transaction that writes the post (``workers/inbound.py``): the
  entry was built from the bytes before the transaction (``archive_entry``), so the
  write lock is held for one INSERT (the FTS5 triggers or the generated tsvector do
  the rest).
* ``index_missing``: entries for posts that have none (posts approved by a moderator,
  or archived before this table existed); parsing outside any transaction.
* ``import_mbox``: an old server's archive (``citymail lists import-archive``). Posts go
  in with their original dates and threading and no mail is sent (no outbound row, and
  the stored inbound row is already ``done``); a Message-ID already in the list's
  archive is skipped, so importing the same file twice changes nothing; a message that
  cannot be archived is reported and skipped.

Errors: ``mailer.errors.InvalidInput`` for a file that is not an mbox; ``NotFound`` for
an unknown list.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import BinaryIO

from sqlalchemy import Connection, Engine, insert, select

from listservs.archive_mbox import read_mbox
from listservs.archive_text import ArchiveEntry, archive_entry, parse, sender_address
from listservs.lists import get_list
from mailer.db import reading, utcnow, writing
from mailer.errors import InvalidInput
from mailer.models import Inbound, Post
from mailer.models_archive import ArchiveMessage

__all__ = ["ImportReport", "import_mbox", "index_missing", "index_post", "store_entry"]

log = logging.getLogger(__name__)

BATCH = 200  # messages per write transaction: short write locks during a big import
IMPORT_PEER = "import"  # inbound.peer of imported messages


def store_entry(conn: Connection, *, post_id: int, list_id: int, entry: ArchiveEntry) -> None:
    """The post's archive row (call in the transaction that inserts the post)."""
    conn.execute(insert(ArchiveMessage).values(
        post_id=post_id, list_id=list_id, sent_at=entry.sent_at, subject=entry.subject,
        author=entry.author, refs=" ".join(entry.refs), body=entry.body))


def index_post(conn: Connection, *, post_id: int, list_id: int, inbound_id: int,
               now: dt.datetime) -> None:
    """The archive row of a post whose entry was not built beforehand (a moderator's
    approval, which is rare enough to parse inside its transaction)."""
    raw = conn.execute(select(Inbound.raw).where(Inbound.id == inbound_id)).scalar_one()
    store_entry(conn, post_id=post_id, list_id=list_id,
                entry=archive_entry(bytes(raw), received_at=now))


def index_missing(engine: Engine, *, list_id: int | None = None, limit: int = 5000) -> int:
    """Archive rows for posts that have none; returns how many were added."""
    with reading(engine) as conn:
        stmt = (select(Post.id, Post.list_id, Post.created_at, Inbound.raw)
                .join(Inbound, Inbound.id == Post.inbound_id)
                .outerjoin(ArchiveMessage, ArchiveMessage.post_id == Post.id)
                .where(ArchiveMessage.id.is_(None)).order_by(Post.id).limit(limit))
        if list_id is not None:
            stmt = stmt.where(Post.list_id == list_id)
        rows = conn.execute(stmt).all()
    entries = [(r.id, r.list_id, archive_entry(bytes(r.raw), received_at=r.created_at))
               for r in rows]
    added = 0
    for start in range(0, len(entries), BATCH):
        with writing(engine) as conn:
            chunk = entries[start:start + BATCH]
            done = set(conn.scalars(select(ArchiveMessage.post_id).where(
                ArchiveMessage.post_id.in_([p for p, _, _ in chunk]))))
            for post_id, lid, entry in chunk:
                if post_id not in done:
                    store_entry(conn, post_id=post_id, list_id=lid, entry=entry)
                    added += 1
    return added


@dataclass
class ImportReport:
    """What an import did: counts, and one line per message skipped as bad."""

    messages: int = 0
    imported: int = 0
    already: int = 0  # Message-ID already archived on the list (or repeated in the file)
    bad: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Ready:
    raw: bytes
    message_id: str
    in_reply_to: str | None
    subject: str
    sender: str
    entry: ArchiveEntry


def _prepare(raw: bytes, *, envelope_date: dt.datetime | None, domain: str) -> _Ready:
    """A message made ready to archive; ValueError says why it cannot be."""
    # Imported here: posting imports effects, which imports this module (index_post).
    from listservs.posting import derived_message_id

    msg = parse(raw)  # once: a large import spends its time here
    if not msg.keys():
        raise ValueError("no header fields")
    if not (msg.get("From") or msg.get("Subject") or msg.get("Message-ID")):
        raise ValueError("no From, Subject or Message-ID header")
    fallback = envelope_date or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    entry = archive_entry(msg, received_at=fallback)
    if entry.sent_at == fallback and envelope_date is None:
        raise ValueError("no readable Date header and no date on its From line")
    # As posting.read_headers keeps them, so that a post and its import are one Message-ID.
    message_id = _one_line(msg, "Message-ID") or derived_message_id(raw, domain)
    if len(message_id) > 998:
        raise ValueError("Message-ID longer than 998 characters")
    return _Ready(raw, message_id, _one_line(msg, "In-Reply-To") or None, entry.subject,
                  sender_address(msg), entry)


def _one_line(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except Exception:  # a malformed header is as good as none
        return ""
    return " ".join(str(value).split()) if value is not None else ""


def _write(conn: Connection, list_id: int, items: list[_Ready], now: dt.datetime) -> int:
    known = set(conn.scalars(select(Post.message_id).where(
        Post.list_id == list_id, Post.message_id.in_([i.message_id for i in items]))))
    written = 0
    for item in items:
        if item.message_id in known:
            continue
        known.add(item.message_id)
        inbound_id = conn.execute(insert(Inbound).values(
            received_at=now, peer=IMPORT_PEER, mail_from=item.sender, rcpt_to=[],
            size=len(item.raw), raw=item.raw, state="done", enqueued_at=now,
            processed_at=now).returning(Inbound.id)).scalar_one()
        post_id = conn.execute(insert(Post).values(
            inbound_id=inbound_id, list_id=list_id, message_id=item.message_id,
            in_reply_to=item.in_reply_to, subject=item.subject, sender=item.sender,
            created_at=item.entry.sent_at).returning(Post.id)).scalar_one()
        store_entry(conn, post_id=post_id, list_id=list_id, entry=item.entry)
        written += 1
    return written


def import_mbox(engine: Engine, list_name: str, source: bytes | BinaryIO, *, domain: str,
                progress: Callable[[int], None] | None = None) -> ImportReport:
    """Archive every good message of an mbox file on the list (see the module docstring).

    The file is read as a stream and written in batches, so an archive of any size takes
    the memory of one batch.  A file that stops being readable part-way (a damaged gzip)
    keeps the batches already written; running the import again skips them."""
    with reading(engine) as conn:
        info = get_list(conn, list_name)
    report = ImportReport()
    ready: list[_Ready] = []

    def flush() -> None:
        with writing(engine) as conn:
            written = _write(conn, info.id, ready, utcnow())
        report.imported += written
        report.already += len(ready) - written
        ready.clear()
        if progress:
            progress(report.messages)

    try:
        for m in read_mbox(source):
            report.messages += 1
            try:
                ready.append(_prepare(m.raw, envelope_date=m.envelope_date, domain=domain))
            except Exception as exc:  # one bad message is reported, never the end of it
                report.bad.append(f"message {m.number} (line {m.line}): {exc}")
            if len(ready) >= BATCH:
                flush()
    except ValueError as exc:
        if ready:
            flush()
        raise InvalidInput(f"{exc} (after {report.messages:,} messages; "
                           f"{report.imported:,} imported)" if report.messages
                           else str(exc)) from None
    if ready:
        flush()
    log.info("imported %d messages into %s (%d already there, %d bad)", report.imported,
             list_name, report.already, len(report.bad))
    return report
