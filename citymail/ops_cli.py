"""``citymail backup DEST``, ``citymail restore SRC`` and ``citymail prune``."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from citymail import backup as backups
from citymail.output import print_json
from mailer.db import make_engine
from mailer.retention import prune
from mailer.schema import is_current
from mailer.settings import Settings

__all__ = ["add_ops_verbs"]


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    if backups.sqlite_path(settings.database_url) is None:
        # PostgreSQL: its own tool makes a consistent dump of a running database.
        print(backups.pg_dump_command(settings.database_url, args.dest))
        print("citymail: error: citymail backup copies SQLite databases; for PostgreSQL run "
              "the pg_dump command above (restore with pg_restore, see README)",
              file=sys.stderr)
        return 2
    result = backups.backup(settings.database_url, Path(args.dest))
    if args.json:
        print_json(result.__dict__)
    else:
        print(f"citymail: backed up {result.source} to {result.dest} "
              f"({result.bytes / 1e6:.1f} MB in {result.seconds:.1f} s)")
    return 0


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    if backups.sqlite_path(settings.database_url) is None:
        print(backups.pg_restore_command(settings.database_url, args.src))
        print("citymail: error: citymail restore writes SQLite databases; for PostgreSQL run "
              "the pg_restore command above", file=sys.stderr)
        return 2
    db = backups.restore(settings.database_url, Path(args.src), force=args.force,
                         lease=dt.timedelta(seconds=settings.worker_lease))
    engine = make_engine(settings)
    try:
        current = is_current(engine)
    finally:
        engine.dispose()
    print(f"citymail: restored {args.src} into {db}; " + (
        "the schema is current" if current else
        "the schema is older than this citymail: run `citymail init` to upgrade it"))
    return 0


def cmd_prune(args: argparse.Namespace, settings: Settings) -> int:
    engine = make_engine(settings)
    try:
        result = prune(engine, keep_deliveries=dt.timedelta(days=settings.keep_deliveries_days),
                       keep_raw=dt.timedelta(days=settings.keep_raw_days), dry_run=args.dry_run)
    finally:
        engine.dispose()
    if args.json:
        print_json(result.as_json() | {"keep_deliveries_days": settings.keep_deliveries_days,
                                       "keep_raw_days": settings.keep_raw_days})
        return 0
    verb = "would prune" if args.dry_run else "pruned"
    print(f"citymail: {verb} {result.deliveries} delivery rows older than "
          f"{settings.keep_deliveries_days} days and the raw bytes of {result.raw_messages} "
          f"messages older than {settings.keep_raw_days} days "
          f"({result.raw_bytes / 1e6:.1f} MB); archived posts are kept")
    return 0


def add_ops_verbs(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``citymail backup``, ``restore`` and ``prune`` to the top-level subparsers."""
    s = sub.add_parser("backup", help="copy the SQLite database while citymail runs "
                       "(PostgreSQL: prints the pg_dump command)")
    s.add_argument("dest", metavar="DEST", help="a file, or a folder for a dated file")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_backup)

    s = sub.add_parser("restore", help="replace the SQLite database with a backup "
                       "(citymail must be stopped)")
    s.add_argument("src", metavar="SRC")
    s.add_argument("--force", action="store_true",
                   help="restore even though a citymail process seems to use the database")
    s.set_defaults(func=cmd_restore)

    s = sub.add_parser("prune", help="delete old delivery rows and raw bytes of old mail "
                       "that is not archived (CITYMAIL_KEEP_*_DAYS)")
    s.add_argument("--dry-run", action="store_true", help="count only")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_prune)
