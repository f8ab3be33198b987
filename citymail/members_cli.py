"""``citymail members …``: add (with a welcome), show, import, export, export-person, forget.

``add_member_verbs(members)`` wires these verbs into the ``members`` sub-command parser.
When ``add`` and ``show`` are already defined there, it extends them (``add`` gains
``--no-welcome`` and ``--title``) and routes both to the handlers here, which add the
welcome and the suppression check; otherwise it defines them.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from citymail.engines import command_engine as _engine
from citymail.output import print_json
from mailer import rostercsv  # light: the import verb's --help documents its columns
from mailer.errors import InvalidInput
from mailer.settings import Settings

if TYPE_CHECKING:
    from mailer.roster import ImportResult

__all__ = ["Progress", "add_member_verbs"]

# The handlers import the database layers when they run, as citymail.cli does, so that
# `citymail --help` and unrelated verbs do not pay for them.


class Progress:
    """A progress bar on a terminal's stderr; one plain line per finished stage otherwise."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.width = width

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.tty:
            filled = self.width * done // total if total else self.width
            bar = "#" * filled + "-" * (self.width - filled)
            end = "\n" if done >= total else ""
            self.stream.write(f"\r{stage:<18} [{bar}] {done:,}/{total:,}{end}")
            self.stream.flush()
        elif done >= total:
            self.stream.write(f"citymail: {stage}: {done:,}\n")


# -- add and show --------------------------------------------------------------------------
def cmd_members_add(args: argparse.Namespace, settings: Settings) -> int:
    from mailer.db import writing
    from mailer.league import load_league
    from mailer.people import normalise_email
    from mailer.welcome import join

    with _engine(settings) as engine, writing(engine) as conn:
        result = join(conn, settings, load_league(), email=args.email, name=args.name,
                      city=args.city, role=args.role, title=getattr(args, "title", None),
                      extra_lists=args.list or [], source="cli", welcome=not args.no_welcome)
    state = "added" if result.created else "updated"
    print(f"citymail: {state} {normalise_email(args.email)}; subscribed to "
          f"{', '.join(result.subscribed) or 'nothing new'}")
    if result.kept_out:
        print(f"citymail: not re-added to {', '.join(result.kept_out)} "
              "(they unsubscribed; only they can opt in again)")
    if result.created:
        print("citymail: welcome message " + ("not sent (--no-welcome)" if args.no_welcome
                                              else "queued"))
    return 0


def cmd_members_show(args: argparse.Namespace, settings: Settings) -> int:
    from mailer import privacy
    from mailer.db import reading

    with _engine(settings) as engine, reading(engine) as conn:
        data = privacy.member_summary(conn, settings, args.email)
    if args.json:
        print_json(data)
        return 0
    flags = [f for f in (data["status"] if data["status"] != "active" else "",
                         "suppressed" if data["suppressed"] else "") if f]
    print(data["email"] + (f" ({', '.join(flags)})" if flags else ""))
    for sub in data["subscriptions"]:
        print(f"  {sub['kind']:<10} {sub['name']:<32} {sub['mode']}")
    if data["left"]:
        print(f"  left: {', '.join(data['left'])}")
    return 0


# -- import and export ---------------------------------------------------------------------
def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _report(result: ImportResult, name: str, *, dry_run: bool) -> None:
    plan, f = result.plan, result.plan.file
    print(f"{name}: {_plural(f.records, 'row')} ({f.encoding}, {f.delimiter!r} separated)"
          + (f"; ignored columns: {', '.join(f.ignored_columns)}" if f.ignored_columns else ""))
    for d in f.duplicates:
        print(f"  {d}")
    if f.errors:
        print(f"{_plural(len(f.bad_rows), 'bad row')}:")
        for e in f.errors:
            print(f"  {e}")
    counts = (f"add {len(plan.adds):,}, change {len(plan.changes):,}, "
              f"disable {len(plan.disables):,}; {plan.unchanged:,} unchanged")
    if result.applied:
        print(counts.replace("add", "added", 1).replace("change", "changed", 1)
              .replace("disable", "disabled", 1))
    elif result.rejected:
        print(f"the good rows would {counts} (with --skip-bad-rows)")
    else:
        print(f"would {counts}")
    for a in plan.adds:
        who = "; ".join(x for x in (a.name, ", ".join(y for y in (a.role, a.city) if y)) if x)
        print(f"  + {a.email}" + (f" ({who})" if who else "") + f": {', '.join(a.lists)}")
    for c in plan.changes:
        parts = [f"{k} {old!r} -> {new!r}" for k, old, new in c.fields]
        parts += [f"joins {', '.join(c.lists)}"] if c.lists else []
        parts += [f"caucuses + {', '.join(c.caucuses)}"] if c.caucuses else []
        print(f"  ~ {c.email}: {'; '.join(parts)}")
    for gone in plan.disables:
        print(f"  - {gone.email}: disabled (not in the roster; nothing is deleted)")
    for email, lst in plan.kept_out:
        print(f"  kept out: {email} is not re-added to {lst} (they left it; only they can "
              "opt in again)")
    for row, email in plan.suppressed:
        print(f"  skipped: row {row}, {email} asked to be forgotten")
    if result.applied:
        print(f"welcomes queued: {result.welcomes:,}; write lock held "
              f"{result.lock_seconds or 0:.3f} s; {result.seconds:.1f} s in all")
    elif dry_run:
        print("dry run: nothing was changed")


