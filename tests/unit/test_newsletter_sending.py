"""Sending an issue: pause and resume continue from the checkpoint; status is honest."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from email import message_from_bytes, policy

import pytest
import test_newsletter_support as support
from sqlalchemy import Engine, func, select

from mailer.db import reading, writing
from mailer.models import Delivery, Outbound
from mailer.settings import Settings
from mailer.transport import MemorySender
from newsletters import issues
from newsletters.dispatch import send_test, tick

settings, engine = support.settings, support.engine  # fixtures
LA = "America/Los_Angeles"


def _started(engine: Engine, settings: Settings, *, extra: int = 0) -> tuple[int, int]:
    if extra:
        support.add_subscribers(engine, extra)
    with writing(engine) as conn:
        issue_id = issues.create_issue(conn, "advocate", subject="Weekly",
                                       blocks=["**Hello** readers."])
        issues.schedule_now(conn, issue_id, zone=LA)
    assert tick(engine, settings) == [issue_id]
    with reading(engine) as conn:
        return issue_id, issues.get_issue(conn, issue_id).outbound_id or 0


def _status(engine: Engine, issue_id: int) -> dict:
    with reading(engine) as conn:
        return issues.issue_status(conn, issue_id)


def test_every_subscriber_gets_one_personalised_copy_and_the_issue_becomes_sent(
        engine: Engine, settings: Settings) -> None:
    issue_id, outbound_id = _started(engine, settings)
    sender = MemorySender()
    assert support.deliver(engine, settings, sender, outbound_id) == 3
    by_rcpt = {rcpt: data for _, rcpt, data in sender.sent}
    assert sorted(by_rcpt) == sorted(p[0] for p in support.PEOPLE)
    for email, name, city in support.PEOPLE:
        msg = message_from_bytes(by_rcpt[email], policy=policy.default)
        assert msg["To"].addresses[0].display_name == name
        text = next(iter(msg.iter_parts())).get_content()
        assert f"Hello {name}," in text and city in text
    assert all(mail_from.startswith("advocate-bounces+") for mail_from, _, _ in sender.sent)
    tick(engine, settings)
    status = _status(engine, issue_id)
    assert status["state"] == "sent" and status["sent"] == 3 and status["percent"] == 100.0
    assert status["finished_at"] is not None


def test_pause_and_resume_send_each_recipient_exactly_once(engine: Engine,
                                                            settings: Settings) -> None:
    issue_id, outbound_id = _started(engine, settings, extra=997)
    sender = MemorySender()
    # Workers get through four chunks of 50, then the editor pauses.
    assert support.deliver(engine, settings, sender, outbound_id, limit=4) == 200
    with writing(engine) as conn:
        assert issues.pause_issue(conn, issue_id) == 800
    # Chunk messages already on the broker find nothing to claim while paused.
    assert support.deliver(engine, settings, sender, outbound_id) == 0
    tick(engine, settings)  # a paused issue is not "finished"
    status = _status(engine, issue_id)
    assert (status["state"], status["sent"], status["paused"]) == ("paused", 200, 800)
    with writing(engine) as conn:
        assert issues.resume_issue(conn, issue_id) == 800
        dispatched = conn.execute(select(Outbound.dispatched_at)
                                  .where(Outbound.id == outbound_id)).scalar_one()
    assert dispatched is None  # the clock hands the rest to the workers
    # Old and new broker messages both arrive: each row is still claimed once.
    assert support.deliver(engine, settings, sender, outbound_id, worker="w2") == 800
    assert support.deliver(engine, settings, sender, outbound_id, worker="w3") == 0
    counts = Counter(rcpt for _, rcpt, _ in sender.sent)
    assert len(counts) == 1000 and set(counts.values()) == {1}
    tick(engine, settings)
    assert _status(engine, issue_id)["state"] == "sent"


def test_deferred_rows_pause_too_and_cancel_stops_the_rest(engine: Engine,
                                                           settings: Settings) -> None:
    issue_id, outbound_id = _started(engine, settings, extra=97)
    with writing(engine) as conn:
        conn.execute(Delivery.__table__.update()
                     .where(Delivery.outbound_id == outbound_id, Delivery.id % 10 == 0)
                     .values(state="deferred"))
        paused = issues.pause_issue(conn, issue_id)
    assert paused == 100
    with writing(engine) as conn:
        assert issues.cancel_issue(conn, issue_id) == 100
    sender = MemorySender()
    assert support.deliver(engine, settings, sender, outbound_id) == 0
    status = _status(engine, issue_id)
    assert status["state"] == "cancelled" and status["cancelled"] == 100
    with writing(engine) as conn, pytest.raises(issues.IssueStateError):
        issues.resume_issue(conn, issue_id)


def test_pause_is_refused_unless_sending(engine: Engine) -> None:
    with writing(engine) as conn:
        issue_id = issues.create_issue(conn, "advocate", subject="Draft")
        with pytest.raises(issues.IssueStateError, match="is draft; only sending"):
            issues.pause_issue(conn, issue_id)


def test_status_reports_rate_and_eta_from_delivery_rows(engine: Engine,
                                                        settings: Settings) -> None:
    issue_id, outbound_id = _started(engine, settings, extra=97)
    support.deliver(engine, settings, MemorySender(), outbound_id, limit=1)
    status = _status(engine, issue_id)
    assert status["total"] == 100 and status["sent"] == 50 and status["remaining"] == 50
    assert status["rate_per_s"] == pytest.approx(50 / 60, abs=0.1)
    assert status["eta_seconds"] == pytest.approx(60, abs=5)
    with reading(engine) as conn:
        later = issues.issue_status(conn, issue_id,
                                    now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    assert later["rate_per_s"] == 0 and later["eta_seconds"] is None  # honest: unknown


def test_a_test_send_goes_only_to_the_named_addresses(engine: Engine,
                                                      settings: Settings) -> None:
    with writing(engine) as conn:
        issue_id = issues.create_issue(conn, "western-city", subject="Monthly")
    outbound_id = send_test(engine, settings, issue_id, ["editor@example.org",
                                                         "ANN@example.org"])
    sender = MemorySender()
    assert support.deliver(engine, settings, sender, outbound_id) == 2
    by_rcpt = {rcpt: message_from_bytes(data, policy=policy.default)
               for _, rcpt, data in sender.sent}
    assert sorted(by_rcpt) == ["ann@example.org", "editor@example.org"]
    assert all(m["Subject"] == "[TEST] Monthly" for m in by_rcpt.values())
    ann = next(iter(by_rcpt["ann@example.org"].iter_parts())).get_content()
    assert "Hello Ann Lee," in ann
    editor = next(iter(by_rcpt["editor@example.org"].iter_parts())).get_content()
    assert "Hello there," in editor and "https://lists.example.org/manage" in editor
    with reading(engine) as conn:
        assert issues.get_issue(conn, issue_id).state == "draft"
        assert conn.execute(select(func.count()).select_from(Delivery)).scalar_one() == 2
