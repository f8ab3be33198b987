"""The bounce scoring rule, as pure functions: what counts, decay, threshold, warnings."""

from __future__ import annotations

import datetime as dt

import pytest

from mailer.bounce_score import (
    DEFAULT_POLICY,
    BouncePolicy,
    Hit,
    days_to_disable,
    explain,
    kind_of,
    next_halving,
    next_step,
    removal_due,
    score,
    smtp_failure,
)

DAY0 = dt.datetime(2026, 11, 2, 15, 0, tzinfo=dt.UTC)


def day(n: float, hour: int = 0) -> dt.datetime:
    return DAY0 + dt.timedelta(days=n, hours=hour)


def hits(*days: float, kind: str = "permanent") -> list[Hit]:
    return [Hit(day(d), kind) for d in days]


def test_five_permanent_bounces_on_five_days_reach_the_threshold() -> None:
    four = score(hits(0, 1, 2, 3), now=day(3))
    five = score(hits(0, 1, 2, 3, 4), now=day(4))

    assert four == 4.0
    assert not DEFAULT_POLICY.reached(four)
    assert five == 5.0
    assert DEFAULT_POLICY.reached(five)


def test_at_most_one_hit_per_day() -> None:
    same_day = hits(0, 0.01, 0.2, 0.3)  # four bounces between 15:00 and 22:12 UTC

    assert score(same_day, now=day(0.5)) == 1.0
    assert [e.points for e in explain(same_day, now=day(0.5))] == [1.0, 0.0, 0.0, 0.0]
    assert explain(same_day, now=day(0.5))[1].why == "another bounce already counted that day"


def test_days_are_utc_calendar_days() -> None:
    # 23:30 and 00:30 UTC are one hour apart but on two days: two hits.
    late = dt.datetime(2026, 11, 2, 23, 30, tzinfo=dt.UTC)
    two = [Hit(late, "permanent"), Hit(late + dt.timedelta(hours=1), "permanent")]

    assert score(two, now=late + dt.timedelta(hours=2)) == 2.0


def test_a_permanent_bounce_outranks_a_temporary_one_the_same_day() -> None:
    policy = BouncePolicy(temporary_points=0.5)
    mixed = [Hit(day(0), "temporary"), Hit(day(0, 3), "permanent")]

    assert score(mixed, now=day(0, 4), policy=policy) == 1.0
    assert [e.points for e in explain(mixed, now=day(0, 4), policy=policy)] == [0.0, 1.0]


def test_policy_rejections_never_count() -> None:
    spam = hits(*range(30), kind="policy")

    assert score(spam, now=day(30)) == 0.0
    assert {e.why for e in explain(spam, now=day(30))} == {"policy rejection: never counts"}
    # Not even when temporaries are made to count.
    assert score(spam, now=day(30), policy=BouncePolicy(temporary_points=1.0)) == 0.0


def test_temporary_failures_are_recorded_but_count_nothing_by_default() -> None:
    delays = hits(*range(10), kind="temporary")

    assert score(delays, now=day(10)) == 0.0
    assert explain(delays, now=day(10))[0].why == "temporary: counts 0"
    # The rule is a number: at 0.5, ten days of delays reach the threshold.
    assert score(delays, now=day(9), policy=BouncePolicy(temporary_points=0.5)) == 5.0


def test_complaints_do_not_score_they_unsubscribe() -> None:
    assert score(hits(0, 1, 2, 3, 4, kind="complaint"), now=day(4)) == 0.0


def test_score_halves_after_seven_days_without_a_bounce() -> None:
    four = hits(0, 1, 2, 3)

    assert score(four, now=day(9)) == 4.0  # 6 days after the last: not yet
    assert score(four, now=day(10)) == 2.0  # 7 days after the last
    assert score(four, now=day(17)) == 1.0
    assert score([*four, Hit(day(10), "permanent")], now=day(10)) == 3.0
    assert next_halving(four, now=day(5)) == dt.datetime(2026, 11, 12, tzinfo=dt.UTC)
    assert next_halving([], now=day(5)) is None


def test_a_bounce_once_a_week_never_disables() -> None:
    weekly = hits(*range(0, 7 * 52, 7))

    assert score(weekly, now=day(7 * 51)) < 2.0


