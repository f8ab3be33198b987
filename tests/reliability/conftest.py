"""Fixtures of the reliability suite: private brokers and PostgreSQL clusters that tests
may kill, each on free ports in the test's own temporary folder.

A missing tool (smtp-source, swaks, redis-server, rabbitmq-server, PostgreSQL binaries)
skips the test, unless CITYMAIL_REQUIRE_SERVICES=1 (set by .ci/run) makes it a failure.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers_reliability import PrivatePostgres, PrivateRabbit, PrivateRedis, need_tool


@pytest.fixture
def run_id() -> str:
    return "cmr" + uuid.uuid4().hex[:10]


@contextmanager
def server_dir(kind: str) -> Iterator[Path]:
    """A folder of its own that the rabbitmq and postgres users can reach (pytest's
    tmp_path is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix=f"citymail-{kind}-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    need_tool("redis-server")
    with server_dir("redis") as folder:
        redis = PrivateRedis(folder).start()
        yield redis
        redis.kill()


@pytest.fixture
def private_rabbit() -> Iterator[PrivateRabbit]:
    need_tool("rabbitmq-server")
    with server_dir("rabbit") as folder:
        rabbit = PrivateRabbit(folder).start()
        yield rabbit
        rabbit.kill()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        need_tool("initdb")
    with server_dir("pg") as folder:
        pg = PrivatePostgres(folder).init()
        yield pg
        pg.stop()
