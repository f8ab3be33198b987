"""Bounce events in the database: intake, failures at SMTP time, scores, disables, warnings.

    message to LIST-bounces[+TOKEN]@ ── plan_bounce (read only: VERP, parse) ──► BouncePlan
        ── plan.apply / apply_bounce (the inbound processor's write transaction) ─┐
    deliveries failed at SMTP time ── events_from_failed_deliveries ──────────────┤
        (inside record_results' transaction)                                      ▼
                       bounce_events rows ──► score (mailer.bounce_score) ──► disable
    the clock ── run_bounce_duties ──► warnings with a re-enable link, owner notices, removal
    a web page ── reenable(token) ──► delivery enabled again, the score starts from zero

Every function takes the caller's ``Connection`` (the unit of work: write through
``mailer.db.writing``), sends nothing itself and enqueues nothing: notices are queued with
``mailer.notices.queue_notice`` and the clock dispatches them.  No exceptions are defined
here; ``plan_bounce`` never raises for bad mail (``parse_bounce`` does not) and database
errors pass through to the caller.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from sqlalchemy import Connection, Table, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from mailer import bounce_score
from mailer.addresses import Target
from mailer.bounce_score import DEFAULT_POLICY, BouncePolicy, Hit
from mailer.bounces import BounceReport, parse_bounce
from mailer.db import utcnow
from mailer.models import Delivery, MailingList, Member, Subscription
from mailer.models_bounces import BounceEvent, BounceIntake, BounceState
from mailer.settings import Settings
from mailer.verp import verp_decode

__all__ = [
    "OUTCOMES", "Applied", "BouncePlan", "PlannedEvent", "apply_bounce",
    "complaints_by_outbound", "events_from_failed_deliveries", "intake_counts",
    "plan_bounce", "record_events", "update_scores",
]

log = logging.getLogger(__name__)

D = cast(Table, Delivery.__table__)
E = cast(Table, BounceEvent.__table__)
S = cast(Table, BounceState.__table__)
OUTCOMES = ("recorded", "complaint", "autoreply", "not_bounce", "unknown", "forged",
            "unmatched", "stale", "no_list")


@dataclass(frozen=True)
class PlannedEvent:
    """One event to record for one subscription."""

    subscription_id: int
    member_id: int
    list_id: int
    kind: str  # permanent | temporary | policy | complaint
    address: str
    status: str | None
    diagnostic: str | None
    source: str  # verp | dsn | smtp
    delivery_id: int | None = None
    outbound_id: int | None = None


@dataclass(frozen=True)
class BouncePlan:
    """What a message to a -bounces address will change, decided before any write.

    Also an effect in the sense of ``listservs.effects``: ``plan.apply(conn, now=now)``.
    """

    list_name: str
    list_id: int | None
    source: str  # verp | plain
    outcome: str  # one of OUTCOMES
    detail: str = ""
    events: tuple[PlannedEvent, ...] = ()
    inbound_id: int | None = None

    def apply(self, conn: Connection, *, now: dt.datetime) -> bool:
        apply_bounce(conn, self, now=now)
        return True


@dataclass(frozen=True)
class Applied:
    """What a write changed (for logs and tests)."""

    events: int = 0
    disabled: tuple[int, ...] = ()  # subscription ids whose delivery was just disabled
    unsubscribed: tuple[int, ...] = ()  # subscription ids just left by a complaint


# -- intake --------------------------------------------------------------------------------

def plan_bounce(conn: Connection, settings: Settings, target: Target, raw: bytes, *,
                now: dt.datetime, inbound_id: int | None = None,
                policy: BouncePolicy = DEFAULT_POLICY) -> BouncePlan:
    """Decide what a message sent to ``target`` (role ``bounces``) means; writes nothing.

    With a token, the VERP token names the delivery (a forged one is logged and ignored);
    without one, the failed addresses of the DSN or notice are matched to subscribers.
    """
    plan = _plan(conn, settings, target, raw, now=now, policy=policy)
    return replace(plan, inbound_id=inbound_id)


def _plan(conn: Connection, settings: Settings, target: Target, raw: bytes, *,
          now: dt.datetime, policy: BouncePolicy) -> BouncePlan:
    source = "verp" if target.token else "plain"
    list_id = conn.scalar(select(MailingList.id).where(MailingList.name == target.list_name))
    if list_id is None:
        return BouncePlan(target.list_name, None, source, "no_list", "no such list any more")
    if not target.token:
        return _plan_plain(conn, target.list_name, list_id, parse_bounce(raw))
    keys = [k.encode() for k in settings.secret_keys]
    delivery_id = verp_decode(keys, target.token)
    if delivery_id is None:
        log.warning("ignored a message to %s-bounces: forged or garbled VERP token %r",
                    target.list_name, target.token)
        return BouncePlan(target.list_name, list_id, source, "forged",
                          f"VERP token {target.token!r} does not verify")
    return _plan_verp(conn, target.list_name, list_id, delivery_id, raw, now=now,
                      policy=policy)


def _ignored(report: BounceReport) -> str | None:
    if report.complaint or report.is_bounce:
        return None
    return report.kind  # autoreply | not_bounce | unknown


def _plan_verp(conn: Connection, list_name: str, list_id: int, delivery_id: int, raw: bytes,
               *, now: dt.datetime, policy: BouncePolicy) -> BouncePlan:
    def plan(outcome: str, detail: str, *events: PlannedEvent) -> BouncePlan:
        return BouncePlan(list_name, list_id, "verp", outcome, detail, events)

    row = conn.execute(select(D.c.id, D.c.member_id, D.c.list_id, D.c.recipient,
                              D.c.outbound_id, D.c.created_at)
                       .where(D.c.id == delivery_id)).first()
    if row is None:
        return plan("unmatched", f"delivery {delivery_id} no longer exists")
    if row.created_at < now - dt.timedelta(days=policy.verp_max_age_days):
        return plan("stale", f"delivery {delivery_id} is older than "
                              f"{policy.verp_max_age_days} days")
    report = parse_bounce(raw)
    ignored = _ignored(report)
    if ignored:
        return plan(ignored, f"delivery {delivery_id}: {ignored}, ignored")
    key = (row.member_id, row.recipient.lower(), row.list_id)
    found = _subscriptions(conn, [key]).get(key)
    if found is None:
        return plan("unmatched", f"delivery {delivery_id} was not to a subscriber")
    sub_id, member_id, sub_list = found
    if report.complaint:
        return plan("complaint", f"delivery {delivery_id}: complaint", PlannedEvent(
            sub_id, member_id, sub_list, "complaint", row.recipient, None, report.diagnostic,
            "verp", row.id, row.outbound_id))
    permanent, is_policy, status, diagnostic = _failure_for(report, row.recipient)
    kind = bounce_score.kind_of(permanent=permanent, policy=is_policy)
    return plan("recorded", f"delivery {delivery_id}: {kind} {status or ''}".rstrip(),
                PlannedEvent(sub_id, member_id, sub_list, kind, row.recipient, status,
                             diagnostic, "verp", row.id, row.outbound_id))


def _failure_for(report: BounceReport,
                 address: str) -> tuple[bool | None, bool, str | None, str | None]:
    """(permanent, policy, status, diagnostic) the report gives for our one recipient."""
    address = address.lower()
    found = next((f for f in report.failures if f.address == address), None)
    if found is None and len(report.failures) == 1:
        found = report.failures[0]  # forwarded: the DSN names where the mail went next
    if found is not None:
        return found.permanent, found.policy, found.status, found.diagnostic
    return report.permanent, report.policy, None, report.diagnostic


def _plan_plain(conn: Connection, list_name: str, list_id: int,
                report: BounceReport) -> BouncePlan:
    ignored = _ignored(report)
    if ignored:
        return BouncePlan(list_name, list_id, "plain", ignored, f"{ignored}, ignored")
    wanted: list[tuple[str, str, str | None, str | None]] = []
    if report.complaint:
        wanted = [(a, "complaint", None, report.diagnostic) for a in report.addresses]
    elif report.failures:
        wanted = [(f.address, bounce_score.kind_of(permanent=f.permanent, policy=f.policy),
                   f.status, f.diagnostic) for f in report.failures]
    else:
        kind = bounce_score.kind_of(permanent=report.permanent, policy=report.policy)
        wanted = [(a, kind, None, report.diagnostic) for a in report.addresses]
    keys = [(None, address, list_id) for address, *_ in wanted]
    found = _subscriptions(conn, keys)
    events = tuple(
        PlannedEvent(*found[(None, address, list_id)], kind, address, status, diagnostic,
                     "dsn")
        for address, kind, status, diagnostic in wanted if (None, address, list_id) in found)
    detail = f"{len(wanted)} address(es) reported, {len(events)} subscriber(s)"
    if not events:
        return BouncePlan(list_name, list_id, "plain", "unmatched", detail)
    outcome = "complaint" if report.complaint else "recorded"
    return BouncePlan(list_name, list_id, "plain", outcome, detail, events)


Key = tuple[int | None, str, int | None]  # (member id or None, address, list id)


def _subscriptions(conn: Connection, keys: Iterable[Key]) -> dict[Key, tuple[int, int, int]]:
    """(subscription, member, list) ids per key: by member id when known, else by address."""
    keys = [k for k in keys if k[2] is not None]
    out: dict[Key, tuple[int, int, int]] = {}
    by_member = {(m, lst) for m, _a, lst in keys if m is not None}
    by_address = {(a.lower(), lst) for m, a, lst in keys if m is None}
    sub = Subscription
    if by_member:
        found = {(r.member_id, r.list_id): (r.id, r.member_id, r.list_id)
                 for r in conn.execute(select(sub.id, sub.member_id, sub.list_id).where(
                     sub.member_id.in_({m for m, _ in by_member}),
                     sub.list_id.in_({lst for _, lst in by_member})))}
        out.update({k: found[(k[0], k[2])] for k in keys if (k[0], k[2]) in found})
    if by_address:
        by_email = {(r.email, r.list_id): (r.id, r.member_id, r.list_id)
                    for r in conn.execute(select(sub.id, sub.member_id, sub.list_id, Member.email)
                                          .join(Member, Member.id == sub.member_id).where(
                        Member.email.in_({a for a, _ in by_address}),
                        sub.list_id.in_({lst for _, lst in by_address})))}
        out.update({k: by_email[(k[1].lower(), k[2])] for k in keys
                    if k[0] is None and (k[1].lower(), k[2]) in by_email})
    return out


def apply_bounce(conn: Connection, plan: BouncePlan, *, now: dt.datetime,
                 policy: BouncePolicy = DEFAULT_POLICY) -> Applied:
    """Write what ``plan_bounce`` decided, in the caller's (exactly-once) transaction."""
    inbound_id = plan.inbound_id
    conn.execute(insert(BounceIntake).values(
        inbound_id=inbound_id, list_id=plan.list_id, source=plan.source,
        outcome=plan.outcome, detail=plan.detail[:2000], events=len(plan.events),
        created_at=now))
    if not plan.events:
        log.info("bounce to %s-bounces (inbound %s): %s", plan.list_name, inbound_id,
                 plan.outcome)
        return Applied()
    applied = record_events(conn, plan.events, now=now, inbound_id=inbound_id, policy=policy)
    log.info("bounce to %s-bounces (inbound %s): %s, %d event(s), disabled %s, left %s",
             plan.list_name, inbound_id, plan.outcome, applied.events,
             list(applied.disabled), list(applied.unsubscribed))
    return applied


