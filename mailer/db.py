"""Database engines: SQLite in WAL mode with BEGIN IMMEDIATE, or PostgreSQL via psycopg 3.

SQLite's deferred BEGIN turns a read-then-write transaction into "database is locked" under
concurrent writers even with a busy timeout; starting every transaction with BEGIN IMMEDIATE
takes the write lock up front, so writers queue on the busy timeout instead of failing.
Transactions are kept short; none is held open across an SMTP exchange.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, DateTime, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.types import TypeDecorator

from mailer.errors import StorageError
from mailer.settings import Settings

LOCK_TIMEOUT = 30.0  # seconds a writer waits for the SQLite write lock before giving up
# The longest a background writer waits for the gateway to go idle before writing anyway:
# the gateway goes first under a burst, and the workers still make progress.
GATE_PATIENCE = 0.25

__all__ = ["UTCDateTime", "WriteGate", "make_engine", "reading", "utcnow", "writing",
           "yield_writes_to"]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in and out; SQLite would otherwise drop tzinfo silently."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def make_engine(settings: Settings, *, synchronous: str | None = None,
                checkpoints: bool = True) -> Engine:
    """One engine per process, created after any fork.

    ``checkpoints=False`` (the gateway) leaves WAL checkpoints to the workers' connections,
    so that copying the WAL back into the database never happens inside a commit that a
    sender is waiting on.
    """
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"isolation_level": None, "timeout": 30, "check_same_thread": False},
            pool_size=20,
            max_overflow=20,
        )
        sync = synchronous or settings.sqlite_synchronous

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sync}")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            if not checkpoints:
                cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Connection) -> None:
            # Readers (see ``reading``) must not queue behind writers for the write lock.
            readonly = conn.get_execution_options().get("citymail_readonly", False)
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=20, max_overflow=20)


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A read transaction that takes no write lock (plain BEGIN on SQLite)."""
    with engine.connect() as conn:
        conn.execution_options(citymail_readonly=True)
        with conn.begin():
            yield conn


class _WriteLock:
    """Serialises SQLite writers across threads and processes with a blocking flock.

    SQLite's busy handler polls with sleeps of up to 100 ms, so two processes contending
    for BEGIN IMMEDIATE stall each other far longer than the transactions last (measured:
    the gateway fell from ~550 to ~60 msg/s with a busy worker process).  A kernel flock
    wakes the next writer the moment the previous one releases, so the SQLite lock is
    always free when BEGIN IMMEDIATE runs.  Waiting polls every 0.2-2 ms, so the hand-over
    is still fast, and gives up after ``LOCK_TIMEOUT`` with ``StorageError``.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> None:
        deadline = time.monotonic() + LOCK_TIMEOUT
        if not self._thread_lock.acquire(timeout=LOCK_TIMEOUT):
            raise StorageError(f"no write lock on the database within {LOCK_TIMEOUT:.0f} s")
        try:
            if self._fd is None or self._pid != os.getpid():
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                self._pid = os.getpid()
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # uncontended: at once
            except BlockingIOError:
                self._wait(deadline)
        except BaseException:
            self._thread_lock.release()
            raise

    def _wait(self, deadline: float) -> None:
        """Block on the flock (the kernel wakes us the moment it is free; polling with
        sleeps measured a third slower), but in a helper thread, so that a stuck process
        holding the lock turns into an error (the gateway's 451) instead of a hang."""
        fd = self._fd
        assert fd is not None
        done = threading.Event()
        gave_up = threading.Event()

        def take() -> None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if gave_up.is_set():  # too late: hand it straight back
                fcntl.flock(fd, fcntl.LOCK_UN)
            done.set()

        threading.Thread(target=take, name="writelock-wait", daemon=True).start()
        if not done.wait(max(0.0, deadline - time.monotonic())):
            gave_up.set()
            if not done.is_set():
                raise StorageError(f"no write lock on the database within {LOCK_TIMEOUT:.0f} s:"
                                   " is another process stuck?")

    def __exit__(self, *exc: object) -> None:
        try:
            assert self._fd is not None
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()


_write_locks: weakref.WeakKeyDictionary[Engine, _WriteLock | None] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def _write_lock(engine: Engine) -> _WriteLock | None:
    with _registry_lock:
        if engine not in _write_locks:
            database = engine.url.database or ""
            sqlite_file = engine.url.get_backend_name() == "sqlite" and database not in (
                "", ":memory:")
            _write_locks[engine] = _WriteLock(database + ".writelock") if sqlite_file else None
        return _write_locks[engine]


class WriteGate(Protocol):
    """Open while the gateway has nothing to store (a ``multiprocessing.Event``)."""

    def wait(self, timeout: float | None = None) -> bool: ...


_gates: weakref.WeakKeyDictionary[Engine, WriteGate] = weakref.WeakKeyDictionary()


def yield_writes_to(engine: Engine, gate: WriteGate) -> None:
    """Make this process's writes through ``engine`` wait (briefly) while ``gate`` is shut.

    SQLite has one write lock.  The embedded workers share it with the gateway, whose
    commits back the 250s that senders are waiting for; without priority the gateway's
    group commit queued behind worker transactions (measured with smtp-source, 20 sessions:
    0.70 of a bare aiosmtpd with no workers, 0.41 with them, 0.60 with this gate).  Waiting
    at most ``GATE_PATIENCE`` keeps the workers moving under a sustained burst.
    """
    _gates[engine] = gate


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A short write transaction: BEGIN IMMEDIATE on SQLite, behind the writers' lock."""
    gate = _gates.get(engine)
    if gate is not None:
        gate.wait(GATE_PATIENCE)
    lock = _write_lock(engine)
    if lock is None:
        with engine.begin() as conn:
            yield conn
        return
    with lock, engine.begin() as conn:
        yield conn
