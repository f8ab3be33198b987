"""Delivery rows on a real SQLite database: fan-out, claims, results, progress and ETA."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select, update

from mailer import delivery, schema
from mailer.db import make_engine, reading, utcnow, writing
from mailer.league import load_league, seed_lists
from mailer.models import Delivery, MailingList, Outbound, WorkerBeat
from mailer.people import add_member
from mailer.settings import Settings
from mailer.transport import Result


@pytest.fixture
def engine(tmp_path: Path):
    engine = make_engine(Settings(database_url=f"sqlite:///{tmp_path / 'd.db'}"))
    schema.upgrade(engine)
    with writing(engine) as conn:
        seed_lists(conn, load_league())
        for i in range(10):
            add_member(conn, load_league(), email=f"m{i}@example.org", name="M", city="Davis",
                       role="City Clerk")
    yield engine
    engine.dispose()


def new_outbound(engine: Engine) -> tuple[int, int]:
    with writing(engine) as conn:
        list_id = conn.scalar(select(MailingList.id).where(MailingList.name == "city-clerks"))
        ob = conn.execute(insert(Outbound).values(kind="post", list_id=list_id, body=b"x",
                                                  bounce_local="city-clerks-bounces")
                          .returning(Outbound.id)).scalar_one()
        count = delivery.fan_out(conn, outbound_id=ob, list_id=list_id)
    return ob, count


def test_fan_out_claim_and_results_move_every_row_once(engine: Engine) -> None:
    ob, count = new_outbound(engine)
    assert count == 10
    with reading(engine) as conn:
        (first, last), = delivery.pending_ranges(conn, ob, 200)
    claimed = delivery.claim(engine, outbound_id=ob, first=first, last=last, worker="w1")
    assert len(claimed) == 10
    assert delivery.claim(engine, outbound_id=ob, first=first, last=last, worker="w2") == []
    results = [Result(c.delivery_id, "sent") for c in claimed[:7]]
    results.append(Result(claimed[7].delivery_id, "failed", 550, "no such user"))
    results += [Result(c.delivery_id, "deferred", 451, "later") for c in claimed[8:]]
    counts = delivery.record_results(engine, results, claimed, worker="w1")
    assert counts == {"sent": 7, "failed": 1, "deferred": 2}
    with reading(engine) as conn:
        assert delivery.progress(conn, ob) == {"sent": 7, "failed": 1, "deferred": 2}
        rows = delivery.status(conn)
    assert rows[0]["remaining"] == 2 and rows[0]["total"] == 10
    # Nothing sent in the last minute would be a lie here: 7 were, so there is a rate, and
    # the ETA is no earlier than the scheduled retry (about a minute away).
    assert rows[0]["rate_per_s"] > 0
    assert rows[0]["eta_seconds"] >= 40


def test_another_workers_results_cannot_touch_this_claim(engine: Engine) -> None:
    ob, _ = new_outbound(engine)
    with reading(engine) as conn:
        (first, last), = delivery.pending_ranges(conn, ob, 200)
    claimed = delivery.claim(engine, outbound_id=ob, first=first, last=last, worker="w1")
    delivery.record_results(engine, [Result(c.delivery_id, "sent") for c in claimed], claimed,
                            worker="w2")
    with reading(engine) as conn:
        assert delivery.progress(conn, ob) == {"sending": 10}


def test_dead_workers_claims_are_released_and_due_rows_dispatched(engine: Engine) -> None:
    ob, _ = new_outbound(engine)
    with reading(engine) as conn:
        (first, last), = delivery.pending_ranges(conn, ob, 200)
    delivery.claim(engine, outbound_id=ob, first=first, last=last, worker="gone")
    with writing(engine) as conn:
        released = delivery.release_dead_claims(conn, lease=dt.timedelta(seconds=30))
    assert sum(len(v) for v in released.values()) == 10
    with writing(engine) as conn:
        conn.execute(update(Delivery).values(state="deferred",
                                             due_at=utcnow() - dt.timedelta(seconds=1)))
        due = delivery.due_for_dispatch(conn, late=dt.timedelta(seconds=30))
    assert sorted(due) == [ob] and len(due[ob]) == 10
    with reading(engine) as conn:
        assert delivery.progress(conn, ob) == {"pending": 10}


def test_a_live_workers_claim_older_than_any_chunk_is_released(engine: Engine) -> None:
    # The claim committed but its reply was lost (a database crash): the worker is alive
    # and beating, yet never learnt it holds these rows.
    ob, _ = new_outbound(engine)
    with reading(engine) as conn:
        (first, last), = delivery.pending_ranges(conn, ob, 200)
    delivery.claim(engine, outbound_id=ob, first=first, last=last, worker="alive")
    with writing(engine) as conn:
        conn.execute(insert(WorkerBeat).values(id="alive", host="h", pid=1,
                                               started_at=utcnow(), beat_at=utcnow()))
        assert delivery.release_dead_claims(conn, lease=dt.timedelta(seconds=30)) == {}
        conn.execute(update(Delivery).values(
            claimed_at=utcnow() - delivery.ORPHANED_CLAIM - dt.timedelta(seconds=1)))
        released = delivery.release_dead_claims(conn, lease=dt.timedelta(seconds=30))
    assert sum(len(v) for v in released.values()) == 10
    with reading(engine) as conn:
        assert delivery.progress(conn, ob) == {"pending": 10}