def events_from_failed_deliveries(conn: Connection, delivery_ids: Sequence[int], *,
                                  now: dt.datetime | None = None,
                                  policy: BouncePolicy = DEFAULT_POLICY) -> int:
    """Record a bounce event for deliveries the relay refused with 5xx (or gave up on).

    Call it in the transaction that marked them ``failed``.  Deliveries that are not
    failed, have no list, failed for our own reasons (code 0: relay down) or already have
    their SMTP event are skipped.  Returns the number of events recorded.
    """
    if not delivery_ids:
        return 0
    now = now or utcnow()
    ids = sorted(set(delivery_ids))
    rows = conn.execute(select(D.c.id, D.c.member_id, D.c.list_id, D.c.recipient,
                               D.c.outbound_id, D.c.last_error)
                        .where(D.c.id.in_(ids), D.c.state == "failed",
                               D.c.list_id.is_not(None))).all()
    done = set(conn.scalars(select(E.c.delivery_id).where(E.c.delivery_id.in_(ids),
                                                          E.c.source == "smtp")))
    judged = []
    for r in rows:
        verdict = None if r.id in done else bounce_score.smtp_failure(r.last_error)
        if verdict is not None:  # None: our own trouble (relay down), not the recipient's
            judged.append((r, verdict))
    found = _subscriptions(conn, [(r.member_id, r.recipient, r.list_id) for r, _ in judged])
    events = []
    for row, (kind, status, diagnostic) in judged:
        sub = found.get((row.member_id, row.recipient, row.list_id))
        if sub is not None:
            events.append(PlannedEvent(*sub, kind, row.recipient, status, diagnostic, "smtp",
                                       row.id, row.outbound_id))
    if events:
        record_events(conn, events, now=now, policy=policy)
    return len(events)


