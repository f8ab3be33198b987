"""Digests through the real command, gateway, workers and an SMTP relay: a member in
digest mode gets the day's posts as one digest instead of single posts.

Runs on SQLite with the embedded broker and on PostgreSQL with Redis."""

from __future__ import annotations

import smtplib
import time
from pathlib import Path

import pytest
from helpers import Server, Sink, base_env, cli

from mailer.verp import verp_decode

LIST = "city-clerks@lists.cacities.org"
MODES = {"alice@example.org": "regular", "bob@example.net": "digest",
         "carol@example.com": "digest-plain"}
KEY = b"test-secret-key-0123456789abcdef"


def post(port: int, subject: str) -> None:
    msg = (f"From: Alice <alice@example.org>\r\nTo: {LIST}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{time.monotonic_ns()}@example.org>\r\n\r\nHello clerks.\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail("alice@example.org", [LIST], msg.encode())


@pytest.fixture(params=["sqlite-embedded", "postgres-redis"])
def env(request: pytest.FixtureRequest, tmp_path: Path, sink: Sink, run_id: str) -> dict[str, str]:
    overrides = {"CITYMAIL_RELAY_URL": sink.url, "CITYMAIL_QUEUE_NAMESPACE": run_id}
    if request.param != "sqlite-embedded":
        overrides["CITYMAIL_DATABASE_URL"] = request.getfixturevalue("postgres_url")
        overrides["CITYMAIL_BROKER_URL"] = request.getfixturevalue("redis_url")
    return base_env(tmp_path, **overrides)


def test_digest_members_get_one_digest_over_smtp_and_no_single_posts(
        env: dict[str, str], sink: Sink, tmp_path: Path) -> None:
    cli(env, "init")
    roster = tmp_path / "roster.csv"
    roster.write_text("email,name,city,role\n" + "".join(
        f"{a},{a.split('@')[0].title()},Sacramento,City Clerk\n" for a in MODES))
    cli(env, "members", "import", str(roster), "--no-welcome")
    for address, mode in MODES.items():
        if mode != "regular":
            cli(env, "members", "mode", address, "city-clerks", mode)
    server = Server(env).start()
    try:
        post(server.port, "Agenda deadlines")
        post(server.port, "Records retention")
        sink.wait_for(2)  # alice's two single posts
        out = cli(env, "lists", "digest", "city-clerks", "--send-now").stdout
        assert "sent Vol 1, Issue 1 (2 posts) to 2 members" in out
        sink.wait_for(4)
        time.sleep(0.5)  # anything extra would arrive now
        got = sink.messages
    finally:
        server.stop()
    by_rcpt: dict[str, list] = {}
    for m in got:
        for rcpt in m.rcpt_tos:
            by_rcpt.setdefault(rcpt, []).append(m)
    assert sorted(str(m.message["Subject"]) for m in by_rcpt["alice@example.org"]) == [
        "[City Clerks] Agenda deadlines", "[City Clerks] Records retention"]
    [mime] = by_rcpt["bob@example.net"]
    [plain] = by_rcpt["carol@example.com"]
    for copy in (mime, plain):
        msg = copy.message
        assert msg["Subject"] == "[City Clerks] Digest, Vol 1, Issue 1"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["List-Id"].endswith("<city-clerks.lists.cacities.org>")
        local = copy.mail_from.partition("@")[0]
        assert verp_decode([KEY], local.split("+", 1)[1]) is not None
    digest = list(mime.message.iter_parts())[1]
    assert [str(p.get_content()["Subject"]) for p in digest.iter_parts()] == [
        "[City Clerks] Agenda deadlines", "[City Clerks] Records retention"]
    text = plain.message.get_content()
    assert "   1. Agenda deadlines (Alice)" in text and "Message: 2" in text