def cmd_members_import(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{args.file}: {exc.strerror or exc}") from None
    from mailer import roster
    from mailer.league import load_league

    progress = Progress() if not args.json else None
    with _engine(settings) as engine:
        result = roster.import_roster(
            engine, settings, load_league(), data, sync=args.sync, dry_run=args.dry_run,
            skip_bad_rows=args.skip_bad_rows, welcome=not args.no_welcome,
            confirm=args.confirm, progress=progress)
    plan = result.plan
    if args.json:
        print_json({**plan.to_json(), "dry_run": args.dry_run, "applied": result.applied,
                     "rejected": result.rejected,
                     "welcomes": result.welcomes, "write_lock_seconds": result.lock_seconds,
                     "seconds": round(result.seconds, 3)})
    else:
        _report(result, path.name, dry_run=args.dry_run)
    token = (f"citymail members import {shlex.quote(args.file)} --sync --confirm "
             f"{plan.confirm_token}")
    if result.rejected:
        outcome = "the import would be refused" if args.dry_run else "nothing was imported"
        raise InvalidInput(f"{path.name}: {_plural(len(plan.file.bad_rows), 'bad row')} "
                           f"(listed above); {outcome}: fix them, or use --skip-bad-rows")
    if args.dry_run and plan.sync and plan.disables and not args.json:
        print(f"to apply, disabling exactly these {len(plan.disables):,}: {token}")
    if not args.dry_run and not result.applied:
        raise InvalidInput(f"--sync would disable {len(plan.disables):,} members (listed "
                           f"above); nothing was changed; to go ahead: {token}")
    return 0


def cmd_members_export(args: argparse.Namespace, settings: Settings) -> int:
    from mailer import roster
    from mailer.db import reading

    with _engine(settings) as engine, reading(engine) as conn:
        rows = roster.export_rows(conn)
    if args.output in (None, "-"):
        rostercsv.write_roster(rows, sys.stdout)
        return 0
    with open(args.output, "w", encoding="utf-8-sig", newline="") as out:
        count = rostercsv.write_roster(rows, out)
    print(f"citymail: exported {count:,} members to {args.output}", file=sys.stderr)
    return 0


# -- privacy -------------------------------------------------------------------------------
def cmd_members_export_person(args: argparse.Namespace, settings: Settings) -> int:
    from mailer import privacy
    from mailer.db import reading

    with _engine(settings) as engine, reading(engine) as conn:
        data = privacy.export_person(conn, settings, args.email)
    if args.output in (None, "-"):
        print_json(data)
    else:
        with open(args.output, "w", encoding="utf-8") as out:
            print_json(data, out)
    return 0


def cmd_members_forget(args: argparse.Namespace, settings: Settings) -> int:
    from mailer import privacy

    with _engine(settings) as engine:
        done = privacy.forget(engine, settings, args.email)
    if args.json:
        print_json(done.__dict__)
        return 0
    what = (f"member record, {done.subscriptions} subscriptions" if done.member
            else "no member record")
    print(f"citymail: erased {done.address}: {what}, {done.deliveries} deliveries, "
          f"{done.posts} posts, {done.held} held messages, {done.notices} notices; "
          + ("suppressed: it will never be added or mailed again" if done.newly_suppressed
             else "it was already suppressed"))
    return 0


# -- wiring --------------------------------------------------------------------------------
def _parser(members: Any, name: str, help_text: str) -> tuple[argparse.ArgumentParser, bool]:
    existing = members.choices.get(name)
    if existing is not None:
        return existing, False
    return members.add_parser(name, help=help_text), True


def add_member_verbs(members: Any) -> None:
    """Wire ``citymail members`` verbs into ``members`` (an argparse sub-parsers action)."""
    s, new = _parser(members, "add", "add a member: both newsletters and their role's lists, "
                                     "and a welcome message")
    if new:
        s.add_argument("email")
        s.add_argument("--name", required=True)
        s.add_argument("--city", required=True)
        s.add_argument("--role", help="e.g. 'City Clerk' (see mailer/data/league.toml)")
        s.add_argument("--list", action="append", metavar="LIST", help="also subscribe to LIST")
    s.add_argument("--title", help="job title, e.g. 'Deputy City Clerk II'")
    s.add_argument("--no-welcome", action="store_true",
                   help="send no welcome message (e.g. when moving from another server)")
    s.set_defaults(func=cmd_members_add)

    s, new = _parser(members, "show", "what citymail holds about one person")
    if new:
        s.add_argument("email")
        s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_members_show)

    s = members.add_parser(
        "import", help="add and update members from a roster CSV",
        description=rostercsv.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("file", metavar="FILE.csv")
    s.add_argument("--dry-run", action="store_true",
                   help="show the adds, changes and disables; change nothing")
    s.add_argument("--sync", action="store_true",
                   help="the file is the whole roster: disable (never delete) league members "
                        "missing from it; needs --confirm TOKEN from a dry run")
    s.add_argument("--confirm", metavar="TOKEN",
                   help="with --sync: the token a dry run printed for exactly these disables")
    s.add_argument("--skip-bad-rows", action="store_true",
                   help="import the good rows of a file with bad ones (default: import nothing)")
    s.add_argument("--no-welcome", action="store_true",
                   help="send new members no welcome message (moving day)")
    s.add_argument("--json", action="store_true", help="print the plan and result as JSON")
    s.set_defaults(func=cmd_members_import)

    s = members.add_parser("export", help="write active league members as a roster CSV")
    s.add_argument("--output", metavar="FILE", help="write to FILE (default: stdout)")
    s.set_defaults(func=cmd_members_export)

    s = members.add_parser("export-person",
                           help="everything held about one person, as JSON (privacy request)")
    s.add_argument("email")
    s.add_argument("--output", metavar="FILE", help="write to FILE (default: stdout)")
    s.set_defaults(func=cmd_members_export_person)

    s = members.add_parser("forget", help="erase one person and never add or mail them again")
    s.add_argument("email")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_members_forget)
