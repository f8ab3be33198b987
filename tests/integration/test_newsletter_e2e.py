"""An editor sends an issue with the real command and a real server: every subscriber
gets exactly one personalised copy at a real SMTP relay.

Runs on SQLite with the embedded broker and on PostgreSQL with Redis.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers import Server, Sink, base_env, cli

from mailer.verp import verp_decode

SUBSCRIBERS = {"alice@example.org": ("Alice Adams", "Sacramento"),
               "bob@example.net": ("Bob Brown", "Eureka"),
               "carol@example.com": ("Carol Chávez", "San José")}
KEY = b"test-secret-key-0123456789abcdef"


@pytest.fixture(params=["sqlite-embedded", "postgres-redis"])
def env(request: pytest.FixtureRequest, tmp_path: Path, sink: Sink, run_id: str) -> dict[str, str]:
    overrides = {"CITYMAIL_RELAY_URL": sink.url, "CITYMAIL_QUEUE_NAMESPACE": run_id,
                 "CITYMAIL_WORKER_LEASE": "3"}
    if request.param != "sqlite-embedded":
        overrides["CITYMAIL_DATABASE_URL"] = request.getfixturevalue("postgres_url")
        overrides["CITYMAIL_BROKER_URL"] = request.getfixturevalue("redis_url")
    env = base_env(tmp_path, **overrides)
    cli(env, "init")
    for address, (name, city) in SUBSCRIBERS.items():
        cli(env, "members", "add", address, "--name", name, "--city", city)
    return env


def _status(env: dict[str, str], issue_id: int) -> dict[str, object]:
    return json.loads(cli(env, "newsletters", "issue", "status", str(issue_id), "--json").stdout)


def test_scheduled_issue_reaches_every_subscriber_once_personalised(
        env: dict[str, str], sink: Sink, tmp_path: Path) -> None:
    block = tmp_path / "intro.md"
    block.write_text("## Budget week\n\nThe **state budget** is out.<script>x()</script>\n")
    out = cli(env, "newsletters", "issue", "create", "advocate", "--subject", "Budget week",
              "--block", str(block)).stdout
    assert "issue #1 of advocate created" in out
    cli(env, "newsletters", "issue", "test", "1", "--to", "editor@example.org")
    cli(env, "newsletters", "issue", "schedule", "1", "--at", "now")
    server = Server(env).start()
    try:
        got = sink.wait_for(len(SUBSCRIBERS) + 1, timeout=40)
        deadline = time.monotonic() + 20
        while _status(env, 1)["state"] != "sent" and time.monotonic() < deadline:
            time.sleep(0.3)
        time.sleep(0.5)  # anything extra would arrive now
        got = sink.messages
    finally:
        server.stop()
    tests = [m for m in got if m.message["Subject"] == "[TEST] Budget week"]
    copies = [m for m in got if m.message["Subject"] == "Budget week"]
    assert [m.rcpt_tos for m in tests] == [["editor@example.org"]]
    assert sorted(r for m in copies for r in m.rcpt_tos) == sorted(SUBSCRIBERS)  # once each
    unsubscribe_links = set()
    for copy in copies:
        [rcpt] = copy.rcpt_tos
        name, city = SUBSCRIBERS[rcpt]
        msg = copy.message
        assert msg["To"].addresses[0].display_name == name
        assert msg["From"].addresses[0].addr_spec == "advocate@lists.cacities.org"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        link = msg["List-Unsubscribe"].split(",")[0].strip().strip("<>")
        unsubscribe_links.add(link)
        plain, html = msg.iter_parts()
        for part in (plain.get_content(), html.get_content()):
            assert f"Hello {name}," in part and city in part and link in part
            assert "state budget" in part and "<script" not in part
        assert max(len(line) for line in copy.data.split(b"\r\n")) <= 998
        local = copy.mail_from.partition("@")[0]
        assert local.startswith("advocate-bounces+")
        assert verp_decode([KEY], local.split("+", 1)[1]) is not None
    assert len(unsubscribe_links) == len(SUBSCRIBERS)
    status = _status(env, 1)
    assert (status["state"], status["sent"], status["total"]) == ("sent", 3, 3)