# -- scores --------------------------------------------------------------------------------

def record_events(conn: Connection, events: Sequence[PlannedEvent], *, now: dt.datetime,
                  inbound_id: int | None = None,
                  policy: BouncePolicy = DEFAULT_POLICY) -> Applied:
    """Insert events, unsubscribe complainers and re-score the subscriptions concerned."""
    sub_ids = sorted({e.subscription_id for e in events})
    _ensure_states(conn, sub_ids, now=now)
    conn.execute(insert(BounceEvent), [{
        "subscription_id": e.subscription_id, "member_id": e.member_id, "list_id": e.list_id,
        "occurred_at": now, "kind": e.kind, "source": e.source, "address": e.address[:320],
        "status": (e.status or None) and e.status[:32],
        "diagnostic": (e.diagnostic or None) and e.diagnostic[:2000],
        "delivery_id": e.delivery_id, "outbound_id": e.outbound_id, "inbound_id": inbound_id,
    } for e in events])
    complained = sorted({e.subscription_id for e in events if e.kind == "complaint"})
    left: list[int] = []
    if complained:
        left = sorted(conn.scalars(
            update(Subscription)
            .where(Subscription.id.in_(complained), Subscription.status != "left")
            .values(status="left", source="complaint", updated_at=now)
            .returning(Subscription.id)))
    disabled = update_scores(conn, sub_ids, now=now, policy=policy)
    return Applied(len(events), tuple(disabled), tuple(left))


