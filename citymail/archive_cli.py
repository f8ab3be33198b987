"""``citymail lists archive|export-mbox|import-archive`` and ``members import-mailman``.

``add_archive_verbs(lists, members)`` wires them into the ``lists`` and ``members``
sub-command parsers. The archive's list settings (``list_id``, ``private_archive``) are
set with ``citymail lists set`` (``listservs.list_settings``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from citymail.engines import command_engine as _engine
from citymail.output import print_json
from mailer.errors import InvalidInput
from mailer.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = ["add_archive_verbs"]

# Kept here, not imported from mailer.mailman_import, so that --help stays light.
MAILMAN_HELP = """\
Import a list's members from Mailman. FILE holds one member per line ("Full Name
<address>" or "address") in sections; make it on the old server with

  Mailman 2.1                              Mailman 3
  echo '[regular]'                         echo '[regular]'
  bin/list_members -f -r LIST              mailman members --regular LIST
  echo '[digest]'                          echo '[digest]'
  bin/list_members -f -d LIST              mailman members --digest any LIST
  echo '[nomail]'                          echo '[nomail]'
  bin/list_members -f -n byadmin LIST      mailman members --nomail byadmin LIST
  bin/list_members -f -n bybounce LIST     mailman members --nomail bybounces LIST
  echo '[left]'                            echo '[left]'
  bin/list_members -f -n byuser LIST       mailman members --nomail byuser LIST

