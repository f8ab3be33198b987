"""The reliability suite at full size (tests/reliability/ runs the small versions).

    .venv/bin/python bench/reliability.py load   [--messages 10000] [--sessions 20] [--runs 3]
    .venv/bin/python bench/reliability.py faults [--kills 20] [--restarts 3] [--only NAME ...]

``load``: Postfix's smtp-source against ``citymail serve`` and, in the same run, against a
bare aiosmtpd that stores nothing (bench/gateway.py); every accepted message is counted in
the database.  ``faults``: posts flow to an 8-member list while the gateway or the worker
is killed -9 at random moments (``--kills`` times each), Redis and RabbitMQ are killed and
restarted, PostgreSQL crashes and restarts, and the relay goes away (``--restarts`` times
each); then lost deliveries (must be 0) and copies sent twice are counted.  Each prints a
JSON object as its last line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from gateway import measure  # noqa: E402
from helpers import Server, Sink, base_env, cli  # noqa: E402
from helpers_reliability import (  # noqa: E402
    FaultRun,
    PrivatePostgres,
    PrivateRabbit,
    PrivateRedis,
    kill_worker,
    restart_gateway,
    seed_members,
)

MEMBERS = 8


def load(args: argparse.Namespace) -> dict[str, Any]:
    return measure(args)  # bench/gateway.py's run, side by side with a bare aiosmtpd


@contextmanager
def folder(kind: str) -> Iterator[Path]:
    """A folder the rabbitmq and postgres users can reach."""
    path = Path(tempfile.mkdtemp(prefix=f"citymail-bench-{kind}-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def installation(**extra: str) -> Iterator[tuple[dict[str, str], Sink, list[str]]]:
    sink = Sink().start()
    with folder("install") as tmp:
        env = base_env(tmp, CITYMAIL_RELAY_URL=sink.url, CITYMAIL_WORKER_LEASE="3",
                       CITYMAIL_CHUNK_SIZE="4", CITYMAIL_RETRY_BASE="1",
                       CITYMAIL_WORKER_THREADS="2", **extra)
        cli(env, "init")
        try:
            yield env, sink, seed_members(env, MEMBERS)
        finally:
            sink.stop()


def restart_broker(broker: PrivateRedis | PrivateRabbit) -> Callable[[Server], Server]:
    def fault(server: Server) -> Server:
        broker.kill()
        time.sleep(1.0)
        broker.start()
        return server
    return fault


def scenario_gateway(n: int) -> dict[str, int]:
    with installation() as (env, sink, members):
        return FaultRun(env, sink, members).run(restart_gateway, times=n).as_dict()


def scenario_worker(n: int) -> dict[str, int]:
    with installation() as (env, sink, members):
        sink.handler.delay = 0.005
        return FaultRun(env, sink, members).run(kill_worker, times=n,
                                                gap=(1.0, 3.0)).as_dict()


def scenario_relay(n: int) -> dict[str, int]:
    with installation() as (env, sink, members):
        def outage(server: Server) -> Server:
            sink.stop()
            time.sleep(2.0)
            sink.controller = Sink(sink.handler, port=sink.port).controller
            sink.start()
            return server
        return FaultRun(env, sink, members).run(outage, times=n).as_dict()


def scenario_broker(kind: str, n: int) -> dict[str, int]:
    with folder("pg") as pg_dir, folder(kind) as broker_dir:
        pg = PrivatePostgres(pg_dir).init()
        broker = (PrivateRedis(broker_dir) if kind == "redis" else PrivateRabbit(broker_dir))
        broker.start()
        try:
            with installation(CITYMAIL_DATABASE_URL=pg.url, CITYMAIL_BROKER_URL=broker.url
                              ) as (env, sink, members):
                return FaultRun(env, sink, members).run(restart_broker(broker), times=n,
                                                        settle=180).as_dict()
        finally:
            broker.kill()
            pg.stop()


def scenario_postgres(n: int) -> dict[str, int]:
    with folder("pg") as pg_dir:
        pg = PrivatePostgres(pg_dir).init()
        try:
            with installation(CITYMAIL_DATABASE_URL=pg.url) as (env, sink, members):
                def crash(server: Server) -> Server:
                    pg.crash()
                    time.sleep(1.0)
                    pg.start()
                    return server
                return FaultRun(env, sink, members).run(crash, times=n, settle=180).as_dict()
        finally:
            pg.stop()


def faults(args: argparse.Namespace) -> dict[str, Any]:
    plan: dict[str, Callable[[], dict[str, int]]] = {
        "gateway_kill_9": lambda: scenario_gateway(args.kills),
        "worker_kill_9": lambda: scenario_worker(args.kills),
        "relay_outage": lambda: scenario_relay(args.restarts),
        "redis_kill_9": lambda: scenario_broker("redis", args.restarts),
        "rabbitmq_kill_9": lambda: scenario_broker("rabbitmq", args.restarts),
        "postgres_crash": lambda: scenario_postgres(args.restarts),
    }
    results: dict[str, Any] = {}
    for name, run in plan.items():
        if args.only and name not in args.only:
            continue
        start = time.monotonic()
        results[name] = {**run(), "seconds": round(time.monotonic() - start, 1)}
        print(f"{name}: {results[name]}", flush=True)
    results["lost_total"] = sum(r["lost"] for r in results.values() if isinstance(r, dict))
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    lp = sub.add_parser("load")
    lp.add_argument("--messages", type=int, default=10_000)
    lp.add_argument("--sessions", type=int, default=20)
    lp.add_argument("--size", type=int, default=4096)
    lp.add_argument("--runs", type=int, default=3)
    fp = sub.add_parser("faults")
    fp.add_argument("--kills", type=int, default=20)
    fp.add_argument("--restarts", type=int, default=3)
    fp.add_argument("--only", nargs="*", default=[])
    args = p.parse_args()
    print(json.dumps(load(args) if args.what == "load" else faults(args)))


if __name__ == "__main__":
    main()
