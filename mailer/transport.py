"""Outgoing mail: the ``Sender`` protocol and its outbox, SMTP and in-memory versions.

A sender takes prepared copies (envelope plus bytes) and answers one ``Result`` per
delivery row.  It never raises for a refusal or a dead relay: 4xx and connection trouble
become "deferred" (retried later, nobody failed), 5xx for a recipient becomes "failed".
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mailer.settings import Relay
from mailer.smtp_client import SmtpClient, SmtpError, dot_stuff

__all__ = ["Copy", "MemorySender", "OutboxSender", "Result", "Sender", "SmtpSender",
           "make_sender"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Copy:
    """One SMTP transaction: one envelope sender, one or more recipients, the bytes.

    ``body`` is shared by every copy of a message; ``head`` holds the recipient's own
    header lines (spliced in front), so the shared part is prepared once.
    """

    mail_from: str
    rcpts: tuple[tuple[int, str], ...]  # (delivery id, address)
    body: bytes
    head: bytes = b""

    @property
    def data(self) -> bytes:
        return self.head + self.body


@dataclass(frozen=True)
class Result:
    delivery_id: int
    outcome: str  # sent | deferred | failed
    code: int = 250
    text: str = ""


class Sender(Protocol):
    def send(self, copies: Sequence[Copy]) -> list[Result]: ...

    def close(self) -> None: ...


class OutboxSender:
    """Writes one .eml per recipient, headed as a local delivery agent would.

    Files are named by delivery id, so a copy written again after a crash replaces itself
    instead of appearing twice.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def send(self, copies: Sequence[Copy]) -> list[Result]:
        results = []
        for copy in copies:
            for delivery_id, rcpt in copy.rcpts:
                head = f"Return-Path: <{copy.mail_from}>\r\nDelivered-To: {rcpt}\r\n".encode()
                final = self.path / f"{delivery_id:010d}.eml"
                tmp = final.with_suffix(".tmp")
                try:
                    with open(tmp, "wb") as fh:
                        fh.write(head)
                        fh.write(copy.data)
                    os.replace(tmp, final)
                except OSError as exc:
                    results.append(Result(delivery_id, "deferred", 0, f"outbox: {exc}"))
                    continue
                results.append(Result(delivery_id, "sent"))
        return results

    def close(self) -> None:
        pass


@dataclass
class MemorySender:
    """Keeps what it is given; for unit tests."""

    sent: list[tuple[str, str, bytes]] = field(default_factory=list)

    def send(self, copies: Sequence[Copy]) -> list[Result]:
        out = []
        for copy in copies:
            for delivery_id, rcpt in copy.rcpts:
                self.sent.append((copy.mail_from, rcpt, copy.data))
                out.append(Result(delivery_id, "sent"))
        return out

    def close(self) -> None:
        pass


def _outcome(code: int) -> str:
    if 200 <= code < 300:
        return "sent"
    return "failed" if 500 <= code < 600 else "deferred"


class SmtpSender:
    """SMTP to the relay over one reused, pipelined connection (one per worker thread)."""

    def __init__(self, relay: Relay, *, timeout: float = 30.0,
                 local_hostname: str | None = None) -> None:
        self.relay = relay
        self.timeout = timeout
        self.local_hostname = local_hostname or socket.getfqdn()
        self._conn: SmtpClient | None = None
        self._stuffed: tuple[bytes, bytes] | None = None  # (body, dot-stuffed body)

    def _connect(self) -> SmtpClient:
        if self._conn is None:
            conn = SmtpClient(self.relay.host, self.relay.port, timeout=self.timeout,
                              local_hostname=self.local_hostname)
            try:
                if self.relay.starttls:
                    conn.starttls(ssl.create_default_context())
                if self.relay.username:
                    conn.login(self.relay.username, self.relay.password or "")
            except SmtpError:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _stuff(self, body: bytes) -> bytes:
        if self._stuffed is None or self._stuffed[0] is not body:
            self._stuffed = (body, dot_stuff(body))
        return self._stuffed[1]

    def send(self, copies: Sequence[Copy]) -> list[Result]:
        results: list[Result] = []
        for index, copy in enumerate(copies):
            try:
                results.extend(self._transaction(copy))
            except SmtpError as exc:
                # A dead or dropped relay fails nobody: this copy and the rest wait.
                self._drop()
                text = str(exc)
                log.warning("relay trouble, deferring %d copies: %s", len(copies) - index, text)
                for rest in copies[index:]:
                    results.extend(Result(d, "deferred", 0, text) for d, _ in rest.rcpts)
                break
        return results

    def _transaction(self, copy: Copy) -> list[Result]:
        conn = self._connect()
        options: list[str] = []
        if conn.has("8BITMIME") and not (copy.body.isascii() and copy.head.isascii()):
            options.append("BODY=8BITMIME")
        if conn.has("SMTPUTF8") and not (copy.mail_from.isascii()
                                         and all(r.isascii() for _, r in copy.rcpts)):
            options.append("SMTPUTF8")
        outcome = conn.send(copy.mail_from, [r for _, r in copy.rcpts], self._stuff(copy.body),
                            head=copy.head, options=options)
        if not outcome.mail.ok:
            return [Result(d, _outcome(outcome.mail.code), outcome.mail.code, outcome.mail.text)
                    for d, _ in copy.rcpts]
        results = []
        for (delivery_id, _), reply in zip(copy.rcpts, outcome.rcpts, strict=True):
            final = reply if not reply.ok or outcome.data is None else outcome.data
            if reply.ok and outcome.data is None:  # accepted, but the data was never sent
                results.append(Result(delivery_id, "deferred", 0, "DATA was not accepted"))
                continue
            results.append(Result(delivery_id, _outcome(final.code), final.code, final.text))
        return results

    def close(self) -> None:
        if self._conn is not None:
            self._conn.quit()
        self._conn = None


_local = threading.local()


def make_sender(relay: Relay) -> Sender:
    """The sender for this thread (SMTP connections are reused per thread)."""
    if relay.kind == "outbox":
        assert relay.path is not None
        return OutboxSender(relay.path)
    senders: dict[Relay, SmtpSender] = _local.__dict__.setdefault("senders", {})
    if relay not in senders:
        senders[relay] = SmtpSender(relay)
    return senders[relay]
