"""Feeds per newsletter: conditional polling, back-off, deduplicated items, the archive."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest
import test_newsletter_support as support
from sqlalchemy import Engine

from mailer.db import reading, writing
from mailer.errors import InvalidInput, NotFound
from mailer.settings import Settings
from newsletters import issues
from newsletters.archive import archive_index, archive_issue, archive_rss
from newsletters.dispatch import tick
from newsletters.feeds import FetchResult
from newsletters.feedstore import add_feed, list_feeds, poll_feeds

settings, engine = support.settings, support.engine  # fixtures
T0 = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)


def rss(*items: tuple[str, str]) -> bytes:
    entries = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title><link>https://news.example/{guid}"
        f"</link><description>&lt;p&gt;About {title}&lt;/p&gt;&lt;script&gt;x()&lt;/script&gt;"
        "</description></item>" for guid, title in items)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>League news</title>'
            f"<link>https://news.example/</link>{entries}</channel></rss>").encode()


class FakeWeb:
    """Answers like a server with ETags; records what was asked."""

    def __init__(self) -> None:
        self.body = rss(("a1", "Budget"), ("a2", "Housing"))
        self.etag = '"v1"'
        self.down = False
        self.asked: list[tuple[str | None, str | None]] = []

    def __call__(self, url: str, *, etag: str | None = None,
                 last_modified: str | None = None) -> FetchResult:
        self.asked.append((etag, last_modified))
        if self.down:
            return FetchResult("error", None, etag, last_modified, "HTTP 503 Unavailable", 503)
        if etag == self.etag:
            return FetchResult("not_modified", None, etag, last_modified, None, 304, url)
        return FetchResult("ok", self.body, self.etag, "Fri, 20 Nov 2026 12:00:00 GMT", None,
                           200, url, "application/rss+xml")


def _feed(engine: Engine, name: str = "advocate") -> int:
    with writing(engine) as conn:
        return add_feed(conn, name, "https://news.example/feed.xml", now=T0)


def _feeds(engine: Engine) -> list[dict]:
    with reading(engine) as conn:
        return list_feeds(conn)


def test_poll_stores_items_once_and_sends_the_validators_back(engine: Engine) -> None:
    _feed(engine)
    web = FakeWeb()
    [first] = poll_feeds(engine, now=T0, fetch=web)
    assert (first.status, first.new_items) == ("ok", 2)
    assert poll_feeds(engine, now=T0 + dt.timedelta(minutes=5), fetch=web) == []  # not due
    [again] = poll_feeds(engine, now=T0 + dt.timedelta(hours=1), fetch=web)
    assert again.status == "not_modified" and web.asked[-1][0] == '"v1"'
    web.body, web.etag = rss(("a2", "Housing"), ("a3", "Water")), '"v2"'
    [third] = poll_feeds(engine, now=T0 + dt.timedelta(hours=2), fetch=web)
    assert third.new_items == 1  # a2 is known: deduplicated by guid
    [row] = _feeds(engine)
    assert (row["status"], row["items"], row["title"]) == ("ok", 3, "League news")


def test_a_failing_feed_backs_off_and_shows_its_error(engine: Engine) -> None:
    _feed(engine)
    web = FakeWeb()
    web.down = True
    poll_feeds(engine, now=T0, fetch=web)
    [row] = _feeds(engine)
    assert row["status"] == "error" and row["failures"] == 1
    assert row["last_error"] == "HTTP 503 Unavailable"
    first_wait = dt.datetime.fromisoformat(row["next_poll_at"]) - T0
    poll_feeds(engine, now=T0 + first_wait, fetch=web)
    [row] = _feeds(engine)
    second_wait = dt.datetime.fromisoformat(row["next_poll_at"]) - (T0 + first_wait)
    assert row["failures"] == 2 and second_wait == 2 * first_wait
    web.down = False
    poll_feeds(engine, force=True, now=T0 + first_wait, fetch=web)
    [row] = _feeds(engine)
    assert row["status"] == "ok" and row["failures"] == 0 and row["last_error"] is None


def test_bad_feed_urls_and_duplicates_are_refused(engine: Engine) -> None:
    _feed(engine)
    with writing(engine) as conn:
        with pytest.raises(InvalidInput, match="already has"):
            add_feed(conn, "advocate", "https://news.example/feed.xml")
        with pytest.raises(InvalidInput, match="http"):
            add_feed(conn, "advocate", "file:///etc/passwd")
        with pytest.raises(NotFound, match="newsletters: advocate, western-city"):
            add_feed(conn, "city-clerks", "https://news.example/x")


def _issue(engine: Engine, subject: str = "Weekly") -> int:
    with writing(engine) as conn:
        return issues.create_issue(conn, "advocate", subject=subject, blocks=["Hi."])


def _titles(engine: Engine, issue_id: int) -> list[str]:
    with reading(engine) as conn:
        return [i.title for i in issues.issue_items(conn, issues.get_issue(conn, issue_id))]


def test_an_issue_carries_items_new_since_the_last_sent_issue_in_the_editors_order(
        engine: Engine, settings: Settings) -> None:
    _feed(engine)
    web = FakeWeb()
    poll_feeds(engine, now=T0, fetch=web)
    first = _issue(engine)
    assert sorted(_titles(engine, first)) == ["Budget", "Housing"]
    with writing(engine) as conn:
        ids = {i.title: i.id for i in issues.candidate_items(conn, issues.get_issue(conn,
                                                                                     first))}
        issues.arrange_items(conn, first, order=[ids["Housing"], ids["Budget"]])
    assert _titles(engine, first) == ["Housing", "Budget"]
    with writing(engine) as conn:
        issues.arrange_items(conn, first, drop=[ids["Budget"]])
        issues.schedule_now(conn, first, zone="America/Los_Angeles")
    assert _titles(engine, first) == ["Housing"]
    tick(engine, settings)
    # After it started, only newer items belong to the next issue.
    web.body, web.etag = rss(("a1", "Budget"), ("a2", "Housing"), ("a3", "Water")), '"v2"'
    poll_feeds(engine, force=True, fetch=web)
    second = _issue(engine, "Next week")
    assert _titles(engine, second) == ["Water"]
    assert _titles(engine, first) == ["Housing"]  # frozen when it was sent
    with writing(engine) as conn, pytest.raises(InvalidInput, match="not among"):
        issues.arrange_items(conn, second, drop=[ids["Budget"]])


def test_the_archive_lists_published_issues_only_and_rss_is_valid(
        engine: Engine, settings: Settings) -> None:
    sent = _issue(engine, "Budget <week> & more")
    draft = _issue(engine, "Not yet")
    with writing(engine) as conn:
        issues.schedule_now(conn, sent, zone="America/Los_Angeles")
    tick(engine, settings)
    with reading(engine) as conn:
        index = archive_index(conn, "advocate")
        page = archive_issue(conn, "advocate", sent)
        feed = archive_rss(conn, "advocate", "https://lists.example.org")
        with pytest.raises(NotFound):
            archive_issue(conn, "advocate", draft)
    assert "Budget &lt;week&gt; &amp; more" in index and f'href="issues/{sent}"' in index
    assert "Not yet" not in index and 'href="rss.xml"' in index
    assert "Hello there," in page and "Hi." in page and "@example" not in page
    assert "https://lists.example.org/manage" in page  # no one's own unsubscribe link
    channel = ET.fromstring(feed).find("channel")
    assert channel is not None and channel.findtext("title") == "Cal Cities Advocate"
    [item] = channel.findall("item")
    assert item.findtext("title") == "Budget <week> & more"
    assert item.findtext("link") == f"https://lists.example.org/newsletters/advocate/issues/{sent}"
    assert "Hi." in (item.findtext("description") or "")
