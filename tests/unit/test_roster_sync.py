"""``--sync`` disables (never deletes) who is missing; ``export`` writes what import reads."""

from __future__ import annotations

from pathlib import Path

from helpers import base_env, cli
from sqlalchemy import Engine

from citymail import admin
from mailer.db import reading
from mailer.league import load_league
from mailer.privacy import member_summary
from mailer.roster import import_roster
from mailer.settings import Settings, load_settings

HEADER = "email,name,title,role,city,county,division,caucuses,lists"


def chico(count: int, path: Path) -> Path:
    path.write_text(f"{HEADER}\n" + "".join(f"p{i}@chico.ca.gov,P{i},,Mayor,Chico,,,,\n"
                                            for i in range(count)))
    return path


def status(engine: Engine, settings: Settings, email: str) -> object:
    with reading(engine) as conn:
        return member_summary(conn, settings, email)["status"]


def test_sync_disables_missing_members_only_after_a_dry_run_showed_them(
        env, engine, settings, tmp_path) -> None:
    everyone = chico(5, tmp_path / "all.csv")
    import_roster(engine, settings, load_league(), everyone.read_bytes(), welcome=False)
    fewer = chico(3, tmp_path / "fewer.csv")

    unconfirmed = cli(env, "members", "import", str(fewer), "--sync", check=False)
    assert unconfirmed.returncode != 0
    assert "--sync would disable 2 members (listed above); nothing was changed" in (
        unconfirmed.stderr)
    assert status(engine, settings, "p4@chico.ca.gov") == "active"

    dry = cli(env, "members", "import", str(fewer), "--sync", "--dry-run")
    assert "would add 0, change 0, disable 2; 3 unchanged" in dry.stdout
    assert "  - p3@chico.ca.gov: disabled (not in the roster; nothing is deleted)" in dry.stdout
    assert "  - p4@chico.ca.gov: disabled" in dry.stdout
    command = dry.stdout.strip().splitlines()[-1].split(": ", 1)[1]
    assert command.startswith(f"citymail members import {fewer} --sync --confirm ")

    done = cli(env, *command.split()[1:])
    assert "added 0, changed 0, disabled 2; 3 unchanged" in done.stdout
    assert status(engine, settings, "p4@chico.ca.gov") == "disabled"  # kept, not deleted
    assert status(engine, settings, "p2@chico.ca.gov") == "active"

    back = import_roster(engine, settings, load_league(), everyone.read_bytes())
    assert [(c.email, c.fields) for c in back.plan.changes] == [
        ("p3@chico.ca.gov", (("status", "disabled", "active"),)),
        ("p4@chico.ca.gov", (("status", "disabled", "active"),))]
    assert status(engine, settings, "p4@chico.ca.gov") == "active"


def test_export_then_import_round_trips(env, engine, settings, tmp_path) -> None:
    source = (f"{HEADER}\n"
              'a@ukiah.ca.gov,"Smith, Ann",Deputy Clerk,City Clerk,Ukiah,Mendocino,'
              "Redwood Empire,Women's Caucus;Rural Caucus,legislative-alerts\n"
              "b@ukiah.ca.gov,=cmd(),,Fire Chief,Ukiah,Mendocino,Redwood Empire,,\n")
    import_roster(engine, settings, load_league(), source.encode(), welcome=False)
    exported = tmp_path / "export.csv"

    cli(env, "members", "export", "--output", str(exported))

    data = exported.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # Excel opens it as UTF-8
    assert data.decode("utf-8-sig").split("\r\n") == [
        HEADER,
        'a@ukiah.ca.gov,"Smith, Ann",Deputy Clerk,City Clerk,Ukiah,Mendocino,Redwood Empire,'
        "Rural Caucus; Women's Caucus,advocate; western-city; city-clerks; legislative-alerts",
        "b@ukiah.ca.gov,'=cmd(),,Fire Chief,Ukiah,Mendocino,Redwood Empire,,"
        "advocate; western-city; fire-chiefs",
        ""]
    same = import_roster(engine, settings, load_league(), data)
    assert (same.plan.adds, same.plan.changes, same.plan.unchanged) == ((), (), 2)

    fresh = base_env(tmp_path / "fresh")
    admin.init(load_settings(fresh))
    moved = cli(fresh, "members", "import", str(exported), "--no-welcome")
    assert "added 2" in moved.stdout
    again = tmp_path / "again.csv"
    cli(fresh, "members", "export", "--output", str(again))
    assert again.read_bytes() == data
