"""Delivery rows: fan-out, claims and results, all set-based and in chunks.

States: pending (ready and on its way to a worker) -> sending (claimed by a live worker)
-> sent | deferred (retry at due_at) | failed.  A crash can resend at most the chunks that
were claimed at that moment; everything else continues from where it was.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from mailer import bounce_events
from mailer.db import utcnow, writing
from mailer.models import Delivery, Member, Outbound, Subscription, WorkerBeat
from mailer.models_bounces import delivery_enabled
from mailer.throttle import Throttles
from mailer.transport import Result

__all__ = [
    "Claimed", "chunk_ranges", "claim", "fan_out", "record_results", "release_dead_claims",
]

# Longer than any chunk can run (the actors' 15-minute time limit, with a margin).
ORPHANED_CLAIM = dt.timedelta(minutes=20)

D = Delivery.__table__
RETRY_BASE = dt.timedelta(minutes=1)
RETRY_CAP = dt.timedelta(hours=4)
GIVE_UP_AFTER = dt.timedelta(days=4)


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    recipient: str
    member_id: int | None
    list_id: int | None
    attempts: int
    created_at: dt.datetime
    outbound_id: int
    claimed_at: dt.datetime


def fan_out(conn: Connection, *, outbound_id: int, list_id: int,
            modes: Sequence[str] = ("regular",), now: dt.datetime | None = None) -> int:
    """One INSERT ... SELECT: a pending delivery for every active subscriber in ``modes``."""
    now = now or utcnow()
    source = (
        select(
            literal(outbound_id), Member.id, Subscription.list_id, Member.email,
            literal("pending"), literal(0), literal(now, D.c.due_at.type),
            literal(now, D.c.created_at.type),
        )
        .join(Member, Member.id == Subscription.member_id)
        .where(Subscription.list_id == list_id, Subscription.status == "active",
               Subscription.mode.in_(modes), Member.status == "active",
               delivery_enabled(Subscription.id))
        .order_by(Member.id)
    )
    # preserve_rowcount: SQLAlchemy 2 reports an INSERT's rowcount on PostgreSQL only then.
    result = conn.execute(insert(D).from_select(
        ["outbound_id", "member_id", "list_id", "recipient", "state", "attempts", "due_at",
         "created_at"], source).execution_options(preserve_rowcount=True))
    return result.rowcount or 0


def add_recipients(conn: Connection, *, outbound_id: int, recipients: Iterable[str],
                   list_id: int | None = None) -> int:
    """Pending deliveries to named addresses (notices, test sends)."""
    now = utcnow()
    rows = [{"outbound_id": outbound_id, "recipient": r, "list_id": list_id, "state": "pending",
             "attempts": 0, "due_at": now, "created_at": now} for r in recipients]
    if rows:
        conn.execute(insert(D), rows)
    return len(rows)


def chunk_ranges(ids: Sequence[int], size: int) -> list[tuple[int, int]]:
    """Split sorted ids into (first, last) ranges of at most ``size`` ids each."""
    return [(ids[i], ids[min(i + size, len(ids)) - 1]) for i in range(0, len(ids), size)]


def chunk_size_for(count: int, *, threads: int, maximum: int, minimum: int = 25) -> int:
    """Small sends are spread over every thread for latency; big ones use full chunks."""
    return min(maximum, max(minimum, math.ceil(count / max(1, threads))))


def pending_ranges(conn: Connection, outbound_id: int, size: int) -> list[tuple[int, int]]:
    ids = list(conn.scalars(select(D.c.id).where(D.c.outbound_id == outbound_id,
                                                 D.c.state == "pending").order_by(D.c.id)))
    return chunk_ranges(ids, size)


def claim(engine: Engine, *, outbound_id: int, first: int, last: int,
          worker: str, throttles: Throttles | None = None) -> list[Claimed]:
    """Take the pending rows of one chunk for this worker (an idempotent no-op if gone).

    With sending limits, rows whose slot is later are deferred to it in the same
    transaction instead of being returned: no actor ever waits for a slot.
    """
    now = utcnow()
    stmt = (
        update(D)
        .where(D.c.outbound_id == outbound_id, D.c.id.between(first, last),
               D.c.state == "pending")
        .values(state="sending", claimed_by=worker, claimed_at=now, attempts=D.c.attempts + 1)
        .returning(D.c.id, D.c.recipient, D.c.member_id, D.c.list_id, D.c.attempts,
                   D.c.created_at, D.c.outbound_id, D.c.claimed_at)
    )
    with writing(engine) as conn:
        rows = sorted((Claimed(*row) for row in conn.execute(stmt)),
                      key=lambda c: c.delivery_id)
        if throttles is None or not throttles.active or not rows:
            return rows
        dues = throttles.plan(conn, [c.recipient for c in rows], now)
        later = [{"b_id": c.delivery_id, "b_due": due} for c, due in zip(rows, dues, strict=True)
                 if due > now]
        if later:
            conn.execute(update(D).where(D.c.id == bindparam("b_id"))
                         .values(state="deferred", due_at=bindparam("b_due"), claimed_by=None,
                                 attempts=D.c.attempts - 1), later)
    waiting = {row["b_id"] for row in later}
    return [c for c in rows if c.delivery_id not in waiting]


def retry_delay(attempts: int, *, rng: random.Random | None = None,
                base: dt.timedelta = RETRY_BASE) -> dt.timedelta:
    """Exponential back-off with +-25% jitter so a recovered relay is not stampeded."""
    base = min(RETRY_CAP, base * (2 ** max(0, attempts - 1)))
    jitter = (rng or random).uniform(0.75, 1.25)
    return dt.timedelta(seconds=base.total_seconds() * jitter)


def record_results(engine: Engine, results: Sequence[Result], claimed: Sequence[Claimed],
                   *, worker: str, retry_base: dt.timedelta = RETRY_BASE,
                   give_up_after: dt.timedelta = GIVE_UP_AFTER) -> dict[str, int]:
    """Write the outcome of a chunk in one transaction; returns counts per state."""
    now = utcnow()
    by_id = {c.delivery_id: c for c in claimed}
    sent = [r.delivery_id for r in results if r.outcome == "sent"]
    failed = [{"b_id": r.delivery_id, "b_err": f"{r.code} {r.text}"[:2000]}
              for r in results if r.outcome == "failed"]
    deferred: list[dict[str, object]] = []
    for r in results:
        if r.outcome != "deferred":
            continue
        c = by_id[r.delivery_id]
        error = f"{r.code} {r.text}"[:2000]
        if now - c.created_at > give_up_after:
            failed.append({"b_id": r.delivery_id, "b_err": f"gave up after retries: {error}"})
        else:
            deferred.append({"b_id": r.delivery_id, "b_err": error,
                             "b_due": now + retry_delay(c.attempts, base=retry_base)})
    if not claimed:
        return {"sent": 0, "failed": 0, "deferred": 0}
    # This claim's rows only: same worker, same message, same claim time.
    mine = and_(D.c.state == "sending", D.c.claimed_by == worker,
                D.c.outbound_id == claimed[0].outbound_id,
                D.c.claimed_at == claimed[0].claimed_at)
    with writing(engine) as conn:
        # The exceptions first, row by row; then everything else this worker still holds
        # in the chunk's id range is sent: one range UPDATE instead of a list of ids.
        if failed:
            conn.execute(update(D).where(D.c.id == bindparam("b_id"), mine)
                         .values(state="failed", last_error=bindparam("b_err")), failed)
            bounce_events.events_from_failed_deliveries(conn, [f["b_id"] for f in failed],
                                                        now=now)
        if deferred:
            conn.execute(update(D).where(D.c.id == bindparam("b_id"), mine)
                         .values(state="deferred", last_error=bindparam("b_err"),
                                 due_at=bindparam("b_due")), deferred)
        for domain in _pushed_back(results, by_id):
            Throttles.learn(conn, domain, now)
        if sent:
            conn.execute(update(D).where(D.c.id.between(min(sent), max(sent)), mine)
                         .values(state="sent", sent_at=now, last_error=None))
    return {"sent": len(sent), "failed": len(failed), "deferred": len(deferred)}


def _pushed_back(results: Sequence[Result], by_id: dict[int, Claimed]) -> set[str]:
    """Domains that deferred with 4.7.x: they asked us to send more slowly."""
    return {by_id[r.delivery_id].recipient.rpartition("@")[2].lower() for r in results
            if r.outcome == "deferred" and 400 <= r.code < 500 and "4.7." in r.text}


def release_dead_claims(conn: Connection, *, lease: dt.timedelta,
                        orphaned: dt.timedelta = ORPHANED_CLAIM) -> dict[int, list[int]]:
    """Rows claimed by a worker that stopped beating go back to pending, to be sent now;
    so do claims older than ``orphaned`` (no chunk runs that long: its claim's commit
    succeeded but the reply was lost, e.g. in a database crash, so the live worker that
    made it never knew it held these rows).

    Returns the released ids by outbound id, for the caller to enqueue.
    """
    now = utcnow()
    alive = select(WorkerBeat.id).where(WorkerBeat.beat_at > now - lease)
    rows = conn.execute(
        update(D).where(D.c.state == "sending",
                        or_(D.c.claimed_by.is_(None), D.c.claimed_by.not_in(alive),
                            D.c.claimed_at < now - orphaned))
        .values(state="pending", due_at=now, claimed_by=None)
        .returning(D.c.id, D.c.outbound_id)).all()
    grouped: dict[int, list[int]] = {}
    for row in sorted(rows):
        grouped.setdefault(row.outbound_id, []).append(row.id)
    return grouped


def due_for_dispatch(conn: Connection, *, late: dt.timedelta,
                     limit: int = 100_000) -> dict[int, list[int]]:
    """Rows that need (re-)enqueueing, by outbound id, marked as just dispatched.

    Deferred rows whose time has come become pending; pending rows that no worker took
    within ``late`` (a lost broker message, a restarted in-process broker) are sent again.
    """
    now = utcnow()
    due = or_(and_(D.c.state == "deferred", D.c.due_at <= now),
              and_(D.c.state == "pending", D.c.due_at <= now - late))
    rows = conn.execute(select(D.c.id, D.c.outbound_id).where(due).order_by(D.c.id)
                        .limit(limit)).all()
    if not rows:
        return {}
    ids = [r.id for r in rows]
    for start in range(0, len(ids), 5000):
        conn.execute(update(D).where(D.c.id.in_(ids[start:start + 5000]))
                     .values(state="pending", due_at=now))
    grouped: dict[int, list[int]] = {}
    for r in rows:
        grouped.setdefault(r.outbound_id, []).append(r.id)
    return grouped


def outbound_body(conn: Connection, outbound_id: int) -> tuple[bytes, str, bool]:
    row = conn.execute(select(Outbound.body, Outbound.bounce_local, Outbound.personal)
                       .where(Outbound.id == outbound_id)).one()
    return bytes(row.body), row.bounce_local, bool(row.personal)


def progress(conn: Connection, outbound_id: int | None = None) -> dict[str, int]:
    stmt = select(D.c.state, func.count()).group_by(D.c.state)
    if outbound_id is not None:
        stmt = stmt.where(D.c.outbound_id == outbound_id)
    return dict(conn.execute(stmt).all())


def status(conn: Connection, *, now: dt.datetime | None = None,
           window: dt.timedelta = dt.timedelta(minutes=1),
           include_finished: bool = False) -> list[dict[str, object]]:
    """Progress of every message still being delivered, with an honest ETA.

    The rate is what was actually sent in the last ``window``; the ETA is the remaining
    rows at that rate, but never earlier than the latest retry already scheduled.
    """
    now = now or utcnow()
    counts = conn.execute(
        select(D.c.outbound_id, D.c.state, func.count(),
               func.max(D.c.due_at, type_=D.c.due_at.type))
        .group_by(D.c.outbound_id, D.c.state)).all()
    recent = dict(conn.execute(
        select(D.c.outbound_id, func.count())
        .where(D.c.state == "sent", D.c.sent_at > now - window)
        .group_by(D.c.outbound_id)).all())  # type: ignore[arg-type]
    by_outbound: dict[int, dict[str, object]] = {}
    for outbound_id, state, count, latest_due in counts:
        entry = by_outbound.setdefault(outbound_id, {
            "id": outbound_id, "pending": 0, "sending": 0, "sent": 0, "deferred": 0,
            "failed": 0, "paused": 0, "cancelled": 0, "next_retry": None})
        entry[state] = count
        if state == "deferred" and latest_due is not None:
            entry["next_retry"] = latest_due.isoformat()
    out = []
    for outbound_id, entry in sorted(by_outbound.items()):
        remaining = int(entry["pending"]) + int(entry["sending"]) + int(entry["deferred"])
        # A paused message is not finished: it is listed until it is resumed or cancelled.
        if not remaining and not entry["paused"] and not include_finished:
            continue
        rate = recent.get(outbound_id, 0) / window.total_seconds()
        eta: float | None = remaining / rate if rate and remaining else (
            0.0 if not remaining and not entry["paused"] else None)
        if entry["next_retry"] and eta is not None:
            retry_in = (dt.datetime.fromisoformat(str(entry["next_retry"])) - now).total_seconds()
            eta = max(eta, retry_in)
        entry["state"] = ("sending" if int(entry["pending"]) + int(entry["deferred"]) else
                          "paused" if entry["paused"] else
                          "sending" if remaining else
                          "cancelled" if entry["cancelled"] else "done")
        entry.update(total=remaining + sum(int(entry[s]) for s in ("sent", "failed", "paused",
                                                                   "cancelled")),
                     remaining=remaining, rate_per_s=round(rate, 1),
                     eta_seconds=None if eta is None else round(eta, 1))
        out.append(entry)
    return out
