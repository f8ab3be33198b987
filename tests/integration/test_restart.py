"""Stopping citymail serve between accept and delivery loses nothing and repeats nothing."""

from __future__ import annotations

import collections
import smtplib
import sqlite3
import time
from pathlib import Path

import pytest
from helpers import Server, Sink, base_env, cli

from citymail import admin
from mailer.db import make_engine, writing
from mailer.league import load_league
from mailer.people import add_member
from mailer.settings import load_settings

LIST = "city-clerks@lists.cacities.org"
MEMBERS = 200


@pytest.fixture
def env(tmp_path: Path, sink: Sink) -> dict[str, str]:
    # Small chunks, so that some are still queued (not yet claimed) when serve stops.
    env = base_env(tmp_path, CITYMAIL_RELAY_URL=sink.url, CITYMAIL_WORKER_LEASE="3",
                   CITYMAIL_CHUNK_SIZE="20")
    settings = load_settings(env)
    admin.init(settings)
    engine = make_engine(settings)
    league = load_league()
    with writing(engine) as conn:
        for i in range(MEMBERS):
            add_member(conn, league, email=f"clerk{i:03d}@city{i:03d}.example",
                       name=f"Clerk {i}", city=f"City {i}", role="City Clerk")
    engine.dispose()
    sink.handler.delay = 0.02  # a slow relay, so the send is still going when we stop
    return env


def post(port: int) -> None:
    msg = (f"From: clerk000@city000.example\r\nTo: {LIST}\r\nSubject: restart\r\n"
           f"Message-ID: <restart-{time.monotonic_ns()}@example>\r\n\r\nbody\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail("clerk000@city000.example", [LIST], msg.encode())


def wait_for_recipients(sink: Sink, count: int, timeout: float = 90) -> collections.Counter[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = collections.Counter(r for m in sink.messages for r in m.rcpt_tos)
        if len(seen) >= count:
            return seen
        time.sleep(0.1)
    return collections.Counter(r for m in sink.messages for r in m.rcpt_tos)


def test_graceful_stop_mid_send_then_restart_delivers_every_copy_once(
        env: dict[str, str], sink: Sink) -> None:
    server = Server(env).start()
    post(server.port)
    sink.wait_for(1)
    assert server.stop() == 0  # SIGTERM while the send is under way
    before = len(sink.messages)
    assert before < MEMBERS, "the send finished before the stop: nothing was tested"
    server = Server(env).start()
    try:
        seen = wait_for_recipients(sink, MEMBERS)
        time.sleep(1)  # room for any duplicate to show up
        seen = collections.Counter(r for m in sink.messages for r in m.rcpt_tos)
    finally:
        server.stop()
    assert len(seen) == MEMBERS
    assert max(seen.values()) == 1, [r for r, n in seen.items() if n > 1]


def test_kill_9_mid_send_loses_nothing_and_resends_at_most_the_claimed_chunks(
        env: dict[str, str], sink: Sink, tmp_path: Path) -> None:
    server = Server(env).start()
    post(server.port)
    sink.wait_for(1)
    server.kill()
    with sqlite3.connect(tmp_path / "citymail.db") as db:
        in_flight = db.execute("SELECT count(*) FROM deliveries WHERE state = 'sending'"
                               ).fetchone()[0]
    assert len(sink.messages) < MEMBERS, "the send finished before the kill"
    server = Server(env).start()
    try:
        seen = wait_for_recipients(sink, MEMBERS)
        time.sleep(1)
        seen = collections.Counter(r for m in sink.messages for r in m.rcpt_tos)
    finally:
        server.stop()
    assert len(seen) == MEMBERS  # nobody lost
    duplicates = sum(n - 1 for n in seen.values())
    assert duplicates <= in_flight
    status = cli(env, "lists", "members", "city-clerks", "--json")
    assert status.returncode == 0
