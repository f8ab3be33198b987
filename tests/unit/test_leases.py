"""Clock leases: a once-at-a-time duty runs in one clock even when several share a database."""

from __future__ import annotations

import datetime as dt
import threading
import time

from dramatiq.brokers.stub import StubBroker
from sqlalchemy import Engine, select

from mailer.db import reading
from mailer.leases import ClockLease, Leases, release, take_turn, try_lease
from mailer.settings import Settings
from workers.runtime import Clock, build_runtime

T0 = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
TTL = dt.timedelta(seconds=30)


def test_a_lease_is_held_by_one_clock_until_it_expires(engine: Engine) -> None:
    assert try_lease(engine, "digests", "a", TTL, now=T0)
    assert not try_lease(engine, "digests", "b", TTL, now=T0 + dt.timedelta(seconds=10))
    assert try_lease(engine, "digests", "a", TTL, now=T0 + dt.timedelta(seconds=20))  # renewed
    assert not try_lease(engine, "digests", "b", TTL, now=T0 + dt.timedelta(seconds=45))
    # a stopped renewing; b takes over once the renewed lease ran out.
    assert try_lease(engine, "digests", "b", TTL, now=T0 + dt.timedelta(seconds=51))
    assert not try_lease(engine, "digests", "a", TTL, now=T0 + dt.timedelta(seconds=52))
    with reading(engine) as conn:
        assert conn.execute(select(ClockLease.holder)).scalars().all() == ["b"]


def test_released_leases_pass_to_another_clock_at_once(engine: Engine) -> None:
    assert try_lease(engine, "issues", "a", TTL, now=T0)
    assert release(engine, "a") == 1
    assert try_lease(engine, "issues", "b", TTL, now=T0 + dt.timedelta(seconds=1))


def test_a_daily_turn_is_taken_once_a_day_over_all_clocks(engine: Engine) -> None:
    day = dt.timedelta(days=1)
    assert take_turn(engine, "prune-daily", "a", day, now=T0)
    assert not take_turn(engine, "prune-daily", "a", day, now=T0 + dt.timedelta(hours=1))
    assert not take_turn(engine, "prune-daily", "b", day, now=T0 + dt.timedelta(hours=23))
    assert take_turn(engine, "prune-daily", "b", day, now=T0 + dt.timedelta(hours=24))


def test_cached_leases_touch_the_database_only_when_needed(engine: Engine) -> None:
    mine, theirs = Leases(engine, "a", ttl=TTL), Leases(engine, "b", ttl=TTL)
    assert mine.held("feeds", now=T0)
    assert not theirs.held("feeds", now=T0 + dt.timedelta(seconds=1))
    # Within half the ttl the holder answers from memory; the other waits for the expiry.
    release(engine, "a")  # behind their backs: neither notices before it asks again
    assert mine.held("feeds", now=T0 + dt.timedelta(seconds=10))
    assert not theirs.held("feeds", now=T0 + dt.timedelta(seconds=5))
    assert theirs.held("feeds", now=T0 + dt.timedelta(seconds=9))  # a quarter ttl later
    assert not mine.held("feeds", now=T0 + dt.timedelta(seconds=16))


def test_two_clocks_on_one_database_run_a_duty_in_one_of_them(
        engine: Engine, settings: Settings) -> None:
    calls: list[str] = []
    lock = threading.Lock()
    clocks = []
    for _ in range(2):
        rt = build_runtime(settings, engine, StubBroker(), threads=1)

        def digests(worker: str = rt.worker_id) -> int:
            with lock:
                calls.append(worker)
            return 0

        rt.send_due_digests = digests  # type: ignore[method-assign]
        clocks.append(Clock(rt, embedded=False, tick=0.05, lease=dt.timedelta(seconds=1)))
    for clock in clocks:
        clock.start()
    time.sleep(1.0)
    first, second = clocks
    holder = calls[0]
    leader, follower = (first, second) if holder == first.rt.worker_id else (second, first)
    leader.stop()
    leader.join(5)
    ran = len(calls)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(calls) == ran:
        time.sleep(0.05)
    follower.stop()
    follower.join(5)
    before, after = calls[:ran], calls[ran:]
    assert len(before) >= 5 and set(before) == {leader.rt.worker_id}
    # The leader released its lease when it stopped: the other clock took over at once.
    assert after and set(after) == {follower.rt.worker_id}