def _ensure_states(conn: Connection, sub_ids: Sequence[int], *, now: dt.datetime) -> None:
    """Create missing state rows, lock them (PostgreSQL), reset ones a re-join revived."""
    rows = [{"subscription_id": i, "delivery_status": "enabled", "score": 0.0,
             "warnings_sent": 0, "updated_at": now} for i in sub_ids]
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        make = sqlite.insert if dialect == "sqlite" else postgresql.insert
        conn.execute(make(S).on_conflict_do_nothing(index_elements=["subscription_id"]), rows)
    else:
        known = set(conn.scalars(select(S.c.subscription_id)
                                 .where(S.c.subscription_id.in_(sub_ids))))
        missing = [r for r in rows if r["subscription_id"] not in known]
        if missing:
            conn.execute(insert(S), missing)
    # Concurrent writers to the same subscriptions queue here (SQLite: BEGIN IMMEDIATE).
    conn.execute(select(S.c.subscription_id).where(S.c.subscription_id.in_(sub_ids))
                 .with_for_update()).all()
    active = select(Subscription.id).where(Subscription.status == "active")
    conn.execute(update(S).where(S.c.subscription_id.in_(sub_ids), S.c.removed_at.is_not(None),
                                 S.c.subscription_id.in_(active))
                 .values(delivery_status="enabled", removed_at=None, reenabled_at=now,
                         next_action_at=None, score=0.0, updated_at=now))


def update_scores(conn: Connection, sub_ids: Sequence[int], *, now: dt.datetime,
                  policy: BouncePolicy = DEFAULT_POLICY) -> list[int]:
    """Re-score subscriptions from their events; disable those at the threshold.

    Returns the ids of the subscriptions disabled now.  The clock sends the warnings and
    owner notices (``run_bounce_duties``): ``next_action_at`` is set to ``now``.
    """
    states = conn.execute(select(S.c.subscription_id, S.c.delivery_status, S.c.reenabled_at,
                                 Subscription.status)
                          .join(Subscription, Subscription.id == S.c.subscription_id)
                          .where(S.c.subscription_id.in_(sub_ids))).all()
    hits: dict[int, list[Hit]] = defaultdict(list)
    for r in conn.execute(select(E.c.subscription_id, E.c.occurred_at, E.c.kind)
                          .where(E.c.subscription_id.in_(sub_ids),
                                 E.c.occurred_at >= now - policy.forget_after)
                          .order_by(E.c.occurred_at, E.c.id)):
        hits[r.subscription_id].append(Hit(r.occurred_at, r.kind))
    disabled = []
    for st in states:
        value = bounce_score.score(hits[st.subscription_id], now=now, since=st.reenabled_at,
                                   policy=policy)
        values: dict[str, Any] = {"score": value, "score_at": now, "updated_at": now}
        if st.delivery_status == "enabled" and st.status == "active" and policy.reached(value):
            values.update(delivery_status="disabled_bounce", disabled_at=now, warnings_sent=0,
                          last_warning_at=None, next_action_at=now, removed_at=None)
            disabled.append(st.subscription_id)
            log.info("subscription %d: bounce score %.2f, delivery disabled",
                     st.subscription_id, value)
        conn.execute(update(S).where(S.c.subscription_id == st.subscription_id)
                     .values(**values))
    return disabled


# -- counts --------------------------------------------------------------------------------

def complaints_by_outbound(conn: Connection,
                           outbound_ids: Sequence[int] | None = None) -> dict[int, int]:
    """Complaints per outbound message (a post, an issue), where the message is known."""
    stmt = (select(E.c.outbound_id, func.count()).where(E.c.kind == "complaint",
                                                         E.c.outbound_id.is_not(None))
            .group_by(E.c.outbound_id))
    if outbound_ids is not None:
        stmt = stmt.where(E.c.outbound_id.in_(outbound_ids))
    return {int(k): int(v) for k, v in conn.execute(stmt).all()}


def intake_counts(conn: Connection, *, since: dt.datetime | None = None) -> dict[str, int]:
    """Messages received at -bounces addresses, by outcome (auto-replies are counted here)."""
    table = cast(Table, BounceIntake.__table__)
    stmt = select(table.c.outcome, func.count()).group_by(table.c.outcome)
    if since is not None:
        stmt = stmt.where(table.c.created_at >= since)
    return {str(k): int(v) for k, v in conn.execute(stmt).all()}
