"""Bounce duties of the clock: warnings with a re-enable link, owner notices, removal.

Split from ``mailer.bounce_events`` (intake and scoring); the re-enable link's token is
checked here too.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, select, update

from mailer import bounce_score, notices, webhooks
from mailer.bounce_score import DEFAULT_POLICY, BouncePolicy
from mailer.db import utcnow
from mailer.models import ListRole, MailingList, Member, Subscription
from mailer.settings import Settings
from mailer.tokens import sign, unsign

__all__ = [
    "Reenabled", "bounce_duties_due", "reenable", "reenable_token", "reenable_url",
    "run_bounce_duties",
]

from mailer.bounce_events import E, S  # the tables, shared with intake and scoring

log = logging.getLogger(__name__)

# -- the clock: warnings, owner notices, removal -------------------------------------------

_DUE = and_(S.c.delivery_status == "disabled_bounce", S.c.removed_at.is_(None))


def bounce_duties_due(conn: Connection, *, now: dt.datetime) -> bool:
    """Cheap read-only check: is any warning or removal due?"""
    return conn.execute(select(S.c.subscription_id)
                        .where(_DUE, S.c.next_action_at <= now).limit(1)).first() is not None


def run_bounce_duties(conn: Connection, settings: Settings, *, now: dt.datetime,
                      policy: BouncePolicy = DEFAULT_POLICY, limit: int = 200) -> int:
    """Take every due step (warn or remove) once; returns the number of notices queued.

    Each step is claimed with a conditional UPDATE, so several clocks never double-send.
    """
    rows = conn.execute(
        select(S.c.subscription_id, S.c.disabled_at, S.c.warnings_sent, S.c.last_warning_at,
               S.c.score, Subscription.status.label("sub_status"), Subscription.list_id,
               Member.email, Member.name, Member.status.label("member_status"),
               MailingList.name.label("list_name"), MailingList.display_name,
               MailingList.kind)
        .join(Subscription, Subscription.id == S.c.subscription_id)
        .join(Member, Member.id == Subscription.member_id)
        .join(MailingList, MailingList.id == Subscription.list_id)
        .where(_DUE, S.c.next_action_at <= now)
        .order_by(S.c.next_action_at).limit(limit)).all()
    return sum(_duty(conn, settings, row, now=now, policy=policy) for row in rows)


def _duty(conn: Connection, settings: Settings, row: Any, *, now: dt.datetime,
          policy: BouncePolicy) -> int:
    sub_id = row.subscription_id
    mine = and_(S.c.subscription_id == sub_id, _DUE, S.c.warnings_sent == row.warnings_sent)
    if row.sub_status != "active" or row.member_status != "active":
        conn.execute(update(S).where(mine).values(delivery_status="enabled", reenabled_at=now,
                                                  next_action_at=None, updated_at=now))
        log.info("subscription %d is no longer active: bounce warnings stop", sub_id)
        return 0
    disabled_at = row.disabled_at or now
    step = bounce_score.next_step(disabled_at=disabled_at, warnings_sent=row.warnings_sent,
                                  last_warning_at=row.last_warning_at, policy=policy)
    if step.due_at > now:
        conn.execute(update(S).where(mine).values(next_action_at=step.due_at))
        return 0
    if step.action == "warn":
        after = bounce_score.next_step(disabled_at=disabled_at, warnings_sent=step.number,
                                       last_warning_at=now, policy=policy)
        claimed = conn.execute(update(S).where(mine).values(
            warnings_sent=step.number, last_warning_at=now, next_action_at=after.due_at,
            updated_at=now)).rowcount
        if not claimed:
            return 0
        removal = bounce_score.removal_due(disabled_at=disabled_at, warnings_sent=step.number,
                                           last_warning_at=now, policy=policy)
        context = _context(conn, settings, row, now=now, removal=removal, policy=policy)
        token = reenable_token(settings, sub_id, disabled_at, policy=policy)
        queued = _queue(conn, settings, row, "bounce_warning", [row.email],
                        {**context, "number": step.number, "total": policy.warnings,
                         "reenable_url": reenable_url(settings, token)})
        if step.number == 1:
            queued += _tell_owners(conn, settings, row, "bounce_owner_disabled", context)
        log.info("subscription %d: bounce warning %d of %d queued", sub_id, step.number,
                 policy.warnings)
        return queued
    claimed = conn.execute(update(S).where(mine).values(
        removed_at=now, next_action_at=None, updated_at=now)).rowcount
    if not claimed:
        return 0
    if conn.execute(update(Subscription)
                    .where(Subscription.id == sub_id, Subscription.status == "active")
                    .values(status="removed", source="bounces", updated_at=now)).rowcount:
        webhooks.emit(conn, "subscription.changed", {
            "email": row.email, "list": row.list_name, "kind": row.kind, "status": "removed",
            "mode": None, "source": "bounces"})
    log.info("subscription %d removed after %d bounce warnings", sub_id, row.warnings_sent)
    context = _context(conn, settings, row, now=now, removal=now, policy=policy)
    return _tell_owners(conn, settings, row, "bounce_owner_removed", context)


def _local_date(settings: Settings, when: dt.datetime) -> str:
    day = when.astimezone(settings.zone)
    return f"{day:%A} {day.day} {day:%B %Y}"


def _context(conn: Connection, settings: Settings, row: Any, *, now: dt.datetime,
             removal: dt.datetime, policy: BouncePolicy) -> dict[str, Any]:
    recent = conn.execute(select(E.c.occurred_at, E.c.kind, E.c.status, E.c.diagnostic)
                          .where(E.c.subscription_id == row.subscription_id)
                          .order_by(E.c.occurred_at.desc(), E.c.id.desc()).limit(5)).all()
    return {
        "name": row.name or "", "email": row.email, "list_name": row.display_name,
        "list_kind": "newsletter" if row.kind == "newsletter" else "mailing list",
        "list_address": f"{row.list_name}@{settings.list_domain}",
        "score": f"{row.score:g}", "threshold": f"{policy.threshold:g}",
        "total": policy.warnings,
        "disabled_date": _local_date(settings, row.disabled_at or now),
        "removal_date": _local_date(settings, removal),
        "owner_address": f"{row.list_name}-owner@{settings.list_domain}",
        "today": _local_date(settings, now), "warnings_sent": row.warnings_sent,
        "events": [{"date": f"{e.occurred_at.astimezone(settings.zone):%Y-%m-%d}",
                    "kind": e.kind, "status": e.status or "-",
                    "diagnostic": " ".join((e.diagnostic or "").split())[:200]}
                   for e in recent],
        "reason": next((_reason(e.status, e.diagnostic) for e in recent
                        if e.kind == "permanent"), ""),
    }


def _reason(status: str | None, diagnostic: str | None) -> str:
    text = " ".join((diagnostic or "").split())
    if status and status not in text:
        text = f"{status} {text}".strip()
    return text[:300]


def _queue(conn: Connection, settings: Settings, row: Any, template: str, to: list[str],
           context: dict[str, Any]) -> int:
    subject, text = notices.render_notice(template, context)
    domain = settings.list_domain
    data = notices.build_notice(sender=f"{row.list_name}-owner@{domain}",
                                sender_name=row.display_name, to=", ".join(to),
                                subject=subject, text=text, domain=domain)
    notices.queue_notice(conn, data=data, recipients=to, bounce_local=f"{row.list_name}-bounces",
                         list_id=row.list_id)
    return 1


def _tell_owners(conn: Connection, settings: Settings, row: Any, template: str,
                 context: dict[str, Any]) -> int:
    owners = list(conn.scalars(select(ListRole.email).where(ListRole.list_id == row.list_id,
                                                            ListRole.role == "owner")
                               .order_by(ListRole.email)))
    if not owners:
        log.warning("%s has no owners to tell (%s)", row.list_name, template)
        return 0
    return _queue(conn, settings, row, template, owners, context)


# -- re-enable -----------------------------------------------------------------------------

def reenable_token(settings: Settings, subscription_id: int, disabled_at: dt.datetime, *,
                   policy: BouncePolicy = DEFAULT_POLICY) -> str:
    """A signed link token for one disable episode of one subscription."""
    stamp = int(disabled_at.timestamp())
    return sign(settings.secret_key, "reenable", subscription_id, stamp,
                expires=stamp + policy.reenable_link_days * 86400)


def reenable_url(settings: Settings, token: str) -> str:
    return f"{settings.base_url}/r/{token}"


@dataclass(frozen=True)
class Reenabled:
    """What a re-enable link did: reenabled | already_enabled | removed | invalid."""

    outcome: str
    list_name: str | None = None
    email: str | None = None


def reenable(conn: Connection, token: str, *, settings: Settings,
             now: dt.datetime | None = None) -> Reenabled:
    """Turn delivery back on for the subscription a re-enable token names.

    The score starts again from zero (older events never count again).  A removed or
    left subscription is not brought back here: the person opts in again themself.
    """
    now = now or utcnow()
    fields = unsign([k.encode() for k in settings.secret_keys], "reenable", token,
                    now=now.timestamp())
    if not fields or len(fields) != 2 or not all(f.isdigit() for f in fields):
        return Reenabled("invalid")
    sub_id, stamp = int(fields[0]), int(fields[1])
    row = conn.execute(
        select(S.c.delivery_status, S.c.disabled_at, S.c.removed_at,
               Subscription.status, Member.email, MailingList.name)
        .join(Subscription, Subscription.id == S.c.subscription_id)
        .join(Member, Member.id == Subscription.member_id)
        .join(MailingList, MailingList.id == Subscription.list_id)
        .where(S.c.subscription_id == sub_id).with_for_update(of=S)).first()
    if row is None:
        return Reenabled("invalid")
    if row.status != "active" or row.removed_at is not None:
        return Reenabled("removed", row.name, row.email)
    if row.delivery_status != "disabled_bounce":
        return Reenabled("already_enabled", row.name, row.email)
    if row.disabled_at is None or int(row.disabled_at.timestamp()) != stamp:
        return Reenabled("invalid", row.name, row.email)  # a link from an earlier episode
    conn.execute(update(S).where(S.c.subscription_id == sub_id,
                                 S.c.delivery_status == "disabled_bounce")
                 .values(delivery_status="enabled", reenabled_at=now, score=0.0,
                         score_at=now, next_action_at=None, updated_at=now))
    log.info("subscription %d re-enabled by its link", sub_id)
    return Reenabled("reenabled", row.name, row.email)


