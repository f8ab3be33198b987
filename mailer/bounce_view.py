"""One person's bounce handling as JSON-ready data: events with the points each added,
scores, delivery state, warnings and the next step (``citymail bounces show`` and the
admin pages show it)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, select

from mailer import bounce_score
from mailer.bounce_score import DEFAULT_POLICY, BouncePolicy, Hit
from mailer.errors import NotFound
from mailer.models import MailingList, Member, Subscription
from mailer.models_bounces import BounceEvent, BounceState
from mailer.people import normalise_email

__all__ = ["bounce_view"]


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _next_action(sub: Any, hits: list[Hit], value: float, *, now: dt.datetime,
                 policy: BouncePolicy) -> dict[str, Any] | None:
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
