"""Faults while posts flow: kill -9 of the gateway and of the workers, broker and
PostgreSQL restarts, a relay outage.  Every post the gateway said 250 to reaches every
member (0 lost); copies sent twice stay within the claims in flight at the faults.

Small versions (a few faults each); ``bench/reliability.py faults`` runs 20 of each.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import Server, Sink, base_env, cli
from helpers_reliability import (
    FaultRun,
    PrivatePostgres,
    PrivateRabbit,
    PrivateRedis,
    Tally,
    kill_worker,
    restart_gateway,
    seed_members,
)
from helpers_servers import server_port

MEMBERS = 8


def installation(tmp_path: Path, sink: Sink, **extra: str) -> tuple[dict[str, str], list[str]]:
    # Small chunks and a short lease: claims in flight stay few, dead claims free quickly.
    env = base_env(tmp_path, CITYMAIL_RELAY_URL=sink.url, CITYMAIL_WORKER_LEASE="3",
                   CITYMAIL_CHUNK_SIZE="4", CITYMAIL_RETRY_BASE="1",
                   CITYMAIL_WORKER_THREADS="2", **extra)
    cli(env, "init")
    return env, seed_members(env, MEMBERS)


def check(result: Tally) -> None:
    print(result.as_dict())
    assert result.accepted > 10, "too few posts got through to test anything"
    assert result.lost == 0, result
    assert result.duplicates <= result.in_flight_bound, result


def test_gateway_killed_at_random_moments_loses_no_post_it_accepted(
        tmp_path: Path, sink: Sink) -> None:
    env, members = installation(tmp_path, sink)
    check(FaultRun(env, sink, members).run(restart_gateway, times=3))


def test_worker_killed_at_random_moments_loses_nothing(tmp_path: Path, sink: Sink) -> None:
    env, members = installation(tmp_path, sink)
    sink.handler.delay = 0.005  # deliveries take a while: kills land mid-chunk
    check(FaultRun(env, sink, members).run(kill_worker, times=3, gap=(1.0, 3.0)))


def test_relay_outage_mid_send_loses_nothing(tmp_path: Path) -> None:
    # The relay comes back on the same port: one below the ephemeral range (server_port).
    sink = Sink(port=server_port()).start()
    env, members = installation(tmp_path, sink)

    def outage(server: Server) -> Server:
        sink.stop()
        time.sleep(2.0)
        sink.controller = Sink(sink.handler, port=sink.port).controller
        sink.start()
        return server

    try:
        check(FaultRun(env, sink, members).run(outage, times=2))
    finally:
        sink.stop()


def restart(broker: PrivateRedis | PrivateRabbit) -> Callable[[Server], Server]:
    def fault(server: Server) -> Server:
        broker.kill()  # kill -9: Redis without persistence loses every queued id
        time.sleep(1.0)
        broker.start()
        return server
    return fault


@pytest.mark.parametrize("kind", ["redis", "rabbitmq"])
def test_broker_killed_and_restarted_mid_send_loses_nothing(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path, sink: Sink,
        private_postgres: PrivatePostgres, run_id: str) -> None:
    broker = request.getfixturevalue("private_redis" if kind == "redis" else "private_rabbit")
    env, members = installation(tmp_path, sink, CITYMAIL_DATABASE_URL=private_postgres.url,
                                CITYMAIL_BROKER_URL=broker.url,
                                CITYMAIL_QUEUE_NAMESPACE=run_id)
    check(FaultRun(env, sink, members).run(restart(broker), times=1, settle=120))


def test_postgres_crash_and_restart_mid_send_loses_nothing(
        tmp_path: Path, sink: Sink, private_postgres: PrivatePostgres) -> None:
    env, members = installation(tmp_path, sink, CITYMAIL_DATABASE_URL=private_postgres.url)

    def crash(server: Server) -> Server:
        private_postgres.crash()
        time.sleep(1.0)
        private_postgres.start()
        return server

    check(FaultRun(env, sink, members).run(crash, times=3, settle=120))
