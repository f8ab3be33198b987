"""Sending limits: pure GCRA slots, and plans shared through the database."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mailer import schema
from mailer.db import make_engine, writing
from mailer.settings import Settings
from mailer.throttle import Limit, Throttles, due_times

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


def test_steady_rate_spaces_messages() -> None:
    dues, tat = due_times(None, NOW, Limit.rate("global", 10), 5)
    assert [(d - NOW).total_seconds() for d in dues] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])
    assert (tat - NOW).total_seconds() == pytest.approx(0.5)


def test_window_allows_its_burst_then_the_steady_rate() -> None:
    hourly = Limit.window("window", 10_000, 3600)
    dues, _ = due_times(None, NOW, hourly, 10_001)
    assert dues[9_999] == NOW  # the whole window at once
    assert dues[10_000] > NOW  # the next one waits


@pytest.fixture
def conn(tmp_path: Path):
    engine = make_engine(Settings(database_url=f"sqlite:///{tmp_path / 't.db'}"))
    schema.upgrade(engine)
    with writing(engine) as c:
        yield c
    engine.dispose()


def test_global_rate_sends_a_seconds_worth_and_defers_the_rest(conn) -> None:
    throttles = Throttles(rate=10)
    dues = throttles.plan(conn, [f"m{i}@example.org" for i in range(30)], NOW)
    now_count = sum(1 for d in dues if d == NOW)
    assert 10 <= now_count <= 13
    assert all(d > NOW for d in dues[now_count:])
    # Another worker right after gets no slot now: the limit is shared.
    again = throttles.plan(conn, ["x@example.org"], NOW)
    assert again[0] > NOW


def test_a_slow_domain_waits_without_holding_up_the_others(conn) -> None:
    throttles = Throttles(domains={"outlook.com": 1})
    rcpts = [f"u{i}@outlook.com" for i in range(5)] + [f"g{i}@gmail.com" for i in range(5)]
    dues = throttles.plan(conn, rcpts, NOW)
    assert sum(1 for d in dues[:5] if d == NOW) == 1
    assert all(d == NOW for d in dues[5:])


def test_a_domain_that_answers_4_7_x_is_slowed_on_its_own(conn) -> None:
    throttles = Throttles()
    assert not throttles.active
    Throttles.learn(conn, "hotmail.com", NOW)
    dues = Throttles(rate=1000).plan(conn, [f"h{i}@hotmail.com" for i in range(4)]
                                     + ["a@gmail.com"], NOW)
    assert dues[0] == NOW and all(d > NOW for d in dues[1:4]) and dues[4] == NOW
    later = NOW + dt.timedelta(hours=2)  # the learnt limit expires
    assert all(d == later for d in Throttles(rate=1000).plan(
        conn, [f"h{i}@hotmail.com" for i in range(4)], later))
