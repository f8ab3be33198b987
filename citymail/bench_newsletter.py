"""``citymail bench newsletter``: one personalised issue to N subscribers, end to end.

A throw-away installation (temporary SQLite file, or a temporary database on the
``CITYMAIL_DATABASE_URL`` PostgreSQL server) gets N subscribers in 480 cities, a feed with
a few items and an issue with editor blocks; ``citymail serve`` runs as in production
(gateway process plus worker process) and the issue is scheduled for now.  The figure is
the seconds from the clock's claim of the issue to the last recorded delivery, read from
the rows.  Only ``mailer`` is imported; the server is a separate process.
"""

from __future__ import annotations

import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select, text

from citymail.bench import running_serve, throwaway_env
from citymail.bench import temporary_database as _database
from mailer import schema
from mailer.db import make_engine, reading, utcnow, writing
from mailer.league import load_league, seed_lists
from mailer.models import City, Delivery, MailingList, Member, Subscription
from mailer.settings import Settings, load_settings
from newsletters import issues
from newsletters.models import FeedItem, NewsletterFeed

__all__ = ["newsletter_bench"]

D = Delivery.__table__
NEWSLETTER = "advocate"
BLOCKS = (
    "## This week in Sacramento\n\nThe Legislature returns on **Monday**, and the budget "
    "conversation starts with the Governor's January proposal. Here is what cities should "
    "watch, and how to [weigh in](https://www.calcities.org/advocacy).\n\n"
    "* Housing element deadlines\n* Transportation funding\n* Public safety grants\n",
    "> \"Local control is not a slogan; it is how our residents get things done.\"\n\n"
    "Register for the **City Leaders Summit** by Friday to keep the early rate.",
)


def _populate(engine: Engine, subscribers: int) -> None:
    with writing(engine) as conn:
        seed_lists(conn, load_league())
        list_id = conn.execute(select(MailingList.id)
                               .where(MailingList.name == NEWSLETTER)).scalar_one()
        conn.execute(insert(City), [{"name": f"Bench City {i}", "coastal": i % 5 == 0,
                                     "rural": i % 7 == 0} for i in range(480)])
        cities = list(conn.scalars(select(City.id).order_by(City.id)))
        for start in range(0, subscribers, 5000):
            conn.execute(insert(Member), [
                {"email": f"reader{i}@city{i % 480}.example", "name": f"Reader {i}",
                 "city_id": cities[i % 480], "is_league_member": True, "status": "active"}
                for i in range(start, min(subscribers, start + 5000))])
        conn.execute(insert(Subscription).from_select(
            ["member_id", "list_id", "mode", "status", "source", "created_at", "updated_at"],
            select(Member.id, text(str(list_id)), text("'regular'"), text("'active'"),
                   text("'bench'"), func.current_timestamp(), func.current_timestamp())))
        now = utcnow()
        feed_id = conn.execute(insert(NewsletterFeed).values(
            list_id=list_id, url="https://news.example/feed.xml", title="Cal Cities news",
            status="ok", failures=0, next_poll_at=now + dt.timedelta(days=1), created_at=now)
            .returning(NewsletterFeed.id)).scalar_one()
        conn.execute(insert(FeedItem), [{
            "list_id": list_id, "feed_id": feed_id, "guid": f"bench-{i}",
            "title": f"League news item {i}: what the new rules mean for cities",
            "link": f"https://news.example/items/{i}", "first_seen_at": now,
            "published_at": now - dt.timedelta(hours=i),
            "html": "<p>" + "A summary of the story with enough words to look real. " * 8
                    + "</p>"} for i in range(8)])


def newsletter_bench(*, subscribers: int, relay: str, threads: int = 8,
                     runs: int = 1) -> dict[str, Any]:
    """Send ``runs`` issues to ``subscribers``; median seconds claim -> last delivery."""
    with tempfile.TemporaryDirectory(prefix="citymail-bench-news-") as tmpdir:
        tmp = Path(tmpdir)
        with _database(tmp) as db_url:
            env = throwaway_env(tmp, db_url=db_url, relay=relay, threads=threads)
            settings = load_settings(env)
            engine = make_engine(settings)
            try:
                schema.upgrade(engine)
                _populate(engine, subscribers)
                return _measure(env, settings, engine, subscribers=subscribers, runs=runs)
            finally:
                engine.dispose()


def _measure(env: dict[str, str], settings: Settings, engine: Engine, *, subscribers: int,
             runs: int) -> dict[str, Any]:
    durations: list[float] = []
    with running_serve(env, settings.smtp_port) as rss:
        for n in range(runs):
            durations.append(_one_issue(engine, settings, subscribers, n))
    seconds = statistics.median(durations)
    return {"subscribers": subscribers, "runs": runs, "seconds": round(seconds, 3),
            "messages_per_s": round(subscribers / seconds, 1) if seconds else None,
            "peak_rss_mb": round(rss.peak / 2**20, 1),
            "all_seconds": [round(d, 3) for d in durations]}


def _one_issue(engine: Engine, settings: Settings, subscribers: int, n: int) -> float:
    with writing(engine) as conn:
        issue_id = issues.create_issue(conn, NEWSLETTER, subject=f"Bench issue {n}",
                                       blocks=list(BLOCKS), preheader="The week for cities")
        issues.schedule_now(conn, issue_id, zone=settings.timezone)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        time.sleep(0.2)
        with reading(engine) as conn:
            issue = issues.get_issue(conn, issue_id)
            if issue.outbound_id is None or issue.started_at is None:
                continue
            count, last = conn.execute(
                select(func.count(), func.max(D.c.sent_at, type_=D.c.sent_at.type))
                .where(D.c.outbound_id == issue.outbound_id, D.c.state == "sent")).one()
        if count >= subscribers:
            return float((last - issue.started_at).total_seconds())
    raise RuntimeError(f"issue {n}: not every copy was sent within 15 minutes")
