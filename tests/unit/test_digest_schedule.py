"""When digests are due: local wall times that follow daylight saving, thresholds, numbers."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from listservs.digest_schedule import (
    DigestRules,
    Waiting,
    due_reason,
    next_due,
    next_number,
    rules_from_config,
)
from mailer.errors import InvalidInput

LA = ZoneInfo("America/Los_Angeles")


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


@pytest.mark.parametrize(("after", "due"), [
    ("2026-01-14T16:00", "2026-01-15T15:00"),  # winter: 07:00 PST is 15:00 UTC
    ("2026-07-14T16:00", "2026-07-15T14:00"),  # summer: 07:00 PDT is 14:00 UTC
    ("2026-03-07T16:00", "2026-03-08T14:00"),  # the spring-forward morning is already PDT
    ("2026-10-31T16:00", "2026-11-01T15:00"),  # the fall-back morning is already PST
    ("2026-01-15T14:59", "2026-01-15T15:00"),  # a post before 07:00 goes the same morning
    ("2026-01-15T15:00", "2026-01-16T15:00"),  # ... at 07:00 sharp, the next morning
])
def test_a_daily_seven_oclock_digest_follows_the_local_clock(after: str, due: str) -> None:
    assert next_due(DigestRules(), utc(after)) == utc(due)


def test_weekly_digest_goes_on_its_weekday() -> None:
    rules = DigestRules(frequency="weekly", weekday="friday", send_at="16:30")
    due = next_due(rules, utc("2026-11-02T12:00"))  # a Monday
    assert due.astimezone(LA).strftime("%A %H:%M %Z") == "Friday 16:30 PST"
    assert due == utc("2026-11-07T00:30")


def test_times_that_do_not_exist_or_happen_twice_resolve_the_same_way_every_time() -> None:
    skipped = DigestRules(send_at="02:30")  # 2026-03-08 02:30 never shows on LA clocks
    assert next_due(skipped, utc("2026-03-08T08:00")) == utc("2026-03-08T10:30")  # 03:30 PDT
    twice = DigestRules(send_at="01:30")  # 2026-11-01 01:30 happens twice: the first one
    assert next_due(twice, utc("2026-11-01T07:00")) == utc("2026-11-01T08:30")


def test_thresholds_send_early_and_nothing_waiting_sends_nothing() -> None:
    rules = DigestRules(size_kb=30, count=50)
    noon = utc("2026-01-14T20:00")
    assert due_reason(rules, Waiting(49, 1000, noon), noon) is None
    assert due_reason(rules, Waiting(50, 1000, noon), noon) == "count"
    assert due_reason(rules, Waiting(2, 30 * 1024, noon), noon) == "size"
    assert due_reason(rules, Waiting(2, 100, noon), utc("2026-01-15T15:00")) == "schedule"
    assert due_reason(rules, Waiting(0, 0, None), utc("2027-01-01T00:00")) is None
    assert due_reason(DigestRules(enabled=False), Waiting(60, 10**6, noon), noon) is None


def test_volume_counts_local_years_and_issues_count_within_it() -> None:
    assert next_number(0, 0, None, utc("2026-05-01T00:00"), LA) == (1, 1)
    assert next_number(1, 6, utc("2026-05-01T15:00"), utc("2026-05-02T15:00"), LA) == (1, 7)
    # 2027-01-01 05:00 UTC is still New Year's Eve in California: same volume.
    assert next_number(1, 7, utc("2026-12-31T15:00"), utc("2027-01-01T05:00"), LA) == (1, 8)
    assert next_number(1, 8, utc("2027-01-01T05:00"), utc("2027-01-01T15:00"), LA) == (2, 1)


def test_list_settings_are_read_with_defaults_and_bad_ones_say_how_to_fix_them() -> None:
    rules = rules_from_config({"digest": {"frequency": "weekly", "weekday": "Friday"}},
                              zone="America/Los_Angeles")
    assert (rules.frequency, rules.weekday, rules.send_at, rules.size_kb, rules.count) == (
        "weekly", "friday", "07:00", 30, 50)
    for bad, message in [({"send_at": "7am"}, "like '07:00'"),
                         ({"zone": "Mars/Base"}, "IANA"),
                         ({"frequency": "hourly"}, "daily or weekly"),
                         ({"count": -1}, ">= 0"),
                         ({"colour": "red"}, "unknown digest settings colour")]:
        with pytest.raises(InvalidInput, match=message):
            rules_from_config({"digest": bad}, zone="America/Los_Angeles")
