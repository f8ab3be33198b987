"""Load: Postfix's smtp-source, 20 sessions, against ``citymail serve``; every message it
was told 250 for is stored once.  No speed is asserted here (the cores are shared);
``bench/reliability.py load`` runs 10,000 posts next to a bare aiosmtpd and prints rates.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from helpers import Server, Sink, base_env, cli
from helpers_reliability import need_tool, seed_members, smtp_source

POSTS = 1000
SESSIONS = 20


def test_smtp_source_20_sessions_every_accepted_post_is_stored_exactly_once(
        tmp_path: Path, sink: Sink) -> None:
    need_tool("smtp-source")
    env = base_env(tmp_path, CITYMAIL_RELAY_URL=sink.url)
    cli(env, "init")
    [member] = seed_members(env, 1)
    server = Server(env).start()
    try:
        smtp_source(server.port, messages=POSTS, sessions=SESSIONS, size=2048, sender=member)
        assert server.proc is not None and server.proc.poll() is None
    finally:
        server.stop()
    with sqlite3.connect(tmp_path / "citymail.db") as db:
        rows = db.execute("SELECT raw FROM inbound").fetchall()
    # Nothing here may be refused, so every post is stored; smtp-source stamps each with its
    # own Message-Id, so equal counts also mean no post was stored twice.
    assert len(rows) == POSTS
    stamps = [re.search(rb"^Message-Id: <(.+?)>", raw, re.M | re.I) for (raw,) in rows]
    assert all(stamps)
    assert len({s.group(1) for s in stamps if s}) == POSTS
