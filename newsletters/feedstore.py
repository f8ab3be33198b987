"""Feeds registered per newsletter, polled politely, their items stored once.

``poll_feeds`` fetches each due feed outside any transaction with a conditional GET (the
stored ETag and Last-Modified), then records the outcome in one short write: new items
(deduplicated by guid per newsletter: a story in two feeds is stored once), the new
validators, and the status.  A failing feed backs off (doubling up to ``cap``) and shows
its error in ``feeds list``; a 304 is a success that changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from mailer.db import reading, utcnow, writing
from mailer.errors import InvalidInput
from mailer.models import MailingList
from newsletters.feeds import FetchResult, fetch_feed, next_poll_after, parse_feed
from newsletters.feeds.parse import ParsedFeed
from newsletters.issues import newsletter_info
from newsletters.models import FeedItem, NewsletterFeed

__all__ = ["POLL_BASE", "POLL_CAP", "PollOutcome", "add_feed", "list_feeds", "poll_feeds",
           "store_items"]

log = logging.getLogger(__name__)

FEEDS = NewsletterFeed.__table__
ITEMS = FeedItem.__table__
POLL_BASE = dt.timedelta(minutes=30)
POLL_CAP = dt.timedelta(hours=12)
CLAIM = dt.timedelta(minutes=10)  # a poller that died mid-fetch: the feed is due again
Fetch = Callable[..., FetchResult]


@dataclass(frozen=True)
class PollOutcome:
    feed_id: int
    url: str
    status: str  # ok | not_modified | error
    new_items: int
    error: str | None


def add_feed(conn: Connection, newsletter: str, url: str, *,
             now: dt.datetime | None = None) -> int:
    url = url.strip()
    if not url.lower().startswith(("http://", "https://")):
        raise InvalidInput(f"a feed URL must start with http:// or https://, got {url!r}")
    info = newsletter_info(conn, newsletter)
    exists = conn.execute(select(FEEDS.c.id).where(FEEDS.c.list_id == info.id,
                                                   FEEDS.c.url == url)).first()
    if exists is not None:
        raise InvalidInput(f"{newsletter} already has the feed {url} (#{exists.id})")
    now = now or utcnow()
    return conn.execute(insert(FEEDS).values(
        list_id=info.id, url=url, title="", status="new", failures=0, next_poll_at=now,
        created_at=now).returning(FEEDS.c.id)).scalar_one()


def list_feeds(conn: Connection) -> list[dict[str, Any]]:
    counts = (select(ITEMS.c.feed_id, func.count().label("n")).group_by(ITEMS.c.feed_id)
              .subquery())
    rows = conn.execute(
        select(FEEDS, MailingList.name.label("newsletter"), func.coalesce(counts.c.n, 0)
               .label("items"))
        .join(MailingList, MailingList.id == FEEDS.c.list_id)
        .outerjoin(counts, counts.c.feed_id == FEEDS.c.id).order_by(FEEDS.c.id)).mappings()
    return [{"id": r["id"], "newsletter": r["newsletter"], "url": r["url"],
             "title": r["title"], "status": r["status"], "last_error": r["last_error"],
             "failures": r["failures"], "items": int(r["items"]),
             "last_polled_at": _iso(r["last_polled_at"]), "last_ok_at": _iso(r["last_ok_at"]),
             "next_poll_at": _iso(r["next_poll_at"])} for r in rows]


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def store_items(conn: Connection, *, feed_id: int, list_id: int, parsed: ParsedFeed,
                now: dt.datetime) -> int:
    """Insert the items not yet known for this newsletter (by guid); returns how many."""
    items = {item.guid: item for item in parsed.items if item.guid}
    if not items:
        return 0
    known: set[str] = set()
    guids = list(items)
    for start in range(0, len(guids), 500):
        known.update(conn.scalars(select(ITEMS.c.guid).where(
            ITEMS.c.list_id == list_id, ITEMS.c.guid.in_(guids[start:start + 500]))))
    rows = [{"list_id": list_id, "feed_id": feed_id, "guid": guid[:2000],
             "title": item.title, "link": item.link, "published_at": item.published,
             "html": item.html, "first_seen_at": now}
            for guid, item in items.items() if guid not in known]
    if rows:
        conn.execute(insert(ITEMS), rows)
    return len(rows)


def poll_feeds(engine: Engine, *, now: dt.datetime | None = None, force: bool = False,
               fetch: Fetch = fetch_feed, base: dt.timedelta = POLL_BASE,
               cap: dt.timedelta = POLL_CAP) -> list[PollOutcome]:
    """Poll the feeds that are due (every feed with ``force``).

    The due feeds are claimed first (their next poll pushed ``CLAIM`` ahead in one
    guarded UPDATE), so several clocks or a clock and the CLI never fetch one feed twice.
    """
    now = now or utcnow()
    cols = (FEEDS.c.id, FEEDS.c.list_id, FEEDS.c.url, FEEDS.c.etag, FEEDS.c.last_modified,
            FEEDS.c.failures)
    with reading(engine) as conn:  # the common case: nothing due, no write lock
        if not force and conn.execute(select(FEEDS.c.id).where(FEEDS.c.next_poll_at <= now)
                                      .limit(1)).first() is None:
            return []
    with writing(engine) as conn:
        stmt = update(FEEDS).values(next_poll_at=now + CLAIM).returning(*cols)
        due = sorted(conn.execute(stmt if force else stmt.where(FEEDS.c.next_poll_at <= now)),
                     key=lambda r: r.id)
    return [_poll_one(engine, feed, now=now, fetch=fetch, base=base, cap=cap) for feed in due]


def _poll_one(engine: Engine, feed: Any, *, now: dt.datetime, fetch: Fetch,
              base: dt.timedelta, cap: dt.timedelta) -> PollOutcome:
    fetched = fetch(feed.url, etag=feed.etag, last_modified=feed.last_modified)
    parsed = None
    error = fetched.error if fetched.status == "error" else None
    if fetched.status == "ok" and error is None:
        parsed = parse_feed(fetched.body or b"", url=fetched.url or feed.url,
                            content_type=fetched.content_type)
        error = parsed.error
    ok = error is None
    failures = 0 if ok else feed.failures + 1
    values: dict[str, Any] = {
        "last_polled_at": now, "failures": failures,
        "next_poll_at": now + next_poll_after(failures, base=base, cap=cap),
        "status": "ok" if ok else "error", "last_error": None if ok else error}
    if ok:
        values.update(last_ok_at=now, etag=fetched.etag, last_modified=fetched.last_modified)
    new = 0
    with writing(engine) as conn:
        if parsed is not None and ok:
            new = store_items(conn, feed_id=feed.id, list_id=feed.list_id, parsed=parsed,
                              now=now)
            if parsed.title:
                values["title"] = parsed.title
        conn.execute(update(FEEDS).where(FEEDS.c.id == feed.id).values(**values))
    if not ok:
        log.info("feed %d %s failed (%d in a row): %s", feed.id, feed.url, failures, error)
    status = "error" if not ok else fetched.status
    return PollOutcome(feed.id, feed.url, status, new, error)
