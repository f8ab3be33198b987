"""Delivery against a relay that misbehaves: throttled, refusing, deferring, down."""

from __future__ import annotations

import collections
import json
import smtplib
import time
from pathlib import Path

import pytest
from helpers import Server, Sink, SinkHandler, base_env, cli

from citymail import admin
from mailer.db import make_engine, writing
from mailer.league import load_league
from mailer.people import add_member
from mailer.settings import load_settings

LIST = "city-clerks@lists.cacities.org"


class MoodyRelay(SinkHandler):
    """Refuses bad-* for good, says 4.7.0 to slow-* until told otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.tempfail = True

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("bad-"):
            return "550 5.1.1 no such user"
        if address.startswith("slow-") and self.tempfail:
            return "450 4.7.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def make_env(tmp_path: Path, relay_url: str, addresses: list[str],
             **extra: str) -> dict[str, str]:
    env = base_env(tmp_path, CITYMAIL_RELAY_URL=relay_url, CITYMAIL_RETRY_BASE="1", **extra)
    settings = load_settings(env)
    admin.init(settings)
    engine = make_engine(settings)
    with writing(engine) as conn:
        for address in addresses:
            add_member(conn, load_league(), email=address, name="M", city="Davis",
                       role="City Clerk")
    engine.dispose()
    return env


def post(port: int, sender: str) -> None:
    msg = (f"From: {sender}\r\nTo: {LIST}\r\nSubject: s\r\n"
           f"Message-ID: <{time.monotonic_ns()}@example.org>\r\n\r\nbody\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail(sender, [LIST], msg.encode())


def recipients(sink: Sink) -> collections.Counter[str]:
    return collections.Counter(r for m in sink.messages for r in m.rcpt_tos)


@pytest.fixture
def moody() -> Sink:
    sink = Sink(MoodyRelay()).start()
    yield sink
    sink.stop()


def test_refused_fail_deferred_retry_and_nobody_is_sent_twice(tmp_path: Path,
                                                              moody: Sink) -> None:
    people = ["ok1@example.org", "ok2@example.org", "bad-1@example.org", "slow-1@example.net"]
    env = make_env(tmp_path, moody.url, people)
    server = Server(env).start()
    try:
        post(server.port, "ok1@example.org")
        moody.wait_for(2)
        time.sleep(1.5)
        status = json.loads(cli(env, "deliveries", "status", "--json").stdout)
        assert status and status[0]["failed"] == 1 and status[0]["deferred"] == 1
        moody.handler.tempfail = False  # the receiving side recovers
        deadline = time.monotonic() + 30
        while "slow-1@example.net" not in recipients(moody) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        server.stop()
    assert recipients(moody) == {"ok1@example.org": 1, "ok2@example.org": 1,
                                 "slow-1@example.net": 1}


def test_a_global_rate_is_kept_across_the_whole_send(tmp_path: Path, sink: Sink) -> None:
    people = [f"m{i}@example.org" for i in range(40)]
    env = make_env(tmp_path, sink.url, people, CITYMAIL_RATE="20")
    server = Server(env).start()
    try:
        start = time.monotonic()
        post(server.port, "m0@example.org")
        sink.wait_for(40, timeout=30)
        took = time.monotonic() - start
    finally:
        server.stop()
    assert recipients(sink) == {p: 1 for p in people}
    assert took >= 0.9  # 40 at 20/s with one second's burst cannot be instant


def test_a_dead_relay_defers_and_a_recovered_one_gets_everything_once(tmp_path: Path) -> None:
    from helpers import free_port

    port = free_port()
    people = [f"m{i}@example.org" for i in range(5)]
    relay_url = f"smtp://127.0.0.1:{port}"
    env = make_env(tmp_path, relay_url, people)
    server = Server(env).start()
    late = None
    try:
        post(server.port, "m0@example.org")
        time.sleep(2)
        status = json.loads(cli(env, "deliveries", "status", "--json").stdout)
        assert status[0]["deferred"] == 5 and status[0]["failed"] == 0
        late = Sink(port=port).start()
        late.wait_for(5, timeout=30)
    finally:
        server.stop()
        if late is not None:
            late.stop()
    assert late is not None and recipients(late) == {p: 1 for p in people}
