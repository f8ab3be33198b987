"""Real parts for tests: an SMTP sink, a citymail server process, the CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


@dataclass
class SinkHandler:
    messages: list[Received] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    delay: float = 0.0  # seconds per message: a slow relay

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.cond:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          bytes(envelope.original_content)))
            self.cond.notify_all()
        return "250 2.0.0 OK"


class Sink:
    """A real aiosmtpd server that keeps everything it is sent (the relay in tests)."""

    def __init__(self, handler: SinkHandler | None = None, port: int | None = None) -> None:
        self.handler = handler or SinkHandler()
        self.port = port or free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     enable_SMTPUTF8=True, decode_data=False)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[Received]:
        with self.handler.cond:
            return list(self.handler.messages)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.handler.cond:
            while len(self.handler.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.handler.cond.wait(left)
            return list(self.handler.messages)

    def start(self) -> Sink:
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller.loop.is_closed():
            return
        self.controller.stop()


def base_env(tmp: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYMAIL_")}
    web_port = free_port()
    env.update({
        "CITYMAIL_BASE_URL": f"http://127.0.0.1:{web_port}",
        "CITYMAIL_DATABASE_URL": f"sqlite:///{tmp / 'citymail.db'}",
        "CITYMAIL_VAR_DIR": str(tmp / "var"),
        "CITYMAIL_RELAY_URL": f"outbox:{tmp / 'outbox'}",
        "CITYMAIL_SMTP_PORT": str(free_port()),
        "CITYMAIL_WEB_PORT": str(web_port),
        "CITYMAIL_SECRET_KEY": "test-secret-key-0123456789abcdef",
        "CITYMAIL_WORKER_THREADS": "4",
        "CITYMAIL_DNS_RESOLVER": "off",  # tests never ask the internet's DNS
        "PYTHONUNBUFFERED": "1",
    })
    env.update(overrides)
    return env


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "citymail", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"citymail {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


class Server:
    """``citymail serve`` as a real process."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.env = env
        self.args = args
        self.proc: subprocess.Popen[str] | None = None
        self.log = Path(env["CITYMAIL_VAR_DIR"]) / f"serve-{time.monotonic_ns()}.log"

    @property
    def port(self) -> int:
        return int(self.env["CITYMAIL_SMTP_PORT"])

    def start(self, timeout: float = 60.0) -> Server:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._out = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        out = self._out
        self.proc = subprocess.Popen([sys.executable, "-m", "citymail", "serve", *self.args],
                                     env=self.env, cwd=ROOT, stdout=out,
                                     stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"citymail serve exited:\n{self.log.read_text()}")
            if "gateway listening" in self.log.read_text():
                return self
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"citymail serve did not start:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.proc.returncode

    def kill(self) -> None:
        """kill -9 of citymail serve and its worker processes at once."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._out.close()

    def output(self) -> str:
        return self.log.read_text()


def grant_list_role(env: dict[str, str], list_name: str, email: str, role: str) -> None:
    """Name ``email`` the list's owner, moderator or poster (a row of ``list_roles``)."""
    from sqlalchemy import insert, select

    from mailer.db import make_engine, writing
    from mailer.models import ListRole, MailingList
    from mailer.settings import load_settings

    engine = make_engine(load_settings(env))
    try:
        with writing(engine) as conn:
            list_id = conn.execute(select(MailingList.id)
                                   .where(MailingList.name == list_name)).scalar_one()
            conn.execute(insert(ListRole).values(list_id=list_id, email=email, role=role))
    finally:
        engine.dispose()
