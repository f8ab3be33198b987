"""Backups of the SQLite database while citymail runs, and restores into a stopped one.

``backup`` uses SQLite's online backup API (``sqlite3.Connection.backup``) in a single
step: the copy is one read transaction, so it is a consistent snapshot, and in WAL mode
the gateway and workers keep writing meanwhile.  It is written beside DEST, synced, and
renamed into place, so DEST is either the old file or the complete new one.

``restore`` replaces the database file.  It refuses while a citymail process uses the
database (a live heartbeat in ``worker_beats``, or a process holding the database or its
``.writelock`` file open), and removes the old ``-wal``/``-shm`` files, which belong to
the replaced database and would corrupt the restored one.

PostgreSQL has its own tools: ``pg_dump_command`` and ``pg_restore_command`` say which.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from mailer.errors import CitymailError

__all__ = ["BackupResult", "InUse", "backup", "pg_dump_command", "pg_restore_command",
           "processes_using", "restore", "sqlite_path"]


class InUse(CitymailError):
    """A citymail process still uses the database."""


@dataclass(frozen=True)
class BackupResult:
    source: str
    dest: str
    bytes: int
    seconds: float


def sqlite_path(database_url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL; None for PostgreSQL."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    if not url.database or url.database == ":memory:":
        raise CitymailError("an in-memory SQLite database cannot be backed up")
    return Path(url.database)


def _plain_url(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)


def pg_dump_command(database_url: str, dest: str) -> str:
    return f"pg_dump --format=custom --file '{dest}' '{_plain_url(database_url)}'"


def pg_restore_command(database_url: str, src: str) -> str:
    return (f"pg_restore --clean --if-exists --no-owner --dbname "
            f"'{_plain_url(database_url)}' '{src}'")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(src: Path, tmp: Path) -> None:
    """One-step online backup of ``src`` into a new file ``tmp``, checked and synced."""
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(tmp)
        try:
            source.backup(target)  # pages=-1: one read transaction, a consistent snapshot
            # A self-contained file: no -wal beside the copy.
            target.execute("PRAGMA journal_mode=DELETE")
            check = target.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise CitymailError(f"the copy failed its integrity check: {check}")
        finally:
            target.close()
    finally:
        source.close()
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())


def _tmp_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def backup(database_url: str, dest: Path, *, now: dt.datetime | None = None) -> BackupResult:
    """Copy the running SQLite database to ``dest`` (a file, or a folder to put one in)."""
    src = sqlite_path(database_url)
    if src is None:
        raise CitymailError("not a SQLite database")
    if not src.is_file():
        raise CitymailError(f"{src}: no such database; run `citymail init` first")
    if dest.is_dir():
        stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
        dest = dest / f"citymail-{stamp}.db"
    if not dest.parent.is_dir():
        raise CitymailError(f"{dest.parent}: no such folder")
    if dest.resolve() == src.resolve():
        raise CitymailError("the backup must not overwrite the database itself")
    started = time.monotonic()
    tmp = _tmp_beside(dest)
    try:
        _copy(src, tmp)
        os.replace(tmp, dest)
    except sqlite3.Error as exc:
        raise CitymailError(f"backup failed: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(dest.parent)
    return BackupResult(str(src), str(dest), dest.stat().st_size,
                        round(time.monotonic() - started, 3))


def processes_using(paths: list[Path]) -> list[int]:
    """Pids of other processes holding any of ``paths`` open (Linux /proc; else [])."""
    wanted = {str(p.resolve()) for p in paths if p.exists()}
    found: list[int] = []
    proc = Path("/proc")
    if not wanted or not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fds = list((entry / "fd").iterdir())
            if any(os.readlink(fd) in wanted for fd in fds):
                found.append(int(entry.name))
        except OSError:  # gone, or not ours to look at
            continue
    return sorted(found)


def _live_beats(db: Path, lease: dt.timedelta) -> list[str]:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return []
    try:
        rows = conn.execute("SELECT host, pid, beat_at FROM worker_beats").fetchall()
    except sqlite3.Error:
        return []  # not a citymail database yet
    finally:
        conn.close()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    live = []
    for host, pid, beat_at in rows:
        try:
            beat = dt.datetime.fromisoformat(str(beat_at))
        except ValueError:
            continue
        if now - beat.replace(tzinfo=None) < lease:
            live.append(f"{host} pid {pid}")
    return live


def check_not_in_use(db: Path, *, lease: dt.timedelta) -> None:
    lock = Path(str(db) + ".writelock")
    side = [db, lock, Path(str(db) + "-wal"), Path(str(db) + "-shm")]
    pids = processes_using(side)
    beats = _live_beats(db, lease) if db.exists() else []
    if pids or beats:
        who = ", ".join([f"pid {p}" for p in pids] + [f"worker {b}" for b in beats])
        raise InUse(f"{db} is in use ({who}): stop citymail serve and workers first, "
                    "or pass --force")


def _validate(src: Path) -> None:
    try:
        conn = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
        try:
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            has_schema = conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table' "
                                      "AND name='alembic_version'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise CitymailError(f"{src}: not a SQLite database ({exc})") from None
    if check != "ok":
        raise CitymailError(f"{src}: damaged ({check}); choose another backup")
    if not has_schema:
        raise CitymailError(f"{src}: not a citymail database (no alembic_version table)")


def restore(database_url: str, src: Path, *, force: bool = False,
            lease: dt.timedelta = dt.timedelta(seconds=30)) -> Path:
    """Replace the SQLite database with the backup ``src``; returns the database path."""
    db = sqlite_path(database_url)
    if db is None:
        raise CitymailError("not a SQLite database")
    if not src.is_file():
        raise CitymailError(f"{src}: no such file")
    _validate(src)
    if db.exists() and db.resolve() == src.resolve():
        raise CitymailError("the backup is the database itself")
    if not force:
        check_not_in_use(db, lease=lease)
    db.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(db)
    lock_fd = os.open(str(db) + ".writelock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # no citymail writer starts meanwhile
        _copy(src, tmp)
        for stale in (Path(str(db) + "-wal"), Path(str(db) + "-shm")):
            stale.unlink(missing_ok=True)  # the old database's: fatal beside the new one
        os.replace(tmp, db)
        _fsync_dir(db.parent)
    except sqlite3.Error as exc:
        raise CitymailError(f"restore failed: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
        os.close(lock_fd)
    return db