An address in several sections takes the strongest (left > nomail > digest > regular).
[left] (delivery turned off by the member) is recorded as left: never active, never
re-added by a roster import. Bad lines: nothing is imported. See README, "Moving in".
"""


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: {exc.strerror or exc}") from None


def _list_id(conn: Connection, name: str) -> int:
    from listservs.archive_query import archive_list

    return archive_list(conn, name).id


# -- lists archive -------------------------------------------------------------------------
def cmd_lists_archive(args: argparse.Namespace, settings: Settings) -> int:
    from listservs import archive_query as q
    from listservs.archive_search import MARK_END, MARK_START, search
    from listservs.archive_store import index_missing
    from mailer.db import reading

    base = f"{settings.base_url}/lists/{args.name}/archive/"
    with _engine(settings) as engine:
        with reading(engine) as conn:
            list_id = _list_id(conn, args.name)
        if args.search:
            index_missing(engine, list_id=list_id)  # posts approved before indexing existed
            with reading(engine) as conn:
                hits = search(conn, list_id, args.search)
            rows: list[dict[str, Any]] = [
                {"id": h.post_id, "date": h.sent_at.isoformat(), "from": h.sender,
                 "subject": h.subject, "url": f"{base}msg/{h.post_id}",
                 "snippet": h.snippet.replace(MARK_START, "").replace(MARK_END, "")}
                for h in hits]
        elif args.month:
            with reading(engine) as conn:
                posts = q.month_posts(conn, list_id, args.month, settings.zone)
            rows = [{"id": p.id, "date": p.sent_at.isoformat(), "from": p.sender,
                     "subject": p.subject, "message_id": p.message_id,
                     "url": f"{base}msg/{p.id}"} for p in posts]
        else:
            with reading(engine) as conn:
                months = q.months(conn, list_id, settings.zone)
            rows = [{"month": m, "posts": n, "url": f"{base}{m}/"} for m, n in months]
    if args.json:
        print_json(rows)
    elif not rows:
        print(f"{args.name}: nothing found" if args.search or args.month
              else f"{args.name}: the archive is empty")
    for row in rows if not args.json else []:
        if "month" in row:
            print(f"{row['month']}  {row['posts']:>6} posts  {row['url']}")
        else:
            print(f"{row['id']:>7}  {row['date'][:16]}  {row['from']:<32} {row['subject']}")
    return 0


# -- mbox out and in -----------------------------------------------------------------------
def cmd_lists_export_mbox(args: argparse.Namespace, settings: Settings) -> int:
    from listservs import archive_query as q
    from listservs.archive_mbox import mbox_message
    from mailer.db import reading

    with _engine(settings) as engine, reading(engine) as conn:
        list_id = _list_id(conn, args.name)
        months = [args.month] if args.month else [
            m for m, _ in reversed(q.months(conn, list_id, settings.zone))]
        out = sys.stdout.buffer if args.output in (None, "-") else open(args.output, "wb")  # noqa: SIM115
        count = 0
        try:
            for month in months:
                for p in q.month_posts(conn, list_id, month, settings.zone):
                    out.write(mbox_message(q.shown_bytes(conn, p),
                                           sender=p.sender or "erased", when=p.sent_at))
                    count += 1
        finally:
            if out is not sys.stdout.buffer:
                out.close()
    if args.output not in (None, "-"):
        print(f"citymail: wrote {count:,} messages to {args.output}", file=sys.stderr)
    return 0


def cmd_lists_import_archive(args: argparse.Namespace, settings: Settings) -> int:
    from listservs.archive_store import import_mbox

    try:
        stream = open(args.file, "rb")  # noqa: SIM115 - closed below; read as a stream
    except OSError as exc:
        raise InvalidInput(f"{args.file}: {exc.strerror or exc}") from None
    with stream, _engine(settings) as engine:
        report = import_mbox(engine, args.name, stream, domain=settings.list_domain)
    if args.json:
        print_json(report.__dict__)
        return 0
    print(f"{args.file}: {report.messages:,} messages; imported {report.imported:,}, "
          f"already archived {report.already:,}, bad {len(report.bad):,} (skipped); "
          "no mail was sent")
    for line in report.bad:
        print(f"  skipped {line}")
    return 0


# -- members import-mailman ----------------------------------------------------------------
def cmd_members_import_mailman(args: argparse.Namespace, settings: Settings) -> int:
    from mailer.mailman_import import import_mailman

    data = _read(args.file)
    with _engine(settings) as engine:
        result = import_mailman(engine, settings, args.name, data, dry_run=args.dry_run,
                                welcome=not args.no_welcome, list_id=args.list_id)
    plan = result.plan
    if args.json:
        print_json({**plan.to_json(), "dry_run": args.dry_run, "applied": result.applied,
                    "welcomes": result.welcomes})
    else:
        _report_mailman(plan, result.applied, result.welcomes, args)
    if plan.file.errors:
        raise InvalidInput(f"{args.file}: {len(plan.file.errors)} bad lines (listed above); "
                           "nothing was imported: fix them and run it again")
    return 0


def _report_mailman(plan: Any, applied: bool, welcomes: int, args: argparse.Namespace) -> None:
    f = plan.file
    print(f"{args.file}: {f.lines:,} member lines, {len(f.entries):,} addresses")
    for e in f.errors:
        print(f"  line {e.row}: {e.why}")
    verb = "" if applied else "would "
    print(f"{verb}add {len(plan.new_people):,} people, subscribe {len(plan.subscribe):,} "
          f"members, change {len(plan.modes):,} modes, record {len(plan.leave):,} as left; "
          f"{plan.unchanged:,} unchanged")
    for e in plan.new_people:
        print(f"  + {e.email}" + (f" ({e.name})" if e.name else "") + f": {e.state}")
    for _, e in plan.subscribe:
        print(f"  + {e.email}: {e.state}")
    for _, e in plan.modes:
        print(f"  ~ {e.email}: {e.state}")
    for _, e in plan.leave:
        print(f"  - {e.email}: left (they turned delivery off on the old server)")
    for e in plan.kept_out:
        print(f"  kept out: {e.email} left {plan.list_name} here; only they can opt in again")
    for e in plan.suppressed:
        print(f"  skipped: {e.email} asked to be forgotten")
    if args.list_id and applied:
        print(f"List-Id is now <{args.list_id.strip('<> ')}>")
    if applied:
        print(f"welcomes queued: {welcomes:,}")
    elif args.dry_run:
        print("dry run: nothing was changed")


# -- wiring --------------------------------------------------------------------------------
def add_archive_verbs(lists: Any, members: Any) -> None:
    """Wire the archive verbs into ``lists`` and ``members`` (argparse sub-parsers)."""
    s = lists.add_parser("archive", help="a list's archive: months, a month, or a search")
    s.add_argument("name")
    s.add_argument("--month", metavar="YYYY-MM", help="the posts of one month")
    s.add_argument("--search", metavar="PHRASE",
                   help='full-text search: words, "a phrase" in quotes, -excluded')
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_lists_archive)

    s = lists.add_parser("export-mbox", help="a list's archive as an mbox file (mboxrd)")
    s.add_argument("name")
    s.add_argument("--month", metavar="YYYY-MM", help="one month (default: everything)")
    s.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: stdout)")
    s.set_defaults(func=cmd_lists_export_mbox)

    s = lists.add_parser(
        "import-archive", help="add an old server's archive (mbox) to a list's archive",
        description="Import posts from an mbox file: plain mbox, a Mailman 2 LIST.mbox or "
        "pipermail .txt(.gz), or a Mailman 3 HyperKitty export (.mbox.gz). Original dates "
        "and threading are kept, no mail is sent, and a Message-ID already archived is "
        "skipped, so running it twice is safe. Bad messages are listed and skipped.")
    s.add_argument("name")
    s.add_argument("file", metavar="FILE.mbox")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_lists_import_archive)

    s = members.add_parser(
        "import-mailman", help="a list's members from a Mailman 2 or 3 export",
        description=MAILMAN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("name", metavar="LIST")
    s.add_argument("file", metavar="FILE")
    s.add_argument("--dry-run", action="store_true", help="show what would change; change nothing")
    s.add_argument("--no-welcome", action="store_true", help="send new people no welcome")
    s.add_argument("--list-id", metavar="LIST-ID",
                   help="keep the old server's List-Id (e.g. clerks.lists.example.org)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_members_import_mailman)

