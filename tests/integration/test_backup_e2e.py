"""A backup taken while citymail serve accepts mail restores into a working installation."""

from __future__ import annotations

import json
import smtplib
import sqlite3
import threading
import time
from pathlib import Path

from helpers import Server, base_env, cli

from citymail import admin
from mailer.db import make_engine, writing
from mailer.league import load_league
from mailer.people import add_member
from mailer.settings import load_settings

LIST = "city-clerks@lists.cacities.org"
MEMBER = "clerk@sacramento.example"


class Poster(threading.Thread):
    """Posts to the list over SMTP until stopped, counting the 250s."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.accepted = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as smtp:
            while not self.stopping.is_set():
                n = self.accepted
                msg = (f"From: {MEMBER}\r\nTo: {LIST}\r\nSubject: minutes {n}\r\n"
                       f"Message-ID: <minutes-{n}-{time.monotonic_ns()}@sacramento.example>\r\n"
                       f"\r\nMinutes number {n}.\r\n")
                smtp.sendmail(MEMBER, [LIST], msg.encode())
                self.accepted += 1
                time.sleep(0.01)


def stored(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return conn.execute("SELECT count(*) FROM inbound").fetchone()[0]


def test_backup_while_serving_then_restore_elsewhere(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    settings = load_settings(env)
    admin.init(settings)
    engine = make_engine(settings)
    with writing(engine) as conn:
        add_member(conn, load_league(), email=MEMBER, name="Clerk", city="Sacramento",
                   role="City Clerk")
    engine.dispose()
    dest = tmp_path / "backups" / "citymail.db"
    dest.parent.mkdir()
    server = Server(env).start()
    poster = Poster(server.port)
    try:
        poster.start()
        while poster.accepted < 20:
            time.sleep(0.05)
        before = poster.accepted
        made = cli(env, "backup", str(dest))
        after = poster.accepted
        while poster.accepted < after + 10:  # it kept accepting mail meanwhile
            time.sleep(0.05)
        busy = cli(env, "restore", str(dest), check=False)
    finally:
        poster.stopping.set()
        poster.join(30)
        server.stop()
    assert "backed up" in made.stdout
    assert busy.returncode == 2 and "in use" in busy.stderr  # serve was running
    # A consistent snapshot: every message answered 250 before the backup began is in it.
    assert before <= stored(dest) <= after + 1

    fresh = tmp_path / "restored" / "citymail.db"
    other = {**env, "CITYMAIL_DATABASE_URL": f"sqlite:///{fresh}",
             "CITYMAIL_VAR_DIR": str(tmp_path / "restored" / "var")}
    restored = cli(other, "restore", str(dest))
    assert "the schema is current" in restored.stdout
    assert cli(other, "init").stdout.endswith("0 lists and newsletters added\n")
    shown = json.loads(cli(other, "members", "show", MEMBER, "--json").stdout)
    assert "city-clerks" in {s["name"] for s in shown["subscriptions"]}
    assert stored(fresh) == stored(dest)
