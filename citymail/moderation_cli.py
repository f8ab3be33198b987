"""``citymail moderation list|show|approve|reject|discard``: the held queue from a shell.

Ids are those of ``citymail lists held NAME --json``.  A decision is written like a
moderator's reply: an approved post's outbound row is left undispatched and the workers'
clock (``citymail serve`` or ``citymail worker``) sends it within a tick.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import pwd
from typing import Any

from sqlalchemy import select

from citymail.output import print_json
from listservs.commands import Decision
from listservs.lists import get_list
from listservs.mailtext import safe_excerpt
from listservs.models_moderation import HeldRecord
from listservs.moderation import hold_days, plan_decision
from mailer.db import make_engine, reading, utcnow, writing
from mailer.errors import InvalidInput, NotFound
from mailer.models import Held, Inbound, MailingList
from mailer.settings import Settings

__all__ = ["add_moderation_verbs", "decide", "held_detail", "held_list"]


def _who() -> str:
    try:
        return f"cli:{pwd.getpwuid(os.getuid()).pw_name}"
    except KeyError:
        return f"cli:uid{os.getuid()}"


def _row(r: Any, list_name: str, days: int) -> dict[str, Any]:
    return {"id": r["id"], "list": list_name, "sender": r["sender"], "subject": r["subject"],
            "reasons": list(r["reasons"] or []), "received": r["received_at"].isoformat(),
            "expires": (r["received_at"] + dt.timedelta(days=days)).isoformat(),
            "state": r["state"]}


def held_list(settings: Settings, list_name: str | None = None) -> list[dict[str, Any]]:
    """Messages waiting for a moderator, oldest first, on one list or all."""
    engine = make_engine(settings)
    try:
        with reading(engine) as conn:
            stmt = (select(Held.__table__, MailingList.name.label("list_name"))
                    .join(MailingList, MailingList.id == Held.list_id)
                    .where(Held.state == "held").order_by(Held.id))
            if list_name is not None:
                stmt = stmt.where(Held.list_id == get_list(conn, list_name).id)
            rows = conn.execute(stmt).mappings().all()
            days = {n: hold_days(get_list(conn, n)) for n in {r["list_name"] for r in rows}}
    finally:
        engine.dispose()
    return [_row(r, r["list_name"], days[r["list_name"]]) for r in rows]


def held_detail(settings: Settings, held_id: int) -> dict[str, Any]:
    """One held message: its row, whether the poster was authenticated, a safe excerpt."""
    engine = make_engine(settings)
    try:
        with reading(engine) as conn:
            r = conn.execute(select(Held.__table__, MailingList.name.label("list_name"))
                             .join(MailingList, MailingList.id == Held.list_id)
                             .where(Held.id == held_id)).mappings().first()
            if r is None:
                raise NotFound(f"no held message {held_id} (see: citymail moderation list)")
            raw = bytes(conn.execute(select(Inbound.raw)
                                     .where(Inbound.id == r["inbound_id"])).scalar_one())
            notify = conn.execute(select(HeldRecord.notify_sender)
                                  .where(HeldRecord.held_id == held_id)).scalar()
            days = hold_days(get_list(conn, r["list_name"]))
    finally:
        engine.dispose()
    return {**_row(r, r["list_name"], days), "decided_by": r["decided_by"],
            "decided_at": r["decided_at"].isoformat() if r["decided_at"] else None,
            "authenticated_sender": bool(notify), "size": len(raw),
            "excerpt": safe_excerpt(raw)}


def decide(settings: Settings, held_id: int, action: str, *, reason: str = "",
           decided_by: str | None = None) -> str:
    """Approve, reject or discard a held message; returns what happened, in one line."""
    engine = make_engine(settings)
    try:
        with reading(engine) as conn:
            outcome = plan_decision(conn, held_id=held_id, decision=Decision(action, reason),
                                    decided_by=decided_by or _who(), settings=settings)
        with writing(engine) as conn:
            done = outcome.apply(conn, now=utcnow())
    finally:
        engine.dispose()
    if not done:
        raise InvalidInput(f"held message {held_id} was decided by someone else meanwhile")
    return outcome.note


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    rows = held_list(settings, args.list)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no messages held" + (f" on {args.list}" if args.list else ""))
    for row in rows:
        print(f"{row['id']:>6}  {row['list']:<24} {row['sender']:<32} {row['subject']}\n"
              f"        {'; '.join(row['reasons'])} (expires {row['expires'][:10]})")
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    data = held_detail(settings, args.id)
    if args.json:
        print_json(data)
        return 0
    for key in ("id", "list", "state", "sender", "subject", "received", "expires",
                "authenticated_sender", "decided_by"):
        print(f"{key + ':':<22}{data[key]}")
    print("reasons:\n" + "".join(f"  - {r}\n" for r in data["reasons"]) + "\n"
          + "\n".join(f"| {line}" for line in data["excerpt"].split("\n")))
    return 0


def _cmd_decide(action: str):
    def handler(args: argparse.Namespace, settings: Settings) -> int:
        print(f"citymail: {decide(settings, args.id, action, reason=getattr(args, 'reason', ''))}")
        return 0

    return handler


def add_moderation_verbs(subparsers: Any) -> None:
    """Add ``moderation`` and its actions to the top-level ``citymail`` subparsers."""
    mod = subparsers.add_parser("moderation", help="messages held for moderators").add_subparsers(
        dest="moderation_verb", required=True, metavar="ACTION")
    s = mod.add_parser("list", help="messages waiting for a moderator")
    s.add_argument("--list", metavar="NAME", help="only this list")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_list)
    s = mod.add_parser("show", help="one held message, with a plain-text excerpt")
    s.add_argument("id", type=int, metavar="ID")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_show)
    for action, text in (("approve", "send a held message to the list"),
                         ("reject", "refuse it; an authenticated poster is told the reason"),
                         ("discard", "drop it silently")):
        s = mod.add_parser(action, help=text)
        s.add_argument("id", type=int, metavar="ID")
        if action == "reject":
            s.add_argument("--reason", default="", metavar="TEXT",
                           help="told to the poster (if they passed authentication)")
        s.set_defaults(func=_cmd_decide(action))
