"""``citymail bounces show EMAIL [--json]``: every step of one person's bounce handling.

Events (date, list, kind, status code, diagnostic, the points each added and why), the
current score per subscription, delivery status, warnings sent, and the next action with
its time.  ``citymail.cli`` adds the verb with ``add_bounce_verbs``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from mailer.bounce_score import BouncePolicy, Hit
    from mailer.settings import Settings

# The parser imports this module for every command: the database and bounce modules are
# imported when the verb runs, so that ``citymail --help`` stays quick.

__all__ = ["add_bounce_verbs", "bounce_view", "cmd_bounces_show"]


def add_bounce_verbs(bounces: Any) -> None:
    """Add ``show`` to the ``citymail bounces`` sub-parsers."""
    s = bounces.add_parser("show", help="one person's bounces: events, scores, delivery, "
                           "warnings and the next step")
    s.add_argument("email")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_bounces_show)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _next_action(sub: Any, hits: list[Hit], value: float, *, now: dt.datetime,
                 policy: BouncePolicy) -> dict[str, Any] | None:
    from mailer import bounce_score

    if sub.status != "active" or sub.removed_at is not None:
        return None
    if sub.delivery_status == "disabled_bounce":
        step = bounce_score.next_step(disabled_at=sub.disabled_at or now,
                                      warnings_sent=sub.warnings_sent,
                                      last_warning_at=sub.last_warning_at, policy=policy)
        action: dict[str, Any] = {"action": step.action, "at": _iso(step.due_at)}
        if step.action == "warn":
            action.update(number=step.number, of=policy.warnings)
        return action
    halves = bounce_score.next_halving(hits, now=now, since=sub.reenabled_at, policy=policy)
    if halves is None:
        return None
    return {"action": "score_halves", "at": _iso(halves), "score_after": value / 2,
            "bouncing_days_to_disable": bounce_score.days_to_disable(value, policy)}


def bounce_view(conn: Connection, email: str, *, now: dt.datetime,
                policy: BouncePolicy | None = None) -> dict[str, Any]:
    """Everything bounce handling holds and plans for one person, as JSON-ready data."""
    from sqlalchemy import select

    from mailer import bounce_score
    from mailer.bounce_score import DEFAULT_POLICY, Hit
    from mailer.errors import NotFound
    from mailer.models import MailingList, Member, Subscription
    from mailer.models_bounces import BounceEvent, BounceState
    from mailer.people import normalise_email

    policy = policy or DEFAULT_POLICY
    E = BounceEvent.__table__
    S = BounceState.__table__
    address = normalise_email(email)
    member = conn.execute(select(Member.id, Member.name, Member.status)
                          .where(Member.email == address)).first()
    if member is None:
        raise NotFound(f"no member with address {address}")
    subs = conn.execute(
        select(Subscription.id, Subscription.status, Subscription.mode, Subscription.source,
               MailingList.name, MailingList.kind, S.c.delivery_status, S.c.disabled_at,
               S.c.warnings_sent, S.c.last_warning_at, S.c.reenabled_at, S.c.removed_at)
        .join(MailingList, MailingList.id == Subscription.list_id)
        .outerjoin(S, S.c.subscription_id == Subscription.id)
        .where(Subscription.member_id == member.id)
        .order_by(MailingList.kind, MailingList.name)).all()
    rows = conn.execute(
        select(E.c.subscription_id, E.c.occurred_at, E.c.kind, E.c.status, E.c.diagnostic,
               E.c.source, E.c.outbound_id, MailingList.name.label("list_name"))
        .join(MailingList, MailingList.id == E.c.list_id)
        .where(E.c.member_id == member.id).order_by(E.c.occurred_at, E.c.id)).all()
    by_sub: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        by_sub[row.subscription_id].append(row)
    since = {s.id: s.reenabled_at for s in subs}
    events: list[tuple[dt.datetime, dict[str, Any]]] = []
    subscriptions = []
    for sub in subs:
        mine = by_sub.get(sub.id, [])
        hits = [Hit(r.occurred_at, r.kind) for r in mine]
        value = bounce_score.score(hits, now=now, since=since[sub.id], policy=policy)
        for r, why in zip(mine, bounce_score.explain(hits, now=now, since=since[sub.id],
                                                     policy=policy), strict=True):
            events.append((r.occurred_at, {
                "at": _iso(r.occurred_at), "date": r.occurred_at.date().isoformat(),
                "list": r.list_name, "kind": r.kind, "status": r.status,
                "diagnostic": r.diagnostic, "source": r.source, "outbound_id": r.outbound_id,
                "points": why.points, "why": why.why}))
        disabled = sub.delivery_status == "disabled_bounce" and sub.removed_at is None
        subscriptions.append({
            "kind": sub.kind, "name": sub.name, "status": sub.status, "mode": sub.mode,
            "source": sub.source,
            "delivery_status": "disabled_bounce" if disabled else "enabled",
            "score": value, "threshold": policy.threshold,
            "disabled_at": _iso(sub.disabled_at), "warnings_sent": sub.warnings_sent or 0,
            "last_warning_at": _iso(sub.last_warning_at),
            "reenabled_at": _iso(sub.reenabled_at), "removed_at": _iso(sub.removed_at),
            "next_action": _next_action(sub, hits, value, now=now, policy=policy),
        })
    events.sort(key=lambda item: item[0])
    return {
        "email": address, "name": member.name, "member_status": member.status,
        "now": _iso(now),
        "policy": {"threshold": policy.threshold,
                   "permanent_points": policy.permanent_points,
                   "temporary_points": policy.temporary_points,
                   "policy_points": 0.0, "one_hit_per": "UTC day",
                   "halve_after_days": policy.halve_after_days,
                   "forget_after_days": policy.forget_after_days,
                   "warnings": policy.warnings,
                   "warning_interval_days": policy.warning_interval_days},
        "subscriptions": subscriptions,
        "events": [e for _at, e in events],
        "complaints": sum(1 for _at, e in events if e["kind"] == "complaint"),
    }


def _when(iso: str | None) -> str:
    return f"{iso[:16].replace('T', ' ')} UTC" if iso else "-"


def _describe(action: dict[str, Any]) -> str:
    when = _when(action["at"])
    if action["action"] == "warn":
        return f"warning {action['number']} of {action['of']} at {when}"
    if action["action"] == "remove":
        return f"removal at {when}"
    return (f"score halves to {action['score_after']:g} at {when} unless it bounces; "
            f"{action['bouncing_days_to_disable']} more bouncing day(s) would disable")


def _print_text(data: dict[str, Any]) -> None:
    print(f"{data['email']}{' (' + data['name'] + ')' if data['name'] else ''}"
          f"{'' if data['member_status'] == 'active' else ' [' + data['member_status'] + ']'}")
    for sub in data["subscriptions"]:
        print(f"  {sub['kind']:<10} {sub['name']:<32} {sub['status']:<7} "
              f"{sub['delivery_status']:<15} score {sub['score']:g}/{sub['threshold']:g}")
        if sub["disabled_at"] or sub["warnings_sent"]:
            print(f"{'':13}disabled {_when(sub['disabled_at'])}, {sub['warnings_sent']} "
                  f"warning(s) sent, last {_when(sub['last_warning_at'])}"
                  + (f", re-enabled {_when(sub['reenabled_at'])}" if sub["reenabled_at"]
                     else "")
                  + (f", removed {_when(sub['removed_at'])}" if sub["removed_at"] else ""))
        if sub["next_action"] is not None:
            print(f"{'':13}next: {_describe(sub['next_action'])}")
    print(f"events ({len(data['events'])}):" if data["events"] else "no bounce events")
    for e in data["events"]:
        text = " ".join((e["diagnostic"] or "").split())[:70]
        print(f"  {e['date']}  {e['list']:<28} {e['kind']:<9} {e['status'] or '-':<7} "
              f"+{e['points']:g}  {e['source']:<4} {text}"
              + (f"  ({e['why']})" if e["why"] != "counted" else ""))


def cmd_bounces_show(args: argparse.Namespace, settings: Settings) -> int:
    from mailer.db import make_engine, reading, utcnow

    engine = make_engine(settings)
    try:
        with reading(engine) as conn:
            data = bounce_view(conn, args.email, now=utcnow())
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        _print_text(data)
    return 0
