"""Issues are scheduled in the league's local time and follow DST; each goes out once."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import test_newsletter_support as support
from sqlalchemy import Engine, func, select

from mailer.db import make_engine, reading, writing
from mailer.errors import InvalidInput
from mailer.models import Delivery, Outbound
from mailer.settings import Settings
from newsletters import issues
from newsletters.dispatch import start_due_issues, tick
from newsletters.schedule import local_schedule, show_local

LA = "America/Los_Angeles"
settings, engine = support.settings, support.engine  # fixtures


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def test_nine_local_follows_the_clock_change_in_both_directions() -> None:
    # 2026: DST starts Sunday 8 March, ends Sunday 1 November.
    assert local_schedule("2026-10-31 09:00", LA).send_at == utc(2026, 10, 31, 16)
    assert local_schedule("2026-11-02 09:00", LA).send_at == utc(2026, 11, 2, 17)
    assert local_schedule("2026-03-07 09:00", LA).send_at == utc(2026, 3, 7, 17)
    assert local_schedule("2026-03-09 09:00", LA).send_at == utc(2026, 3, 9, 16)
    when = local_schedule("2026-12-01 09:00", LA)
    assert (when.zone, when.local) == (LA, "2026-12-01T09:00")
    assert show_local(when.send_at, LA) == "2026-12-01 09:00 PST"


def test_skipped_hour_is_refused_with_the_fix_and_repeated_hour_means_the_first() -> None:
    with pytest.raises(InvalidInput, match=r"does not exist.*choose 03:30"):
        local_schedule("2026-03-08 02:30", LA)
    assert local_schedule("2026-11-01 01:30", LA).send_at == utc(2026, 11, 1, 8, 30)
    with pytest.raises(InvalidInput, match="local time like"):
        local_schedule("next tuesday", LA)


def _scheduled(engine: Engine, at: str, *, now: dt.datetime) -> int:
    with writing(engine) as conn:
        issue_id = issues.create_issue(conn, "advocate", subject="Weekly", blocks=["Hello."],
                                       now=now)
        issues.schedule_issue(conn, issue_id, at, zone=LA, now=now)
    return issue_id


def _state(engine: Engine, issue_id: int) -> str:
    with reading(engine) as conn:
        return issues.get_issue(conn, issue_id).state


def test_issue_for_nine_local_the_day_after_dst_ends_goes_at_nine_local(
        engine: Engine, settings: Settings) -> None:
    # Scheduled on Saturday (PDT, UTC-7) for Monday 09:00 (PST, UTC-8): 17:00 UTC.
    issue_id = _scheduled(engine, "2026-11-02 09:00", now=utc(2026, 10, 31, 18))
    with reading(engine) as conn:
        row = issues.get_issue(conn, issue_id)
    assert (row.send_at, row.send_zone, row.send_local) == (
        utc(2026, 11, 2, 17), LA, "2026-11-02T09:00")
    assert start_due_issues(engine, settings, now=utc(2026, 11, 2, 16)) == []  # 08:00 PST
    assert start_due_issues(engine, settings, now=utc(2026, 11, 2, 16, 59, 59)) == []
    assert start_due_issues(engine, settings, now=utc(2026, 11, 2, 17)) == [issue_id]
    assert _state(engine, issue_id) == "sending"


def test_reschedule_moves_the_send_and_cancel_stops_it(engine: Engine,
                                                       settings: Settings) -> None:
    now = utc(2026, 11, 20, 12)
    first = _scheduled(engine, "2026-12-01 09:00", now=now)
    with writing(engine) as conn:
        issues.schedule_issue(conn, first, "2026-12-02 07:30", zone=LA, now=now)
    assert start_due_issues(engine, settings, now=utc(2026, 12, 1, 17)) == []
    assert start_due_issues(engine, settings, now=utc(2026, 12, 2, 15, 30)) == [first]
    second = _scheduled(engine, "2026-12-03 09:00", now=now)
    with writing(engine) as conn:
        assert issues.cancel_issue(conn, second, now=now) == 0
    assert start_due_issues(engine, settings, now=utc(2026, 12, 4)) == []
    assert _state(engine, second) == "cancelled"
    with writing(engine) as conn, pytest.raises(issues.IssueStateError, match="is cancelled"):
        issues.schedule_issue(conn, second, "2026-12-05 09:00", zone=LA, now=now)


def test_a_time_in_the_past_is_refused(engine: Engine) -> None:
    with writing(engine) as conn:
        issue_id = issues.create_issue(conn, "advocate", subject="Late")
        with pytest.raises(InvalidInput, match="in the past"):
            issues.schedule_issue(conn, issue_id, "2020-01-01 09:00", zone=LA)


def test_two_clocks_racing_on_a_due_issue_send_it_once(engine: Engine,
                                                       settings: Settings) -> None:
    issue_id = _scheduled(engine, "2026-12-01 09:00", now=utc(2026, 11, 30))
    due = utc(2026, 12, 1, 17, 1)
    engines = [make_engine(settings) for _ in range(4)]  # four "processes"
    started: list[list[int]] = []
    barrier = threading.Barrier(len(engines))

    def clock(e: Engine) -> None:
        barrier.wait()
        started.append(tick(e, settings, now=due))

    threads = [threading.Thread(target=clock, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in engines:
        e.dispose()
    assert sorted(started, key=len) == [[], [], [], [issue_id]]
    with reading(engine) as conn:
        outbound = conn.scalars(select(Outbound.id).where(Outbound.kind == "issue")).all()
        rows = conn.execute(select(func.count()).select_from(Delivery)).scalar_one()
        issue = issues.get_issue(conn, issue_id)
    assert len(outbound) == 1 and issue.outbound_id == outbound[0]
    assert rows == 3  # one delivery per subscriber
    assert issue.state == "sending" and issue.started_at == due


def test_an_issue_edited_after_the_render_is_not_claimed_with_stale_content(
        engine: Engine, settings: Settings) -> None:
    issue_id = _scheduled(engine, "2026-12-01 09:00", now=utc(2026, 11, 30))
    with reading(engine) as conn:
        stale = issues.get_issue(conn, issue_id)
    with writing(engine) as conn:
        issues.update_issue(conn, issue_id, subject="Weekly, corrected",
                            now=utc(2026, 11, 30, 1))
    from newsletters import dispatch

    with reading(engine) as conn:
        content = issues.issue_content(conn, stale, date=utc(2026, 12, 1, 17))
    prepared, web = dispatch.build_prepared(content, settings, now=utc(2026, 12, 1, 17))
    with writing(engine) as conn:
        assert not dispatch._claim_and_fan_out(conn, stale, content, prepared, web,
                                               now=utc(2026, 12, 1, 17))
    assert start_due_issues(engine, settings, now=utc(2026, 12, 1, 17)) == [issue_id]
    with reading(engine) as conn:
        body = conn.execute(select(Outbound.body)).scalar_one()
    assert b"Weekly, corrected" in body


def test_a_newsletter_without_subscribers_is_sent_at_once(engine: Engine,
                                                          settings: Settings) -> None:
    with writing(engine) as conn:
        issue_id = issues.create_issue(conn, "western-city", subject="Monthly",
                                       now=utc(2026, 11, 1))
        conn.exec_driver_sql("UPDATE subscriptions SET status='left' WHERE list_id=?",
                             (support.newsletter_id(engine, "western-city"),))
        issues.schedule_now(conn, issue_id, zone=LA, now=utc(2026, 11, 1))
    assert tick(engine, settings, now=utc(2026, 11, 1, 0, 1)) == [issue_id]
    assert _state(engine, issue_id) == "sent"


def test_a_broken_issue_goes_back_to_draft_with_the_reason(engine: Engine,
                                                           settings: Settings,
                                                           monkeypatch) -> None:
    issue_id = _scheduled(engine, "2026-12-01 09:00", now=utc(2026, 11, 30))
    from newsletters import dispatch

    def broken(*args, **kwargs):
        raise RuntimeError("template exploded")

    monkeypatch.setattr(dispatch, "build_prepared", broken)
    assert start_due_issues(engine, settings, now=utc(2026, 12, 2)) == []
    with reading(engine) as conn:
        issue = issues.get_issue(conn, issue_id)
    assert issue.state == "draft" and "template exploded" in (issue.last_error or "")
