"""Real parts for the reliability suite and its full-size bench: a posting client that
remembers every 250, faults at random moments, and the tally of lost and duplicated
deliveries.  The brokers and PostgreSQL it restarts are in ``helpers_servers``.
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import re
import signal
import smtplib
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil
from helpers import Server, Sink
from helpers_servers import (
    PrivatePostgres,
    PrivateRabbit,
    PrivateRedis,
    need_tool,
    tool,
)

__all__ = ["FaultRun", "Poster", "PrivatePostgres", "PrivateRabbit", "PrivateRedis", "Tally",
           "kill_worker", "need_tool", "restart_gateway", "seed_members", "smtp_source",
           "snapshot", "tool", "worker_pids"]

LIST = "city-clerks@lists.cacities.org"
SUBJECT_TAG = re.compile(rb"^Subject: \[City Clerks\] (rel-\d+-\d+)", re.MULTILINE)


# -- installation ----------------------------------------------------------------------
def seed_members(env: dict[str, str], count: int, *, prefix: str = "m") -> list[str]:
    """``count`` City Clerks (subscribed to city-clerks), added straight to the database."""
    from mailer.db import make_engine, writing
    from mailer.league import load_league
    from mailer.people import add_member
    from mailer.settings import load_settings

    engine = make_engine(load_settings(env))
    league = load_league()
    emails = [f"{prefix}{i:04d}@city{i % 480:03d}.example" for i in range(count)]
    with writing(engine) as conn:
        for i, email in enumerate(emails):
            add_member(conn, league, email=email, name=f"Clerk {i}", city=f"City {i}",
                       role="City Clerk")
    engine.dispose()
    return emails


def worker_pids(server: Server) -> list[int]:
    """The worker children of ``citymail serve`` (not multiprocessing's resource tracker)."""
    assert server.proc is not None
    out = []
    for child in psutil.Process(server.proc.pid).children():
        try:
            cmd = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "spawn_main" in cmd and "resource_tracker" not in cmd:
            out.append(child.pid)
    return out


def in_flight(env: dict[str, str]) -> int:
    """Deliveries claimed (``sending``) right now: what a crash may send twice."""
    from sqlalchemy import func, select

    from mailer.db import make_engine, reading
    from mailer.models import Delivery
    from mailer.settings import load_settings

    engine = make_engine(load_settings(env))
    try:
        with reading(engine) as conn:
            return int(conn.execute(select(func.count()).select_from(Delivery)
                                    .where(Delivery.state == "sending")).scalar_one())
    finally:
        engine.dispose()


def snapshot(env: dict[str, str]) -> dict[str, dict[str, int]]:
    """Rows by state: what a failing fault test prints to say where things stopped."""
    from sqlalchemy import func, select

    from mailer.db import make_engine, reading
    from mailer.models import Delivery, Held, Inbound
    from mailer.settings import load_settings

    engine = make_engine(load_settings(env))
    try:
        with reading(engine) as conn:
            return {model.__tablename__: dict(conn.execute(  # type: ignore[arg-type]
                select(model.state, func.count()).group_by(model.state)).all())
                for model in (Inbound, Delivery, Held)}
    finally:
        engine.dispose()


def smtp_source(port: int, *, messages: int, sessions: int, size: int = 4096,
                sender: str = "m0000@city000.example", rcpt: str = LIST) -> float:
    """Postfix's smtp-source against the gateway; seconds taken."""
    source = tool("smtp-source")
    assert source, "smtp-source is missing: apt-get install postfix (only its tools are used)"
    start = time.perf_counter()
    subprocess.run([source, "-d", "-s", str(sessions), "-m", str(messages), "-l", str(size),
                    "-f", sender, "-t", rcpt, f"127.0.0.1:{port}"], check=True,
                   capture_output=True, timeout=600)
    return time.perf_counter() - start


# -- posting while things break -----------------------------------------------------------
@dataclass
class Poster:
    """Threads posting unique messages to the list; remembers exactly which got a 250.

    A message without a 250 (refused, 451, connection cut) is never retried: the gateway
    may or may not have stored it, and only the 250'd ones are promised.
    """

    port: int
    sender: str
    threads: int = 3
    pause: float = 0.2  # seconds between one thread's posts: keeps the fan-out modest
    accepted: set[str] = field(default_factory=set)
    unanswered: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Poster:
        self._workers = [threading.Thread(target=self._run, args=(n,), daemon=True)
                         for n in range(self.threads)]
        for t in self._workers:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(60)

    def _run(self, n: int) -> None:
        seq = 0
        smtp: smtplib.SMTP | None = None
        while not self._stop.is_set():
            seq += 1
            tag = f"rel-{n}-{seq}"
            msg = (f"From: {self.sender}\r\nTo: {LIST}\r\nSubject: {tag}\r\n"
                   f"Message-ID: <{tag}-{time.time_ns()}@reliability.example>\r\n\r\n"
                   f"post {tag}\r\n").encode()
            try:
                if smtp is None:
                    smtp = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
                smtp.sendmail(self.sender, [LIST], msg)
            except (OSError, smtplib.SMTPException):
                with self._lock:
                    self.unanswered.add(tag)
                if smtp is not None:
                    with contextlib.suppress(OSError):
                        smtp.close()
                smtp = None
                self._stop.wait(0.1)  # the gateway is restarting: try again shortly
                continue
            with self._lock:
                self.accepted.add(tag)
            self._stop.wait(self.pause)
        if smtp is not None:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()


@dataclass(frozen=True)
class Tally:
    """What the members saw: 250'd posts missing at someone (lost) and extra copies."""

    accepted: int
    members: int
    lost: int
    duplicates: int
    in_flight_bound: int

    def as_dict(self) -> dict[str, int]:
        return {"accepted": self.accepted, "members": self.members, "lost": self.lost,
                "duplicates": self.duplicates, "in_flight_at_faults": self.in_flight_bound}


def copies_by_tag(sink: Sink) -> collections.Counter[tuple[str, str]]:
    seen: collections.Counter[tuple[str, str]] = collections.Counter()
    for m in sink.messages:
        found = SUBJECT_TAG.search(m.data)
        if found:
            for rcpt in m.rcpt_tos:
                seen[(found.group(1).decode(), rcpt)] += 1
    return seen


def tally(sink: Sink, accepted: set[str], members: list[str], bound: int) -> Tally:
    seen = copies_by_tag(sink)
    lost = sum(1 for tag in accepted for rcpt in members if seen[(tag, rcpt)] == 0)
    duplicates = sum(n - 1 for n in seen.values() if n > 1)
    return Tally(len(accepted), len(members), lost, duplicates, bound)


class FaultRun:
    """Posts flow while ``fault`` strikes ``times`` at random moments; then everything the
    gateway said 250 to must reach every member.

    ``fault(server) -> server`` breaks something and returns the server to carry on with
    (a new one after the gateway is killed).  The claims in flight just before each fault
    are summed: the documented bound on copies sent twice.
    """

    def __init__(self, env: dict[str, str], sink: Sink, members: list[str], *,
                 seed: int | None = None) -> None:
        self.env = env
        self.sink = sink
        self.members = members
        self.random = random.Random(seed)

    def run(self, fault: Callable[[Server], Server], *, times: int, gap: tuple[float, float]
            = (0.5, 2.0), settle: float = 90.0, posters: int = 3) -> Tally:
        server = Server(self.env).start()
        poster = Poster(server.port, self.members[0], threads=posters).start()
        bound = 0
        try:
            for _ in range(times):
                time.sleep(self.random.uniform(*gap))
                # Claims in flight at the fault: those seen just before it, or those a
                # killed process left behind (still ``sending`` right after it).
                before = in_flight(self.env)
                server = fault(server)
                bound += max(before, in_flight(self.env))
            time.sleep(self.random.uniform(*gap))
            poster.stop()
            self._converge(poster.accepted, settle)
        finally:
            poster.stop()
            server.stop()
        result = tally(self.sink, poster.accepted, self.members, bound)
        if result.lost:
            print("rows at the end:", snapshot(self.env), "log:", server.output()[-3000:])
        return result

    def _converge(self, accepted: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        want = {(tag, rcpt) for tag in accepted for rcpt in self.members}
        while time.monotonic() < deadline:
            if want <= set(copies_by_tag(self.sink)):
                break
            time.sleep(0.25)
        time.sleep(1.0)  # room for a late duplicate to show up


def restart_gateway(server: Server) -> Server:
    """kill -9 of citymail serve (gateway and workers at once), then a new one."""
    server.kill()
    return Server(server.env).start()


def kill_worker(server: Server) -> Server:
    """kill -9 of the worker child only; serve notices and starts a new one."""
    deadline = time.monotonic() + 20  # serve restarts a dead worker within ~5 s
    while not (pids := worker_pids(server)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pids, "citymail serve has no worker child to kill"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return server

