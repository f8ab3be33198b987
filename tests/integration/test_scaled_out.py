"""Scaled out: `citymail serve --no-workers` for gateway and web, `citymail worker
--processes N --threads M` elsewhere, on PostgreSQL with RabbitMQ and with Redis.

Two worker processes mean two clocks on one database: each once-at-a-time duty is held by
one of them (clock_leases), and the operator sees both in `citymail status` and /metrics;
the workers log JSON lines that name the message and the delivery chunk.
"""

from __future__ import annotations

import collections
import json
import signal
import smtplib
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from helpers import ROOT, Server, Sink, base_env, cli

LIST = "city-clerks@lists.cacities.org"
SUBSCRIBERS = ["alice@example.org", "bob@example.net", "carol@example.com"]


@pytest.fixture(params=["postgres-rabbitmq", "postgres-redis"])
def env(request: pytest.FixtureRequest, tmp_path: Path, sink: Sink, run_id: str,
        postgres_url: str) -> dict[str, str]:
    broker = "amqp_url" if request.param.endswith("rabbitmq") else "redis_url"
    env = base_env(tmp_path, CITYMAIL_RELAY_URL=sink.url, CITYMAIL_QUEUE_NAMESPACE=run_id,
                   CITYMAIL_DATABASE_URL=postgres_url, CITYMAIL_WORKER_LEASE="3",
                   CITYMAIL_BROKER_URL=request.getfixturevalue(broker),
                   CITYMAIL_LOG_FORMAT="json")
    cli(env, "init")
    for address in SUBSCRIBERS:
        cli(env, "members", "add", address, "--name", "Clerk", "--city", "Sacramento",
            "--role", "City Clerk", "--no-welcome")
    return env


@pytest.fixture
def workers(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    log = Path(env["CITYMAIL_VAR_DIR"]) / "worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "citymail", "worker", "--processes", "2",
                                 "--threads", "2"], env=env, cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, text=True)
        yield proc
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def leases(database_url: str) -> dict[str, str]:
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT name, holder FROM clock_leases").fetchall())


def test_gateway_alone_and_worker_processes_elsewhere_deliver_each_copy_once(
        env: dict[str, str], sink: Sink, workers: subprocess.Popen[str]) -> None:
    server = Server(env, "--no-workers").start()
    try:
        msg = (f"From: alice@example.org\r\nTo: {LIST}\r\nSubject: Scaled out\r\n"
               f"Message-ID: <scaled-{time.monotonic_ns()}@example.org>\r\n\r\nHello.\r\n")
        with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as smtp:
            smtp.sendmail("alice@example.org", [LIST], msg.encode())
        sink.wait_for(len(SUBSCRIBERS), timeout=60)
        deadline = time.monotonic() + 20  # both clocks have beaten and taken their leases
        shown: dict = {}
        while time.monotonic() < deadline:
            shown = json.loads(cli(env, "status", "--json").stdout)
            if sum(w["processes"] for w in shown["workers"]) == 2 and len(
                    leases(env["CITYMAIL_DATABASE_URL"])) >= 5:
                break
            time.sleep(0.5)
        url = f"http://127.0.0.1:{env['CITYMAIL_WEB_PORT']}/metrics"
        with urllib.request.urlopen(url, timeout=10) as page:
            metrics = page.read().decode()
        held = leases(env["CITYMAIL_DATABASE_URL"])
    finally:
        server.stop()
    seen = collections.Counter(r for m in sink.messages for r in m.rcpt_tos)
    assert seen == dict.fromkeys(SUBSCRIBERS, 1)
    assert all(m.message["Subject"] == "[City Clerks] Scaled out" for m in sink.messages)
    assert sum(w["processes"] for w in shown["workers"]) == 2
    assert shown["deliveries"]["states"]["sent"] == len(SUBSCRIBERS)
    assert "citymail_workers_alive_total 2.0" in metrics
    assert 'citymail_deliveries{state="sent"} 3.0' in metrics
    # Every once-at-a-time duty is held by one clock: one row per duty, a live worker each.
    assert {"issues", "digests", "bounces", "webhooks", "feeds"} <= set(held)
    assert len(set(held.values())) in (1, 2)
    # CITYMAIL_LOG_FORMAT=json: every worker log line is JSON naming the work in hand.
    lines = [x for x in (Path(env["CITYMAIL_VAR_DIR"]) / "worker.log").read_text()
             .splitlines() if x.strip()]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records and len(records) == len(lines)
    accepted = [r for r in records if "accepted on city-clerks" in r["message"]]
    assert len(accepted) == 1 and isinstance(accepted[0]["inbound_id"], int)
    assert any("chunk" in r and "outbound_id" in r for r in records)

