"""Prometheus metrics read from the database at scrape time.

Gateway, workers and clock run in several processes, on several machines when scaled
out; counters kept in one process's memory would each tell a part of the story.  The
database knows the whole of it, so every scrape runs a handful of aggregate queries (in
one read transaction, no write lock) and reports gauges.  Totals are gauges, not
counters: retention (mailer/retention.py) deletes old delivery rows, so they can fall.

``read_snapshot`` is the I/O; ``families`` turns a snapshot into metric families, and
``DatabaseCollector`` is what a ``prometheus_client`` registry calls.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, exists, func, select

from mailer.db import reading, utcnow
from mailer.models import Delivery, Held, Inbound, Post, WorkerBeat
from mailer.models_bounces import BounceEvent

__all__ = ["DELIVERY_STATES", "DatabaseCollector", "Snapshot", "families", "read_snapshot"]

DELIVERY_STATES = ("pending", "sending", "sent", "deferred", "failed", "paused", "cancelled")
D = Delivery.__table__
IN = Inbound.__table__
# Extra readers (e.g. newsletters, which sit above mailer) add (name, help, {labels: value}).
Extra = Callable[[Connection], Iterator[tuple[str, str, str, dict[str, float]]]]


@dataclass(frozen=True)
class Snapshot:
    inbound: dict[str, int]  # outcome -> messages
    deliveries: dict[str, int]  # state -> rows
    bounces: dict[str, int]  # kind -> events
    inbound_lag: float  # seconds the oldest unprocessed message has waited (0: none)
    delivery_lag: float  # seconds the oldest due pending delivery has waited (0: none)
    workers: dict[str, int]  # host -> live worker processes
    extra: list[tuple[str, str, str, dict[str, float]]] = field(default_factory=list)


def _inbound_outcomes(conn: Connection) -> dict[str, int]:
    """Counts from indexes only (no per-message subquery: scrapes stay cheap at 1M rows)."""
    states = dict(conn.execute(select(IN.c.state, func.count()).group_by(IN.c.state)).all())
    accepted = conn.scalar(select(func.count(func.distinct(Post.inbound_id)))) or 0
    held = conn.scalar(select(func.count(func.distinct(Held.inbound_id))).where(
        ~exists().where(Post.inbound_id == Held.inbound_id))) or 0
    done = int(states.get("done", 0))
    return {"accepted": int(accepted), "held": int(held),
            "other": max(0, done - int(accepted) - int(held)),
            "failed": int(states.get("failed", 0)), "waiting": int(states.get("received", 0))}


def _age(now: dt.datetime, oldest: dt.datetime | None) -> float:
    return max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0


def read_snapshot(conn: Connection, *, now: dt.datetime | None = None,
                  lease: dt.timedelta = dt.timedelta(seconds=30),
                  extras: tuple[Extra, ...] = ()) -> Snapshot:
    """Everything /metrics reports, from one read transaction."""
    now = now or utcnow()
    deliveries = {s: 0 for s in DELIVERY_STATES} | {
        str(k): int(v) for k, v in conn.execute(
            select(D.c.state, func.count()).group_by(D.c.state)).all()}
    bounces = {str(k): int(v) for k, v in conn.execute(
        select(BounceEvent.kind, func.count()).group_by(BounceEvent.kind)).all()}
    oldest_inbound = conn.scalar(select(func.min(IN.c.received_at, type_=IN.c.received_at.type))
                                 .where(IN.c.state == "received"))
    # A due row waits for a worker: pending, or deferred whose retry time has come.
    oldest_due = conn.scalar(select(func.min(D.c.due_at, type_=D.c.due_at.type)).where(
        D.c.state.in_(("pending", "deferred")), D.c.due_at <= now))
    workers = {str(h): int(n) for h, n in conn.execute(
        select(WorkerBeat.host, func.count()).where(WorkerBeat.beat_at > now - lease)
        .group_by(WorkerBeat.host)).all()}
    extra = [item for reader in extras for item in reader(conn)]
    return Snapshot(_inbound_outcomes(conn), deliveries, bounces, _age(now, oldest_inbound),
                    _age(now, oldest_due), workers, extra)


def _gauge(name: str, doc: str, label: str, values: dict[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def families(s: Snapshot) -> list[Metric]:
    """The metric families of one snapshot (pure)."""
    lag = GaugeMetricFamily("citymail_queue_lag_seconds",
                            "Age of the oldest message waiting in a queue (0 when empty)",
                            labels=["queue"])
    lag.add_metric(["inbound"], s.inbound_lag)
    lag.add_metric(["deliveries"], s.delivery_lag)
    out: list[Metric] = [
        _gauge("citymail_inbound_messages",
               "Messages the gateway stored, by outcome: accepted (posted to a list), held "
               "(for a moderator), other (rejected or discarded posts, commands, bounces), "
               "failed (processing error), waiting (not processed yet)",
               "outcome", dict(s.inbound)),
        _gauge("citymail_deliveries", "Delivery rows (one per recipient copy) by state",
               "state", dict(s.deliveries)),
        _gauge("citymail_bounce_events", "Bounce events recorded, by kind",
               "kind", dict(s.bounces)),
        lag,
        _gauge("citymail_workers_alive", "Worker processes with a recent heartbeat, by host",
               "host", dict(s.workers)),
    ]
    total = GaugeMetricFamily("citymail_workers_alive_total", "Worker processes alive")
    total.add_metric([], sum(s.workers.values()))
    out.append(total)
    for name, doc, label, values in s.extra:
        out.append(_gauge(name, doc, label, values))
    return out


class DatabaseCollector(Collector):
    """A custom collector: queries the database on every scrape."""

    def __init__(self, engine: Engine, *, lease: dt.timedelta,
                 extras: tuple[Extra, ...] = ()) -> None:
        self.engine = engine
        self.lease = lease
        self.extras = extras

    def collect(self) -> Iterator[Metric]:
        with reading(self.engine) as conn:
            snapshot = read_snapshot(conn, lease=self.lease, extras=self.extras)
        yield from families(snapshot)
