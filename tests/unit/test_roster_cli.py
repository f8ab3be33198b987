"""``citymail members import`` as an administrator uses it, with the files Excel writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from helpers import cli
from sqlalchemy import Engine

from mailer.db import reading
from mailer.league import load_league
from mailer.privacy import member_summary
from mailer.roster import import_roster
from mailer.settings import Settings

HEADER = "email,name,title,role,city,county,division,caucuses,lists"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def show(engine: Engine, settings: Settings, email: str) -> dict[str, object]:
    """What ``citymail members show EMAIL --json`` prints."""
    with reading(engine) as conn:
        return member_summary(conn, settings, email)


def subscribed(engine: Engine, settings: Settings, email: str) -> set[str]:
    return {str(s["name"]) for s in show(engine, settings, email)["subscriptions"]}  # type: ignore[index,union-attr]


def test_excel_exports_with_bom_crlf_and_cp1252_import(env, engine, settings, tmp_path) -> None:
    bom = write(tmp_path / "utf8.csv", f"\ufeff{HEADER}\r\n"
                "jose@sanjose.ca.gov,José Núñez,,City Clerk,San José,,,,\r\n")
    ansi = write(tmp_path / "ansi.csv", "E-mail;Name;Department;City\r\n"
                 "ana@davis.ca.gov;Ana Muñoz;Mayor;Davis\r\n", "cp1252")

    first = cli(env, "members", "import", str(bom), "--no-welcome")
    second = cli(env, "members", "import", str(ansi), "--no-welcome")

    assert first.stdout.startswith("utf8.csv: 1 row (utf-8-sig, ',' separated)\n")
    assert "added 1, changed 0, disabled 0; 0 unchanged" in first.stdout
    assert "  + jose@sanjose.ca.gov (José Núñez; City Clerk, San José): advocate, " \
           "western-city, city-clerks" in first.stdout
    assert second.stdout.startswith("ansi.csv: 1 row (cp1252, ';' separated)\n")
    assert "  + ana@davis.ca.gov (Ana Muñoz; Mayor, Davis)" in second.stdout
    assert subscribed(engine, settings, "ana@davis.ca.gov") == {
        "advocate", "western-city", "mayors-council-members"}
    assert subscribed(engine, settings, "JOSE@sanjose.ca.gov") == {
        "advocate", "western-city", "city-clerks"}
    upper = "email,city\r\njose@sanjose.ca.gov,SAN JOSÉ\r\n".encode()  # the same city
    assert import_roster(engine, settings, load_league(), upper).plan.unchanged == 1


def test_reimport_after_unsubscribes_readds_nobody(env, engine, settings, tmp_path) -> None:
    path = write(tmp_path / "r.csv", f"{HEADER}\n"
                 "clerk@fresno.ca.gov,Kim,,City Clerk,Fresno,,,,\n"
                 "mayor@fresno.ca.gov,Lee,,Mayor,Fresno,,,,legislative-alerts\n")
    assert import_roster(engine, settings, load_league(), path.read_bytes()).applied
    # Kim unsubscribes from the Advocate; Lee's address bounced off legislative-alerts.
    with sqlite3.connect(env["CITYMAIL_DATABASE_URL"].removeprefix("sqlite:///")) as db:
        db.execute("UPDATE subscriptions SET status = 'left' WHERE list_id = "
                   "(SELECT id FROM lists WHERE name = 'advocate') AND member_id = "
                   "(SELECT id FROM members WHERE email = 'clerk@fresno.ca.gov')")
        db.execute("UPDATE subscriptions SET status = 'removed' WHERE list_id = "
                   "(SELECT id FROM lists WHERE name = 'legislative-alerts')")
    db.close()

    again = cli(env, "members", "import", str(path))

    assert "added 0, changed 0, disabled 0; 2 unchanged" in again.stdout
    assert ("  kept out: clerk@fresno.ca.gov is not re-added to advocate (they left it; only "
            "they can opt in again)") in again.stdout
    assert "  kept out: mayor@fresno.ca.gov is not re-added to legislative-alerts" in again.stdout
    kim = show(engine, settings, "clerk@fresno.ca.gov")
    assert kim["left"] == ["advocate"]
    assert subscribed(engine, settings, "clerk@fresno.ca.gov") == {"western-city", "city-clerks"}
    assert "legislative-alerts" not in subscribed(engine, settings, "mayor@fresno.ca.gov")


def test_sync_refuses_to_skip_bad_rows(env, tmp_path) -> None:
    path = write(tmp_path / "r.csv", f"{HEADER}\nnot-an-address,X,,,,,,,\n")
    proc = cli(env, "members", "import", str(path), "--sync", "--skip-bad-rows", check=False)
    assert proc.returncode != 0
    assert proc.stderr.startswith("citymail: error: --sync needs the whole roster")
