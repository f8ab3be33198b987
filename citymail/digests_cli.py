"""``citymail lists digest NAME`` (status, settings, send now) and ``citymail members mode``."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from sqlalchemy import Engine

from citymail.engines import command_engine as _engine
from citymail.output import print_json
from mailer.settings import Settings

__all__ = ["add_digest_verbs", "add_member_mode_verb"]

MODES = ("regular", "digest", "digest-plain", "nomail")
SETTINGS = ("frequency", "weekday", "send_at", "zone", "size_kb", "count")


def _change_settings(engine: Engine, settings: Settings, args: argparse.Namespace) -> bool:
    """Store the digest options given on the command line (validated first)."""
    from sqlalchemy import update

    from listservs.digest_schedule import rules_from_config
    from listservs.lists import get_list
    from mailer.db import writing
    from mailer.models import MailingList

    changes: dict[str, Any] = {k: getattr(args, k) for k in SETTINGS
                               if getattr(args, k) is not None}
    if args.enable or args.disable:
        changes["enabled"] = bool(args.enable)
    if not changes:
        return False
    with writing(engine) as conn:
        info = get_list(conn, args.name)
        config = dict(info.config)
        config["digest"] = {**dict(config.get("digest") or {}), **changes}
        rules_from_config(config, zone=settings.timezone)  # InvalidInput says what is wrong
        conn.execute(update(MailingList).where(MailingList.id == info.id)
                     .values(config=config))
    return True


def _print_status(status: dict[str, Any]) -> None:
    waiting, due, last = status["waiting"], status["next_due"], status["last"]
    every = status["frequency"] + (f" on {status['weekday']}" if status["weekday"] else "")
    print(f"{status['list']}: digests {'on' if status['enabled'] else 'off'}, {every} at "
          f"{status['send_at']} {status['zone']}; early at {status['size_kb']} KB or "
          f"{status['count']} posts")
    print(f"  waiting:  {waiting['posts']} posts, {waiting['bytes']} bytes")
    if due["utc"]:
        print(f"  next due: {due['local']} ({due['utc']} UTC)"
              + (f", {due['reason']} threshold reached" if due["reason"] in ("size", "count")
                 else ""))
    else:
        print("  next due: when a post arrives")
    if last["issue"]:
        print(f"  last:     Vol {last['volume']}, Issue {last['issue']}, sent {last['local']}")
    subs = status["subscribers"]
    print(f"  readers:  {subs['digest']} MIME, {subs['digest-plain']} plain text")


def cmd_lists_digest(args: argparse.Namespace, settings: Settings) -> int:
    from listservs import digests
    from mailer.errors import InvalidInput

    if args.enable and args.disable:
        raise InvalidInput("choose --enable or --disable, not both")
    with _engine(settings) as engine:
        changed = _change_settings(engine, settings, args)
        if args.send_now:
            sent = digests.send_digest(engine, settings, args.name, reason="manual")
            if args.json:
                print_json({"sent": asdict(sent) if sent else None})
            elif sent is None:
                print(f"{args.name}: no posts are waiting; no digest sent")
            else:
                print(f"{args.name}: sent Vol {sent.volume}, Issue {sent.issue} "
                      f"({sent.items} posts) to {sent.recipients} members")
            return 0
        if args.status or not changed:
            status = digests.digest_status(engine, settings, args.name)
            if args.json:
                print_json(status)
            else:
                _print_status(status)
        elif changed:
            print(f"{args.name}: digest settings saved")
    return 0


def cmd_members_mode(args: argparse.Namespace, settings: Settings) -> int:
    from listservs.lists import get_list
    from mailer import preferences
    from mailer.db import writing
    from mailer.errors import NotFound

    with _engine(settings) as engine, writing(engine) as conn:
        person = preferences.person_by_email(conn, args.email)
        if person is None:
            raise NotFound(f"no member {args.email!r} (see: citymail members show)")
        info = get_list(conn, args.list)
        changed = preferences.set_mode(conn, person.id, info.id, args.mode)
    print(f"{args.email} on {args.list}: {args.mode}" + ("" if changed else " (unchanged)"))
    return 0


def add_digest_verbs(lists: Any) -> None:
    s = lists.add_parser("digest", help="a list's digest: status, settings, send now",
                         description="Show a list's digest status (default), change its "
                         "digest settings, or send the waiting posts as a digest now.")
    s.add_argument("name")
    s.add_argument("--status", action="store_true", help="show what waits and when it goes")
    s.add_argument("--send-now", action="store_true", help="send the waiting posts now")
    s.add_argument("--json", action="store_true")
    s.add_argument("--enable", action="store_true", help="collect posts for digests")
    s.add_argument("--disable", action="store_true", help="stop collecting posts")
    s.add_argument("--frequency", choices=["daily", "weekly"])
    s.add_argument("--weekday", help="for weekly digests: monday ... sunday")
    s.add_argument("--at", dest="send_at", metavar="HH:MM", help="local send time (07:00)")
    s.add_argument("--zone", help="IANA time zone (default CITYMAIL_TIMEZONE)")
    s.add_argument("--size-kb", type=int, help="send early at this many KB waiting (0: off)")
    s.add_argument("--count", type=int, help="send early at this many posts waiting (0: off)")
    s.set_defaults(func=cmd_lists_digest)


def add_member_mode_verb(members: Any) -> None:
    s = members.add_parser("mode", help="how a member receives a list",
                           description="Set a member's delivery mode on a list. Leaving a "
                           "digest mode for regular sends them one last digest.")
    s.add_argument("email")
    s.add_argument("list")
    s.add_argument("mode", choices=MODES)
    s.set_defaults(func=cmd_members_mode)
