"""Real PostgreSQL, Redis and RabbitMQ on 127.0.0.1, each test run with its own names.

On a machine without these servers the tests that need them are skipped, unless
CITYMAIL_REQUIRE_SERVICES=1 (set by .ci/run), which turns a missing server into a failure.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def need(port: int, what: str) -> None:
    if _reachable(port):
        return
    message = f"{what} is not running on 127.0.0.1:{port}"
    if os.environ.get("CITYMAIL_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " (CITYMAIL_REQUIRE_SERVICES=1)")
    pytest.skip(message)


@pytest.fixture
def run_id() -> str:
    return "cmt" + uuid.uuid4().hex[:10]


@pytest.fixture
def postgres_url(run_id: str) -> Iterator[str]:
    need(5432, "PostgreSQL")
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{run_id}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{run_id}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{run_id}" WITH (FORCE)')


@pytest.fixture
def redis_url(run_id: str) -> Iterator[str]:
    need(6379, "Redis")
    yield REDIS_URL
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{run_id}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def amqp_url(run_id: str) -> Iterator[str]:
    need(5672, "RabbitMQ")
    yield AMQP_URL
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = conn.channel()
    for queue in ("inbound", "deliver"):
        for suffix in ("", ".DQ", ".XQ"):
            channel.queue_delete(f"{run_id}-{queue}{suffix}")
    conn.close()
