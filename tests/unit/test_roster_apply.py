"""Applying a roster: one short write transaction, redone from scratch if the data moved."""

from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path

import pytest
from helpers import base_env

from citymail import admin
from mailer.db import writing
from mailer.league import load_league
from mailer.models import Member
from mailer.roster import StalePlan, apply_plan, import_roster
from mailer.rostercsv import read_roster
from mailer.rosterplan import make_plan, read_snapshot
from mailer.settings import Settings, load_settings

ROLES = ["City Clerk", "Mayor", "Council Member", "Fire Chief", "Police Chief"]


def roster(count: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["email", "name", "role", "city", "county", "caucuses"])
    writer.writerows([f"person{i:05d}@city{i % 480:03d}.ca.gov", f"Person {i}",
                      ROLES[i % len(ROLES)], f"City {i % 480:03d}", f"County {i % 480 % 58}",
                      "Women's Caucus" if i % 7 == 0 else ""] for i in range(count))
    return out.getvalue().encode()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = load_settings(base_env(tmp_path))
    admin.init(settings)
    return settings


def counts(settings: Settings) -> tuple[int, ...]:
    with sqlite3.connect(settings.database_url.removeprefix("sqlite:///")) as db:
        found = tuple(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in (
            "members", "subscriptions", "member_caucuses", "cities", "outbound"))
    db.close()
    return found


def test_5000_new_members_hold_the_write_lock_briefly(settings, engine) -> None:
    data = roster(5000)

    result = import_roster(engine, settings, load_league(), data)

    assert result.applied and len(result.plan.adds) == 5000 and result.welcomes == 5000
    # The gateway waits up to 30 s for the lock before it answers 451; stay far below.
    assert result.lock_seconds is not None and result.lock_seconds < 3.0
    assert counts(settings)[:2] == (5000, 5000 * 2 + 5000)  # newsletters + a role list
    again = import_roster(engine, settings, load_league(), data)
    assert (len(again.plan.adds), len(again.plan.changes), again.plan.unchanged) == (0, 0, 5000)
    assert again.lock_seconds == 0.0  # nothing to write: no write transaction at all
    assert counts(settings)[4] == 5000  # one welcome each, not two


def test_a_stale_plan_writes_nothing(settings, engine) -> None:
    league = load_league()
    with engine.connect() as conn:
        snap = read_snapshot(conn)
        conn.rollback()
    plan = make_plan(read_roster(roster(20), known_lists=snap.lists.keys()), snap, league,
                     settings)
    with writing(engine) as conn:  # someone else writes after the plan was made
        conn.execute(Member.__table__.insert().values(email="other@example.org", name="O",
                                                      is_league_member=True, status="active"))
    before = counts(settings)

    with pytest.raises(StalePlan):
        apply_plan(engine, plan, snap, welcomes=[])

    assert counts(settings) == before


def test_a_concurrent_change_makes_the_import_plan_again(settings, engine) -> None:
    data = roster(50)
    calls: list[str] = []

    def meanwhile(stage: str, done: int, total: int) -> None:
        if stage == "saving members" and done == 0 and not calls:
            calls.append(stage)  # another admin adds someone between planning and writing
            with writing(engine) as conn:
                conn.execute(Member.__table__.insert().values(
                    email="person00049@city049.ca.gov", name="Added Meanwhile",
                    is_league_member=True, status="active"))

    result = import_roster(engine, settings, load_league(), data, progress=meanwhile)

    assert result.attempts == 2
    assert len(result.plan.adds) == 49
    assert [c.email for c in result.plan.changes] == ["person00049@city049.ca.gov"]
    with sqlite3.connect(settings.database_url.removeprefix("sqlite:///")) as db:
        names = db.execute("SELECT name FROM members WHERE email LIKE 'person00049%'").fetchall()
    db.close()
    assert names == [("Person 49",)]
