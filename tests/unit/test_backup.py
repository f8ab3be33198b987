"""`citymail backup` and `citymail restore` on SQLite; PostgreSQL is pointed at pg_dump."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

from ops_scene import build_scene, run_cli
from sqlalchemy import Engine, delete

from mailer.db import utcnow, writing
from mailer.models import WorkerBeat


def members_in(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT email FROM members ORDER BY email")]


def test_backup_then_restore_into_a_fresh_installation(
        env: dict[str, str], engine: Engine, tmp_path: Path, monkeypatch, capsys) -> None:
    build_scene(engine, utcnow())
    with writing(engine) as conn:  # nobody is running: the scene's heartbeats are stale
        conn.execute(delete(WorkerBeat))
    dest = tmp_path / "backups" / "nightly.db"
    dest.parent.mkdir()
    ran = run_cli(env, monkeypatch, capsys, "backup", str(dest), "--json")
    assert ran.returncode == 0
    assert json.loads(ran.stdout)["dest"] == str(dest)
    assert not list(dest.parent.glob(".*tmp*"))  # written beside DEST, then renamed
    assert members_in(dest) == ["ann@a.example"]

    fresh = tmp_path / "elsewhere" / "citymail.db"
    other = {**env, "CITYMAIL_DATABASE_URL": f"sqlite:///{fresh}"}
    ran = run_cli(other, monkeypatch, capsys, "restore", str(dest))
    assert ran.returncode == 0, ran.stderr
    assert "the schema is current" in ran.stdout
    assert members_in(fresh) == ["ann@a.example"]
    shown = run_cli(other, monkeypatch, capsys, "members", "show", "ann@a.example", "--json")
    assert "city-clerks" in shown.stdout


def test_backup_into_a_folder_names_the_file_by_date(
        env: dict[str, str], tmp_path: Path, monkeypatch, capsys) -> None:
    ran = run_cli(env, monkeypatch, capsys, "backup", str(tmp_path))
    assert ran.returncode == 0
    [made] = tmp_path.glob("citymail-*Z.db")
    assert f"to {made}" in ran.stdout


def test_restore_refuses_while_workers_beat_unless_forced(
        env: dict[str, str], engine: Engine, tmp_path: Path, monkeypatch, capsys) -> None:
    dest = tmp_path / "copy.db"
    assert run_cli(env, monkeypatch, capsys, "backup", str(dest)).returncode == 0
    now = utcnow()
    with writing(engine) as conn:
        conn.execute(WorkerBeat.__table__.insert().values(
            id="mx1-7", host="mx1", pid=7, started_at=now, beat_at=now))
    engine.dispose()
    refused = run_cli(env, monkeypatch, capsys, "restore", str(dest))
    assert refused.returncode == 2
    assert "is in use (worker mx1 pid 7)" in refused.stderr
    assert "--force" in refused.stderr
    forced = run_cli(env, monkeypatch, capsys, "restore", str(dest), "--force")
    assert forced.returncode == 0, forced.stderr


def test_restore_refuses_what_is_not_a_citymail_backup(
        env: dict[str, str], tmp_path: Path, monkeypatch, capsys) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    ran = run_cli(env, monkeypatch, capsys, "restore", str(junk))
    assert ran.returncode == 2 and "not a SQLite database" in ran.stderr
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    ran = run_cli(env, monkeypatch, capsys, "restore", str(other))
    assert ran.returncode == 2 and "not a citymail database" in ran.stderr
    ran = run_cli(env, monkeypatch, capsys, "restore", str(tmp_path / "missing.db"))
    assert ran.returncode == 2 and "no such file" in ran.stderr


def test_postgresql_backups_are_made_with_pg_dump(
        env: dict[str, str], monkeypatch, capsys) -> None:
    pg = {**env, "CITYMAIL_DATABASE_URL": "postgresql://citymail@db.internal:5432/citymail"}
    ran = run_cli(pg, monkeypatch, capsys, "backup", "/backups/citymail.dump")
    assert ran.returncode == 2
    assert ran.stdout.strip() == ("pg_dump --format=custom --file '/backups/citymail.dump' "
                                  "'postgresql://citymail@db.internal:5432/citymail'")
    assert "pg_dump" in ran.stderr
    ran = run_cli(pg, monkeypatch, capsys, "restore", "/backups/citymail.dump")
    assert ran.returncode == 2 and ran.stdout.startswith("pg_restore --clean")


def test_an_old_heartbeat_does_not_block_a_restore(
        env: dict[str, str], engine: Engine, tmp_path: Path, monkeypatch, capsys) -> None:
    dest = tmp_path / "copy.db"
    run_cli(env, monkeypatch, capsys, "backup", str(dest))
    old = utcnow() - dt.timedelta(hours=1)
    with writing(engine) as conn:  # a worker killed an hour ago
        conn.execute(WorkerBeat.__table__.insert().values(
            id="mx1-9", host="mx1", pid=9, started_at=old, beat_at=old))
    engine.dispose()
    assert run_cli(env, monkeypatch, capsys, "restore", str(dest)).returncode == 0