def test_bounces_every_other_day_disable_on_the_fifth() -> None:
    assert score(hits(0, 2, 4, 6, 8), now=day(8)) == 5.0


def test_old_events_are_forgotten_and_a_reenable_starts_from_zero() -> None:
    old = hits(0, 1, 2, 3, 4)

    assert score(old, now=day(59)) == 5.0 * 0.5 ** 7  # 55 days after the last: 7 halvings
    assert score(old, now=day(65)) == 0.0
    assert explain(old, now=day(61))[0].why == "older than 60 days: forgotten"
    assert explain(old, now=day(61))[1].why == "counted"
    since = day(4, 1)
    assert score([*old, *hits(5)], now=day(5), since=since) == 1.0
    assert explain(old, now=day(5), since=since)[0].why == "before the last re-enable"


def test_days_to_disable() -> None:
    assert days_to_disable(0.0) == 5
    assert days_to_disable(3.0) == 2
    assert days_to_disable(4.5) == 1
    assert days_to_disable(5.0) == 0


@pytest.mark.parametrize(("permanent", "policy", "kind"), [
    (True, False, "permanent"), (False, False, "temporary"), (None, False, "temporary"),
    (True, True, "policy"), (False, True, "policy"),
])
def test_kind_of_a_failure(permanent: bool | None, policy: bool, kind: str) -> None:
    assert kind_of(permanent=permanent, policy=policy) == kind


def test_three_warnings_seven_days_apart_then_removal() -> None:
    disabled = day(0)
    first = next_step(disabled_at=disabled, warnings_sent=0, last_warning_at=None)
    assert (first.action, first.number, first.due_at) == ("warn", 1, disabled)
    second = next_step(disabled_at=disabled, warnings_sent=1, last_warning_at=disabled)
    assert (second.action, second.number, second.due_at) == ("warn", 2, day(7))
    third = next_step(disabled_at=disabled, warnings_sent=2, last_warning_at=day(7))
    assert (third.action, third.number, third.due_at) == ("warn", 3, day(14))
    removal = next_step(disabled_at=disabled, warnings_sent=3, last_warning_at=day(14))
    assert (removal.action, removal.due_at) == ("remove", day(21))
    assert removal_due(disabled_at=disabled, warnings_sent=0, last_warning_at=None) == day(21)
    assert removal_due(disabled_at=disabled, warnings_sent=2, last_warning_at=day(7)) == day(21)


def test_late_steps_keep_a_full_interval_after_the_previous_warning() -> None:
    # The clock was down: warning 2 went out on day 12 instead of day 7.
    third = next_step(disabled_at=day(0), warnings_sent=2, last_warning_at=day(12))
    assert third.due_at == day(19)
    no_warnings = BouncePolicy(warnings=0)
    removal = next_step(disabled_at=day(0), warnings_sent=0, last_warning_at=None,
                        policy=no_warnings)
    assert (removal.action, removal.due_at) == ("remove", day(7))


@pytest.mark.parametrize(("error", "expected"), [
    ("550 5.1.1 <a@b.example>: Recipient address rejected: User unknown",
     ("permanent", "5.1.1")),
    ("554 5.7.1 Service unavailable; client host blocked using zen.spamhaus.org",
     ("policy", "5.7.1")),
    ("550 Message rejected as spam", ("policy", "550")),
    ("553 mailbox name not allowed", ("permanent", "553")),
    ("gave up after retries: 452 4.2.2 Mailbox full", ("temporary", "4.2.2")),
    ("gave up after retries: 421 4.7.0 Try again later, rate limited", ("policy", "4.7.0")),
])
def test_smtp_time_failures_are_classified(error: str, expected: tuple[str, str]) -> None:
    result = smtp_failure(error)

    assert result is not None
    assert result[:2] == expected
    assert result[2] == error


@pytest.mark.parametrize("error", [
    None, "", "0 internal error: boom", "gave up after retries: 0 relay 127.0.0.1:25: refused",
    "250 ok",
])
def test_our_own_trouble_is_not_a_bounce(error: str | None) -> None:
    assert smtp_failure(error) is None
