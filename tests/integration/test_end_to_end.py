"""A member posts over SMTP; every subscriber gets one decorated copy at a real relay.

The same story runs on SQLite with the embedded broker and on PostgreSQL with RabbitMQ
and with Redis.
"""

from __future__ import annotations

import json
import smtplib
import time
from pathlib import Path

import pytest
from helpers import Server, Sink, base_env, cli

from mailer.verp import verp_decode

LIST = "city-clerks@lists.cacities.org"
SUBSCRIBERS = ["alice@example.org", "bob@example.net", "carol@example.com"]
KEY = b"test-secret-key-0123456789abcdef"


def post(port: int, sender: str, subject: str, *, body: str = "Hello clerks.\r\n",
         extra: str = "") -> None:
    msg = (f"From: {sender}\r\nTo: {LIST}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{time.monotonic_ns()}@example.org>\r\n{extra}\r\n{body}")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail(sender, [LIST], msg.encode())


@pytest.fixture(params=["sqlite-embedded", "postgres-rabbitmq", "postgres-redis"])
def env(request: pytest.FixtureRequest, tmp_path: Path, sink: Sink, run_id: str) -> dict[str, str]:
    overrides = {"CITYMAIL_RELAY_URL": sink.url, "CITYMAIL_QUEUE_NAMESPACE": run_id,
                 "CITYMAIL_WORKER_LEASE": "3"}
    if request.param != "sqlite-embedded":
        overrides["CITYMAIL_DATABASE_URL"] = request.getfixturevalue("postgres_url")
        broker = "amqp_url" if request.param.endswith("rabbitmq") else "redis_url"
        overrides["CITYMAIL_BROKER_URL"] = request.getfixturevalue(broker)
    env = base_env(tmp_path, **overrides)
    cli(env, "init")
    for address in SUBSCRIBERS:
        cli(env, "members", "add", address, "--name", address.split("@")[0].title(),
            "--city", "Sacramento", "--role", "City Clerk", "--no-welcome")
    return env


def test_member_post_reaches_every_subscriber_once_decorated(env: dict[str, str],
                                                              sink: Sink) -> None:
    server = Server(env).start()
    try:
        post(server.port, "Alice <alice@example.org>", "Agenda deadlines")
        got = sink.wait_for(len(SUBSCRIBERS))
        time.sleep(0.5)  # anything extra would arrive now
        got = sink.messages
    finally:
        server.stop()
    assert sorted(r for m in got for r in m.rcpt_tos) == sorted(SUBSCRIBERS)
    for copy in got:
        msg = copy.message
        assert msg["Subject"] == "[City Clerks] Agenda deadlines"
        assert msg["List-Id"].endswith("<city-clerks.lists.cacities.org>")
        assert msg["List-Post"] == f"<mailto:{LIST}>"
        assert "city-clerks-request@lists.cacities.org" in msg["List-Help"]
        assert msg["List-Subscribe"] and msg["List-Archive"]
        assert msg["List-Unsubscribe"].startswith("<http://127.0.0.1")
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "Hello clerks." in msg.get_content()
        assert "City Clerks department mailing list" in msg.get_content()
        local, _, domain = copy.mail_from.partition("@")
        assert domain == "lists.cacities.org"
        assert local.startswith("city-clerks-bounces+")
        assert verp_decode([KEY], local.split("+", 1)[1]) is not None
    # Each copy has its own unsubscribe link.
    assert len({c.message["List-Unsubscribe"] for c in got}) == len(SUBSCRIBERS)


def test_non_member_post_is_held_not_delivered(env: dict[str, str], sink: Sink) -> None:
    server = Server(env).start()
    try:
        post(server.port, "Mallory <mallory@evil.example>", "Buy now")
        deadline = time.monotonic() + 20
        held: list[dict[str, object]] = []
        while time.monotonic() < deadline and not held:
            held = json.loads(cli(env, "lists", "held", "city-clerks", "--json").stdout)
            time.sleep(0.2)
    finally:
        server.stop()
    assert len(held) == 1
    assert held[0]["sender"] == "mallory@evil.example"
    assert held[0]["subject"] == "Buy now"
    assert held[0]["reasons"] == ["mallory@evil.example is not a member of the list"]
    assert sink.messages == []


def test_one_click_unsubscribe_from_a_delivered_copy(env: dict[str, str], sink: Sink) -> None:
    import urllib.request

    server = Server(env).start()
    try:
        post(server.port, "Alice <alice@example.org>", "Unsubscribe me")
        copies = sink.wait_for(len(SUBSCRIBERS))
        bob = next(c for c in copies if c.rcpt_tos == ["bob@example.net"])
        url = bob.message["List-Unsubscribe"].split(",")[0].strip().strip("<>")
        # A link scanner's GET changes nothing.
        with urllib.request.urlopen(url, timeout=10) as page:
            assert page.status == 200
        assert "city-clerks" in cli(env, "members", "show", "bob@example.net", "--json").stdout
        # The mail client's RFC 8058 POST unsubscribes at once.
        request = urllib.request.Request(url, data=b"List-Unsubscribe=One-Click", method="POST",
                                         headers={"Content-Type":
                                                  "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(request, timeout=10) as page:
            assert page.status == 200
    finally:
        server.stop()
    shown = json.loads(cli(env, "members", "show", "bob@example.net", "--json").stdout)
    assert shown["left"] == ["city-clerks"]
    assert {s["name"] for s in shown["subscriptions"]} == {"advocate", "western-city"}
