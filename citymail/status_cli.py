"""``citymail status [--json]``: the state of the whole installation on one screen.

Workers alive per host, mail waiting, deliveries by state with their ETA (as
``citymail deliveries status`` computes it), held posts per list, bounces in the last
24 hours, the next scheduled newsletter issue and the oldest unresolved error.
``gather`` reads (one read transaction), ``render`` formats (pure).
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from sqlalchemy import Connection, func, select

from citymail.output import print_json
from mailer import delivery
from mailer.db import make_engine, reading, utcnow
from mailer.metrics import DELIVERY_STATES
from mailer.models import Delivery, Held, Inbound, MailingList, Outbound, WorkerBeat
from mailer.models_bounces import BounceEvent
from mailer.settings import Settings
from newsletters.models import Issue

__all__ = ["add_status_verbs", "gather", "render"]

IN = Inbound.__table__
D = Delivery.__table__


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _workers(conn: Connection, now: dt.datetime, lease: dt.timedelta) -> list[dict[str, Any]]:
    rows = conn.execute(select(WorkerBeat.host, func.count(), func.max(
        WorkerBeat.beat_at, type_=WorkerBeat.beat_at.type)).where(
        WorkerBeat.beat_at > now - lease).group_by(WorkerBeat.host)
        .order_by(WorkerBeat.host)).all()
    return [{"host": host, "processes": int(n), "last_beat": _iso(last),
             "seconds_ago": round((now - last).total_seconds(), 1)} for host, n, last in rows]


def _oldest_error(conn: Connection) -> dict[str, Any] | None:
    """The oldest problem still open: a message that failed processing, or a copy that
    keeps being deferred."""
    found = []
    inbound = conn.execute(select(IN.c.id, IN.c.processed_at, IN.c.error)
                           .where(IN.c.state == "failed").order_by(IN.c.id).limit(1)).first()
    if inbound is not None:
        found.append({"what": "inbound", "id": inbound.id, "at": inbound.processed_at,
                      "error": inbound.error})
    copy = conn.execute(select(D.c.id, D.c.created_at, D.c.last_error, D.c.recipient)
                        .where(D.c.state == "deferred", D.c.last_error.is_not(None))
                        .order_by(D.c.created_at).limit(1)).first()
    if copy is not None:
        found.append({"what": "delivery", "id": copy.id, "at": copy.created_at,
                      "error": f"{copy.recipient}: {copy.last_error}"})
    known = [f for f in found if f["at"] is not None]
    if not known:
        return None
    oldest = min(known, key=lambda f: f["at"])
    return {**oldest, "at": _iso(oldest["at"])}


def gather(conn: Connection, *, now: dt.datetime | None = None,
           lease: dt.timedelta = dt.timedelta(seconds=30)) -> dict[str, Any]:
    """Everything ``citymail status`` shows, as JSON-ready data."""
    now = now or utcnow()
    waiting = conn.execute(select(func.count(), func.min(
        IN.c.received_at, type_=IN.c.received_at.type)).where(IN.c.state == "received")).one()
    states = {s: 0 for s in DELIVERY_STATES} | dict(
        conn.execute(select(D.c.state, func.count()).group_by(D.c.state)).all())
    messages = delivery.status(conn, now=now)
    names = dict(conn.execute(select(Outbound.id, MailingList.name).outerjoin(
        MailingList, MailingList.id == Outbound.list_id).where(
        Outbound.id.in_([m["id"] for m in messages]))).all())
    etas = [m["eta_seconds"] for m in messages]
    held = conn.execute(select(MailingList.name, func.count()).join(
        Held, Held.list_id == MailingList.id).where(Held.state == "held")
        .group_by(MailingList.name).order_by(MailingList.name)).all()
    bounces = conn.scalar(select(func.count()).select_from(BounceEvent).where(
        BounceEvent.occurred_at > now - dt.timedelta(hours=24))) or 0
    issue = conn.execute(select(Issue.id, Issue.subject, Issue.send_at, MailingList.name)
                         .join(MailingList, MailingList.id == Issue.list_id)
                         .where(Issue.state == "scheduled").order_by(Issue.send_at)
                         .limit(1)).first()
    return {
        "time": now.isoformat(),
        "workers": _workers(conn, now, lease),
        "inbound_waiting": {"messages": int(waiting[0]), "oldest": _iso(waiting[1])},
        "deliveries": {
            "states": states,
            "sending": [{"id": m["id"], "list": names.get(m["id"]), "sent": m["sent"],
                         "total": m["total"], "remaining": m["remaining"],
                         "rate_per_s": m["rate_per_s"], "eta_seconds": m["eta_seconds"]}
                        for m in messages],
            # All messages finish when the slowest does; unknown if any is unknown.
            "eta_seconds": (None if any(e is None for e in etas) else max(etas, default=0.0)),
        },
        "held": {name: int(n) for name, n in held},
        "bounces_24h": int(bounces),
        "next_issue": None if issue is None else {
            "id": issue.id, "newsletter": issue.name, "subject": issue.subject,
            "send_at": _iso(issue.send_at)},
        "oldest_error": _oldest_error(conn),
    }


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "unknown (nothing sent in the last minute)"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def render(s: dict[str, Any]) -> str:
    """The one-screen text form of ``gather``'s data."""
    lines = [f"citymail status at {s['time'][:19]}Z"]
    workers = s["workers"]
    lines.append("workers:  " + ("NONE ALIVE" if not workers else ", ".join(
        f"{w['host']} {w['processes']} (beat {w['seconds_ago']:.0f} s ago)" for w in workers)))
    waiting = s["inbound_waiting"]
    lines.append(f"inbound:  {waiting['messages']} waiting" + (
        f", oldest since {waiting['oldest'][:19]}" if waiting["oldest"] else ""))
    d = s["deliveries"]
    lines.append("delivery: " + ", ".join(f"{n} {state}" for state, n in d["states"].items()
                                          if n or state in ("pending", "sent", "failed")))
    for m in d["sending"]:
        lines.append(f"          #{m['id']} {m['list'] or '-'}: {m['sent']}/{m['total']} sent, "
                     f"{m['remaining']} to go at {m['rate_per_s']}/s, ETA {_eta(m['eta_seconds'])}")
    if d["sending"]:
        lines.append(f"          all done in {_eta(d['eta_seconds'])}")
    held = s["held"]
    lines.append("held:     " + (", ".join(f"{n} on {name}" for name, n in held.items())
                                 if held else "none"))
    lines.append(f"bounces:  {s['bounces_24h']} in the last 24 h")
    issue = s["next_issue"]
    lines.append("next issue: " + ("none scheduled" if issue is None else
                                   f"{issue['newsletter']} #{issue['id']} \"{issue['subject']}\" "
                                   f"at {issue['send_at'][:16]}Z"))
    err = s["oldest_error"]
    lines.append("oldest error: " + ("none" if err is None else
                                     f"{err['what']} {err['id']} at {err['at'][:19]}: "
                                     f"{(err['error'] or '')[:120]}"))
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    engine = make_engine(settings)
    try:
        with reading(engine) as conn:
            data = gather(conn, lease=dt.timedelta(seconds=settings.worker_lease))
    finally:
        engine.dispose()
    if args.json:
        print_json(data)
    else:
        print(render(data))
    return 0


def add_status_verbs(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``citymail status`` to the top-level subparsers."""
    s = sub.add_parser("status", help="one-screen summary: workers, queues, held posts, errors")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)
