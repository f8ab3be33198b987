"""``citymail bench``: throw-away installations measured end to end.

``fanout`` builds a database with N members on one list, starts ``citymail serve`` as it
runs in production (gateway process plus worker process), posts through the gateway and
reads the seconds from the gateway's accept to the last recorded delivery from the rows.
"""

from __future__ import annotations

import os
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import func, insert, select, text, update

from citymail import admin
from mailer.db import make_engine, reading, writing
from mailer.models import Delivery, Inbound, MailingList, Member, Outbound, Post, Subscription
from mailer.settings import load_settings

__all__ = ["PeakRss", "fanout", "free_port", "running_serve", "temporary_database",
           "throwaway_env", "wait_listening"]

D = Delivery.__table__

LIST = "city-clerks"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def temporary_database(tmp: Path) -> Iterator[str]:
    """A temporary SQLite file, or a temporary database on CITYMAIL_DATABASE_URL's server."""
    url = os.environ.get("CITYMAIL_DATABASE_URL", "")
    if not url.startswith("postgresql"):
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    import psycopg

    base, _, _ = url.replace("postgresql+psycopg://", "postgresql://").rpartition("/")
    name = f"citymail_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _populate(engine, members: int, mode: str) -> None:
    with writing(engine) as conn:
        list_id = conn.execute(select(MailingList.id).where(MailingList.name == LIST)).scalar()
        conn.execute(update(MailingList).where(MailingList.id == list_id)
                     .values(delivery="bulk" if mode == "bulk" else "personalised"))
        for start in range(0, members, 5000):
            rows = [{"email": f"member{i}@city{i % 480}.example", "name": f"Member {i}",
                     "is_league_member": True, "status": "active"}
                    for i in range(start, min(members, start + 5000))]
            conn.execute(insert(Member), rows)
        conn.execute(insert(Subscription).from_select(
            ["member_id", "list_id", "mode", "status", "source", "created_at", "updated_at"],
            select(Member.id, text(str(list_id)), text("'regular'"), text("'active'"),
                   text("'bench'"), func.current_timestamp(), func.current_timestamp())))


class PeakRss(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self.stopping.wait(0.05):
            try:
                procs = [root, *root.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                continue


def throwaway_env(tmp: Path, *, db_url: str, relay: str, threads: int) -> dict[str, str]:
    """The CITYMAIL_* variables of a throw-away installation in ``tmp`` (own ports, queues);
    the broker and chunk size are taken from this process's environment when set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYMAIL_")}
    env.update({
        "CITYMAIL_DATABASE_URL": db_url, "CITYMAIL_RELAY_URL": relay,
        "CITYMAIL_VAR_DIR": str(tmp / "var"), "CITYMAIL_SMTP_PORT": str(free_port()),
        "CITYMAIL_WEB_PORT": str(free_port()),
        "CITYMAIL_SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "CITYMAIL_WORKER_THREADS": str(threads),
        "CITYMAIL_QUEUE_NAMESPACE": f"bench{uuid.uuid4().hex[:8]}",
    })
    for key in ("CITYMAIL_BROKER_URL", "CITYMAIL_CHUNK_SIZE"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def fanout(*, members: int, mode: str, relay: str, threads: int = 8,
           posts: int = 1) -> dict[str, Any]:
    """Post ``posts`` times (after one warm-up post) to a list of ``members``; median seconds
    from accept to last delivery."""
    with tempfile.TemporaryDirectory(prefix="citymail-bench-") as tmpdir:
        tmp = Path(tmpdir)
        with temporary_database(tmp) as db_url:
            env = throwaway_env(tmp, db_url=db_url, relay=relay, threads=threads)
            settings = load_settings(env)
            admin.init(settings)
            engine = make_engine(settings)
            _populate(engine, members, mode)
            return _measure(env, settings, engine, members=members, mode=mode, posts=posts)


@contextmanager
def running_serve(env: dict[str, str], port: int) -> Iterator[PeakRss]:
    """``citymail serve`` of a throw-away installation, listening; yields its RSS sampler."""
    log = open(Path(env["CITYMAIL_VAR_DIR"]).parent / "serve.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "citymail", "serve"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    rss = PeakRss(proc.pid)
    rss.start()
    try:
        wait_listening(port, proc)
        yield rss
    finally:
        rss.stopping.set()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
        log.close()


def _measure(env: dict[str, str], settings, engine, *, members: int, mode: str,
             posts: int) -> dict[str, Any]:
    durations: list[float] = []
    try:
        with running_serve(env, settings.smtp_port) as rss:
            # The first post after a start also pays for cold caches and new relay connections;
            # it is reported on its own, and the median is taken over the posts after it.
            first = _one_post(engine, settings, members, 0)
            for n in range(1, posts + 1):
                durations.append(_one_post(engine, settings, members, n))
    finally:
        engine.dispose()
    seconds = statistics.median(durations)
    return {"members": members, "mode": mode, "posts": posts, "seconds": round(seconds, 4),
            "first_post_seconds": round(first, 4),
            "deliveries_per_s": round(members / seconds, 1) if seconds else None,
            "peak_rss_mb": round(rss.peak / 2**20, 1),
            "all_seconds": [round(d, 4) for d in durations]}


def wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("citymail serve exited during start-up")
        try:
            smtplib.SMTP("127.0.0.1", port, timeout=1).quit()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("citymail serve did not start")


def _one_post(engine, settings, members: int, n: int) -> float:
    address = f"{LIST}@{settings.list_domain}"
    sender = "member0@city0.example"
    msg = (f"From: Member 0 <{sender}>\r\nTo: {address}\r\nSubject: bench {n}\r\n"
           f"Message-ID: <bench-{uuid.uuid4().hex}@example>\r\n\r\n" + "Text line\r\n" * 60)
    with smtplib.SMTP("127.0.0.1", settings.smtp_port, timeout=60) as smtp:
        smtp.sendmail(sender, [address], msg.encode())
    with reading(engine) as conn:
        inbound_id, received = conn.execute(select(Inbound.id, Inbound.received_at)
                                            .order_by(Inbound.id.desc()).limit(1)).one()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        time.sleep(0.02 if members <= 1000 else 0.2)
        with reading(engine) as conn:
            count, last = conn.execute(
                select(func.count(), func.max(D.c.sent_at, type_=D.c.sent_at.type))
                .join(Outbound, Outbound.id == D.c.outbound_id)
                .join(Post, Post.id == Outbound.post_id)
                .where(Post.inbound_id == inbound_id, D.c.state == "sent")).one()
        if count >= members:
            return (last - received).total_seconds()
    raise RuntimeError(f"post {n}: not every delivery was sent within 10 minutes")
