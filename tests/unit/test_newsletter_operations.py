"""Running newsletters: feeds polled on the workers' clock, complaints and paused sends
in the status commands."""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import threading
import time

import pytest
import test_newsletter_support as support
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import Engine, insert, select
from test_newsletter_feeds import FakeWeb

from citymail.cli import cmd_deliveries_status
from citymail.newsletters_cli import cmd_status
from mailer.db import reading, writing
from mailer.models import Delivery, Subscription
from mailer.models_bounces import BounceEvent
from mailer.settings import Settings
from newsletters import issues
from newsletters.dispatch import tick
from newsletters.feedpoll import FeedPoller
from newsletters.feedstore import add_feed, list_feeds, poll_feeds
from workers.runtime import Clock, build_runtime

settings, engine = support.settings, support.engine  # fixtures
LA = "America/Los_Angeles"


class SlowPoll:
    """A poll that blocks until released, like a feed server that is slow to answer."""

    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.release = threading.Event()
        self.calls: list[dict[str, object]] = []

    def __call__(self, engine: Engine, **kwargs: object) -> list[object]:
        self.calls.append(kwargs)
        self.started.release()
        self.release.wait(10)
        return []


def test_feed_polls_run_in_their_own_thread_one_at_a_time(engine: Engine) -> None:
    slow, clock = SlowPoll(), [0.0]
    poller = FeedPoller(engine, every=dt.timedelta(minutes=30), check=60.0, poll=slow,
                        monotonic=lambda: clock[0])
    began = time.monotonic()
    assert poller.maybe_start() is True
    assert time.monotonic() - began < 0.5  # the caller (the clock) never waits for a fetch
    assert slow.started.acquire(timeout=5)
    clock[0] = 120.0
    assert poller.maybe_start() is False  # the previous poll is still fetching
    slow.release.set()
    poller.join(5)
    assert poller.maybe_start() is True  # due again, and the other one finished
    poller.join(5)
    clock[0] = 150.0
    assert poller.maybe_start() is False  # checked 30 s ago: not yet
    assert [c["base"] for c in slow.calls] == [dt.timedelta(minutes=30)] * 2
    assert FeedPoller(engine, every=dt.timedelta(0), poll=slow).maybe_start() is False


def test_the_clock_stores_new_feed_items_at_the_configured_cadence(
        engine: Engine, settings: Settings) -> None:
    with writing(engine) as conn:
        add_feed(conn, "advocate", "https://news.example/feed.xml")
    settings = Settings(**{**settings.__dict__, "feed_poll_minutes": 45})
    rt = build_runtime(settings, engine, StubBroker(), threads=1)
    clock = Clock(rt, embedded=True, tick=0.05)
    web = FakeWeb()
    clock.feeds.poll = functools.partial(poll_feeds, fetch=web)
    clock.start()
    try:
        deadline = time.monotonic() + 10
        while not _items(engine) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        clock.stop()
        clock.join(5)
        clock.feeds.join(5)
    [feed] = list_feeds_now(engine)
    assert (feed["status"], feed["items"], feed["title"]) == ("ok", 2, "League news")
    polled = dt.datetime.fromisoformat(feed["last_polled_at"])
    assert dt.datetime.fromisoformat(feed["next_poll_at"]) - polled == dt.timedelta(minutes=45)
    assert len(web.asked) == 1  # many ticks, one fetch


def list_feeds_now(engine: Engine) -> list[dict]:
    with reading(engine) as conn:
        return list_feeds(conn)


def _items(engine: Engine) -> int:
    return sum(f["items"] for f in list_feeds_now(engine))


def _sending_issue(engine: Engine, settings: Settings) -> tuple[int, int]:
    with writing(engine) as conn:
        issue_id = issues.create_issue(conn, "advocate", subject="Weekly", blocks=["Hi"])
        issues.schedule_now(conn, issue_id, zone=LA)
    assert tick(engine, settings) == [issue_id]
    with reading(engine) as conn:
        return issue_id, issues.get_issue(conn, issue_id).outbound_id or 0


def _complain(engine: Engine, outbound_id: int) -> None:
    with writing(engine) as conn:
        row = conn.execute(select(Delivery.id, Delivery.member_id, Delivery.list_id,
                                  Delivery.recipient, Subscription.id.label("sub"))
                           .join(Subscription, (Subscription.member_id == Delivery.member_id)
                                 & (Subscription.list_id == Delivery.list_id))
                           .where(Delivery.outbound_id == outbound_id).limit(1)).one()
        conn.execute(insert(BounceEvent).values(
            subscription_id=row.sub, member_id=row.member_id, list_id=row.list_id,
            kind="complaint", source="dsn", address=row.recipient, delivery_id=row.id,
            outbound_id=outbound_id))


def test_issue_status_counts_complaints(engine: Engine, settings: Settings,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    issue_id, outbound_id = _sending_issue(engine, settings)
    _complain(engine, outbound_id)
    args = argparse.Namespace(id=issue_id, json=True)
    cmd_status(args, settings)
    assert json.loads(capsys.readouterr().out)["complaints"] == 1
    cmd_status(argparse.Namespace(id=issue_id, json=False), settings)
    assert "1 complaint(s)" in capsys.readouterr().out


def test_deliveries_status_shows_paused_and_cancelled_sends(
        engine: Engine, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    issue_id, outbound_id = _sending_issue(engine, settings)
    with writing(engine) as conn:
        issues.pause_issue(conn, issue_id)
    cmd_deliveries_status(argparse.Namespace(all=False, json=True), settings)
    [row] = json.loads(capsys.readouterr().out)
    assert (row["id"], row["state"], row["paused"], row["total"]) == (outbound_id, "paused", 3, 3)
    assert row["eta_seconds"] is None
    cmd_deliveries_status(argparse.Namespace(all=False, json=False), settings)
    assert "3 paused, 0 cancelled (paused)" in capsys.readouterr().out
    with writing(engine) as conn:
        issues.cancel_issue(conn, issue_id)
    cmd_deliveries_status(argparse.Namespace(all=False, json=False), settings)
    assert capsys.readouterr().out == "nothing is being delivered\n"  # finished for good
    cmd_deliveries_status(argparse.Namespace(all=True, json=True), settings)
    [row] = json.loads(capsys.readouterr().out)
    assert (row["state"], row["cancelled"], row["paused"], row["total"]) == (
        "cancelled", 3, 0, 3)
