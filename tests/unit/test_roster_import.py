"""A 5,000-row roster: what the dry run shows is exactly what the import does, or nothing.

The database is compared before and after each real import, so the dry run's plan is
checked against what actually changed, not against the importer's own account.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import cli

from mailer.db import make_engine
from mailer.league import load_league
from mailer.roster import import_roster
from mailer.settings import Settings

ROLES = ["City Clerk", "Mayor", "Council Member", "Fire Chief", "Police Chief", "City Manager",
         "Finance Director", "Planning Director", "Volunteer Coordinator"]
HEADER = ["email", "name", "title", "role", "city", "county", "division", "caucuses", "lists"]
BAD_ROWS = {  # row number in the file -> (cells, column the report must name)
    101: (["not-an-address", "X", "", "", "", "", "", "", ""], "email"),
    1202: (["", "No Address", "", "", "", "", "", "", ""], "email"),
    2503: (["bad@example.org", "B", "", "", "", "", "", "", "gossip"], "lists"),
    3804: (["long@example.org", "L" * 300, "", "", "", "", "", "", ""], "name"),
    4905: (["x@@example.org", "Y", "", "", "", "", "", "", ""], "email"),
}


ROWS = 5000
PEOPLE = ROWS - len(BAD_ROWS) - 3


def person(i: int, *, title: str = "") -> list[str]:
    city = i % 480
    return [f"person{i:05d}@city{city:03d}.ca.gov", f"Person {i}", title, ROLES[i % len(ROLES)],
            f"City {city:03d}", f"County {city % 58}", f"Division {city % 16}",
            "Women's Caucus" if i % 7 == 0 else "", "legislative-alerts" if i % 11 == 0 else ""]


def roster(rows: list[list[str]], path: Path) -> Path:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    path.write_bytes(out.getvalue().encode("utf-8-sig"))
    return path


def big_roster(path: Path) -> Path:
    """5,000 data rows: 4,992 people (500 with a new title), 5 bad rows, 3 repeats."""
    rows: list[list[str]] = []
    i = 0
    while len(rows) < ROWS:
        number = len(rows) + 2
        if number in BAD_ROWS:
            rows.append(BAD_ROWS[number][0])
            continue
        if len(rows) in (3000, 3001, 3002):  # repeats of earlier people, merged
            rows.append(person(len(rows) - 2990, title="Repeated"))
            continue
        rows.append(person(i, title="Senior" if i < 500 else ""))
        i += 1
    return roster(rows, path)


def state(db: Path) -> dict[str, object]:
    """What a user could learn from the database: people, subscriptions, caucuses, mail."""
    with sqlite3.connect(db) as conn:
        members = {r[0]: r[1:] for r in conn.execute(
            "SELECT m.email, m.name, m.title, m.role, c.name, m.status FROM members m "
            "LEFT JOIN cities c ON c.id = m.city_id")}
        subs = set(conn.execute(
            "SELECT m.email, l.name, s.status FROM subscriptions s "
            "JOIN members m ON m.id = s.member_id JOIN lists l ON l.id = s.list_id"))
        caucuses = set(conn.execute("SELECT m.email, c.name FROM member_caucuses c "
                                    "JOIN members m ON m.id = c.member_id"))
        welcomes = conn.execute("SELECT count(*) FROM outbound WHERE kind = 'notice'").fetchone()
    conn.close()
    return {"members": members, "subs": subs, "caucuses": caucuses, "welcomes": welcomes[0]}


@pytest.fixture
def db(env: dict[str, str]) -> Path:
    return Path(env["CITYMAIL_DATABASE_URL"].removeprefix("sqlite:///"))


@pytest.fixture
def engine(settings: Settings) -> Iterator[object]:
    engine = make_engine(settings)
    yield engine
    engine.dispose()


def seed(engine, settings: Settings, path: Path, count: int) -> None:
    """People 0..count-1 already members (no welcomes), as a previous import left them."""
    data = roster([person(i) for i in range(count)], path).read_bytes()
    assert import_roster(engine, settings, load_league(), data, welcome=False).applied


def test_dry_run_shows_exactly_what_the_import_then_does(env, settings, engine, db,
                                                         tmp_path: Path) -> None:
    seed(engine, settings, tmp_path / "before.csv", 2000)
    with sqlite3.connect(db) as conn:  # some people left a list; one was disabled earlier
        conn.execute("UPDATE subscriptions SET status = 'left' WHERE member_id IN "
                     "(SELECT id FROM members WHERE email LIKE 'person000%') "
                     "AND list_id = (SELECT id FROM lists WHERE name = 'advocate')")
        conn.execute("UPDATE members SET status = 'disabled' "
                     "WHERE email = 'person01999@city079.ca.gov'")
    conn.close()
    path = big_roster(tmp_path / "roster.csv")
    before = state(db)

    shown = json.loads(cli(env, "members", "import", str(path), "--dry-run", "--skip-bad-rows",
                           "--json").stdout)
    assert state(db) == before  # a dry run changes nothing
    done = json.loads(cli(env, "members", "import", str(path), "--skip-bad-rows",
                          "--json").stdout)
    after = state(db)

    timing = {"dry_run", "applied", "welcomes", "write_lock_seconds", "seconds"}
    assert {k: v for k, v in done.items() if k not in timing} == {
        k: v for k, v in shown.items() if k not in timing}
    assert (shown["applied"], done["applied"]) == (False, True)
    assert [(e["row"], e["column"]) for e in shown["errors"]] == [
        (row, column) for row, (_, column) in sorted(BAD_ROWS.items())]
    assert len(shown["duplicates"]) == 3

    # Members: exactly the planned adds are new; exactly the planned fields changed.
    added = {a["email"] for a in shown["add"]}
    assert set(after["members"]) - set(before["members"]) == added
    assert len(added) == PEOPLE - 2000
    changed = {email: (name, title, role, city, status)
               for email, (name, title, role, city, status) in after["members"].items()
               if email in before["members"] and before["members"][email] != (
                   name, title, role, city, status)}
    assert {c["email"] for c in shown["change"] if {"title", "status", "name"} & set(
        c["fields"])} == set(changed)
    assert changed["person01999@city079.ca.gov"][4] == "active"  # back on the roster
    for c in shown["change"]:
        for column, (_old, new) in c["fields"].items():
            index = {"name": 0, "title": 1, "role": 2, "city": 3, "status": 4}[column]
            assert after["members"][c["email"]][index] == new

    # Subscriptions: exactly the planned ones are new, and nobody who left is back.
    planned = {(a["email"], n) for a in shown["add"] for n in a["lists"]}
    planned |= {(c["email"], n) for c in shown["change"] for n in c["lists"]}
    assert {(e, n) for e, n, _ in after["subs"] - before["subs"]} == planned
    assert {(e, n) for e, n, s in after["subs"] if s == "left"} == {
        (e, n) for e, n, s in before["subs"] if s == "left"}
    assert {(k["email"], k["list"]) for k in shown["kept_out"]} == {
        (e, n) for e, n, s in before["subs"] if s == "left"}
    assert after["welcomes"] - before["welcomes"] == done["welcomes"] == len(added)


def test_a_file_with_bad_rows_imports_nothing(env, settings, engine, db,
                                              tmp_path: Path) -> None:
    path = big_roster(tmp_path / "roster.csv")
    before = state(db)

    dry = import_roster(engine, settings, load_league(), path.read_bytes(), dry_run=True)
    real = cli(env, "members", "import", str(path), check=False)

    assert state(db) == before
    assert dry.rejected and not dry.applied
    assert [(e.row, e.column) for e in dry.plan.file.errors] == [
        (row, column) for row, (_, column) in sorted(BAD_ROWS.items())]
    assert real.returncode != 0
    assert "5 bad rows:\n" in real.stdout
    assert "  row 101, email: 'not-an-address' is not a valid email address" in real.stdout
    assert "  row 1202, email: is empty; every row needs an address\n" in real.stdout
    assert "  row 2503, lists: no list or newsletter named 'gossip'" in real.stdout
    assert "  row 3804, name: is longer than 200 characters\n" in real.stdout
    assert "the good rows would add 4,992, change 0, disable 0" in real.stdout
    assert real.stderr.strip().splitlines()[-1] == (
        "citymail: error: roster.csv: 5 bad rows (listed above); nothing was imported: "
        "fix them, or use --skip-bad-rows")
