"""The SMTP gateway: answers RCPT from an in-memory table and says 250 only once stored.

Received bytes go to ``InboundStore``, which commits them in groups: every message that
arrives while one commit is being written shares the next commit (and its fsync).  The
gateway does nothing else with a message; parsing and policy happen in the workers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import Connection, Engine, insert

from mailer.addresses import AddressTable, Rejection
from mailer.db import utcnow, writing
from mailer.models import Inbound

__all__ = ["GatewayHandler", "GatewaySMTP", "InboundStore", "Received", "start_gateway"]

log = logging.getLogger(__name__)

MAX_RCPTS = 100
# Real mail (Outlook HTML) carries lines far past RFC 5321's 1,000 octets; accept up to
# this, which also bounds what one unterminated line can make the server buffer.
MAX_LINE = 1024 * 1024
IDLE_GRACE = 0.005  # seconds without messages before the workers may write again


@dataclass(frozen=True)
class Received:
    """A message as it came in, ready to be stored."""

    peer: str
    mail_from: str
    targets: tuple[list[str | None], ...]
    raw: bytes


class InboundStore:
    """Stores received messages durably, many per commit, from a single writer thread."""

    def __init__(self, engine: Engine, *, on_stored: Callable[[list[int]], None],
                 enqueued: bool = False, max_batch: int = 500,
                 on_busy: Callable[[bool], None] | None = None) -> None:
        self.engine = engine
        self.on_stored = on_stored
        # Told True when messages wait to be stored and False once all are: the embedded
        # workers hold back their writes meanwhile (mailer.db.yield_writes_to).
        self.on_busy = on_busy
        self._busy = False
        self._idle_timer: asyncio.TimerHandle | None = None
        self.enqueued = enqueued  # True when on_stored enqueues straight to a broker
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Received, asyncio.Future[int]]] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="inbound-writer")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="inbound-writer")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._queue is not None:
            await self._queue.join()
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=True)

    async def store(self, item: Received) -> int:
        assert self._queue is not None, "InboundStore.start() first"
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            self._set_busy(True)
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                ids = await loop.run_in_executor(
                    self._executor, self._write, [item for item, _ in batch])
            except Exception as exc:  # the storage edge: every waiter hears 451
                log.exception("storing %d inbound messages failed", len(batch))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for (_, future), ident in zip(batch, ids, strict=True):
                    if not future.done():
                        future.set_result(ident)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if self._queue.empty() and self.on_busy is not None:
                # Senders answer a 250 with their next message within a millisecond or
                # two: stay busy that long, or a burst lets workers in between batches.
                self._idle_timer = loop.call_later(IDLE_GRACE, self._idle_if_empty)

    def _idle_if_empty(self) -> None:
        assert self._queue is not None
        if self._queue.empty():
            self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if busy != self._busy and self.on_busy is not None:
            self._busy = busy
            try:
                self.on_busy(busy)
            except Exception:  # only a priority hint: storing goes on regardless
                log.exception("could not signal the gateway's state to the workers")

    def _write(self, items: Sequence[Received]) -> list[int]:
        now = utcnow()
        rows: list[dict[str, Any]] = [
            {
                "received_at": now, "peer": item.peer, "mail_from": item.mail_from,
                "rcpt_to": list(item.targets), "size": len(item.raw), "raw": item.raw,
                "state": "received", "enqueued_at": now if self.enqueued else None,
            }
            for item in items
        ]
        table = Inbound.__table__
        with writing(self.engine) as conn:
            if conn.dialect.name == "sqlite":
                ids = _sqlite_insert(conn, rows)
            elif len(rows) == 1:
                ids = [conn.execute(insert(table).returning(table.c.id), rows[0]).scalar_one()]
            else:
                result = conn.execute(
                    insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
                ids = list(result.scalars())
        try:
            self.on_stored(ids)
        except Exception:  # stored is stored: the sweeper will pick these up
            log.exception("could not hand inbound %s to the workers", ids)
        return ids


_COLUMNS = ("received_at", "peer", "mail_from", "rcpt_to", "size", "raw", "state", "enqueued_at")


def _sqlite_insert(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """One ``executemany`` on the driver's connection, inside the caller's transaction.

    SQLAlchemy's insert costs the writer thread ~150 us of Python per row, and every one
    of them is held against the event loop's GIL; sqlite3's executemany runs in C.
    Holding the write lock, the rows take consecutive rowids ending at last_insert_rowid().
    """
    table = Inbound.__table__
    procs = [table.c[name].type._cached_bind_processor(conn.dialect) for name in _COLUMNS]
    params = [tuple(row[name] if proc is None else proc(row[name])
                    for name, proc in zip(_COLUMNS, procs, strict=True)) for row in rows]
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.executemany(_SQLITE_INSERT, params)
        last = cursor.execute("SELECT last_insert_rowid()").fetchone()[0]
    finally:
        cursor.close()
    return list(range(last - len(rows) + 1, last + 1))


_SQLITE_INSERT = (f"INSERT INTO inbound ({', '.join(_COLUMNS)}) "
                  f"VALUES ({', '.join('?' * len(_COLUMNS))})")


class GatewayHandler:
    """aiosmtpd hooks: refuse early at RCPT, store at DATA."""

    def __init__(self, table: AddressTable, store: InboundStore) -> None:
        self.table = table
        self.store = store

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        result = self.table.resolve(address)
        if isinstance(result, Rejection):
            return result.reply
        targets: list[list[str | None]] = envelope.__dict__.setdefault("targets", [])
        if len(targets) >= MAX_RCPTS:
            return "452 4.5.3 Too many recipients"
        targets.append(result.to_json())
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        item = Received(peer=str(peer), mail_from=envelope.mail_from or "",
                        targets=tuple(envelope.__dict__.get("targets", ())), raw=bytes(raw))
        try:
            ident = await self.store.store(item)
        except Exception:
            return "451 4.3.0 Temporary storage failure, please try again later"
        return f"250 2.0.0 OK queued as {ident}"


class GatewaySMTP(SMTP):
    line_length_limit = MAX_LINE


async def start_gateway(handler: GatewayHandler, *, host: str, port: int,
                        max_size: int, hostname: str | None = None) -> asyncio.Server:
    """Listen for SMTP on (host, port); the caller owns the returned server."""
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        return GatewaySMTP(
            handler, data_size_limit=max_size, enable_SMTPUTF8=True, decode_data=False,
            hostname=hostname, ident="citymail ESMTP", loop=loop,
        )

    return await loop.create_server(factory, host=host, port=port)
