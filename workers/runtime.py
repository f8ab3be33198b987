"""Wiring of one worker process: broker, actors, the chunk sender and the clock.

The database is the source of truth; Dramatiq messages only carry ids.  Actors check and
claim rows, so a message delivered twice does nothing the second time.  Retries belong to
the clock's sweeper (Dramatiq's own Retries are off for these actors).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import dramatiq
from sqlalchemy import Engine, delete, insert, select, update

from listservs import digests
from listservs.moderation import expire_due
from mailer import bounce_duties, delivery, webhooks
from mailer.db import reading, utcnow, writing
from mailer.dkim_sign import Signer
from mailer.leases import Leases
from mailer.models import Inbound, Outbound, WorkerBeat
from mailer.retention import Pruner
from mailer.sending import ChunkSender
from mailer.settings import Settings
from mailer.transport import make_sender
from newsletters import dispatch as newsletters
from newsletters.feedpoll import FeedPoller
from workers.inbound import InboundProcessor

__all__ = ["Runtime", "build_runtime"]

log = logging.getLogger(__name__)

INBOUND = Inbound.__table__
EXPIRY_EVERY = 60.0  # seconds between sweeps for held posts and requests past their time
INBOUND_BATCH = 50
ACTOR_OPTIONS = {"max_retries": 0, "time_limit": 15 * 60 * 1000}


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    broker: dramatiq.Broker
    worker_id: str
    process_inbound: dramatiq.Actor
    deliver_chunk: dramatiq.Actor
    processor: InboundProcessor
    chunks: ChunkSender

    def dispatch_chunks(self, outbound_id: int, ranges: list[tuple[int, int]]) -> None:
        for first, last in ranges:
            self.deliver_chunk.send(outbound_id, first, last)

    # -- the clock's duties ------------------------------------------------------------
    def beat(self) -> None:
        now = utcnow()
        with writing(self.engine) as conn:
            updated = conn.execute(update(WorkerBeat).where(WorkerBeat.id == self.worker_id)
                                   .values(beat_at=now)).rowcount
            if not updated:
                conn.execute(insert(WorkerBeat).values(
                    id=self.worker_id, host=socket.gethostname(), pid=os.getpid(),
                    started_at=now, beat_at=now))

    def retire(self) -> None:
        with writing(self.engine) as conn:
            conn.execute(delete(WorkerBeat).where(WorkerBeat.id == self.worker_id))

    def feed_inbound(self, *, stale: dt.timedelta) -> int:
        """Enqueue stored messages nobody has taken: new ones, and ones lost on the way."""
        now = utcnow()
        cond = INBOUND.c.enqueued_at.is_(None) | (INBOUND.c.enqueued_at <= now - stale)
        with writing(self.engine) as conn:
            ids = list(conn.scalars(select(INBOUND.c.id).where(INBOUND.c.state == "received", cond)
                                    .order_by(INBOUND.c.id).limit(5000)))
            if ids:
                conn.execute(update(INBOUND).where(INBOUND.c.id.in_(ids)).values(enqueued_at=now))
        self.send_inbound(ids)
        return len(ids)

    def send_inbound(self, ids: list[int]) -> None:
        """Enqueue in batches: a batch is processed with one write transaction."""
        for start in range(0, len(ids), INBOUND_BATCH):
            self.process_inbound.send(ids[start:start + INBOUND_BATCH])

    def dispatch_new_outbound(self) -> int:
        """Hand the workers messages queued where the broker is out of reach (CLI, web)."""
        waiting = select(Outbound.id).where(Outbound.dispatched_at.is_(None))
        with reading(self.engine) as conn:  # the common case: nothing, and no write lock
            if conn.execute(waiting.limit(1)).first() is None:
                return 0
        with writing(self.engine) as conn:
            ids = list(conn.scalars(update(Outbound)
                                    .where(Outbound.id.in_(waiting.limit(1000).scalar_subquery()))
                                    .values(dispatched_at=utcnow()).returning(Outbound.id)))
            ranges = {i: delivery.pending_ranges(conn, i, self.settings.chunk_size) for i in ids}
        for outbound_id, chunk_ranges in ranges.items():
            self.dispatch_chunks(outbound_id, chunk_ranges)
        return len(ids)

    def start_due_issues(self) -> list[int]:
        """Claim and fan out due newsletter issues; mark finished ones sent."""
        return newsletters.tick(self.engine, self.settings)

    def bounce_duties(self) -> int:
        """Bounce warnings, owner notices and removals that are due (queued as notices)."""
        now = utcnow()
        with reading(self.engine) as conn:  # the common case: nothing, and no write lock
            if not bounce_duties.bounce_duties_due(conn, now=now):
                return 0
        with writing(self.engine) as conn:
            return bounce_duties.run_bounce_duties(conn, self.settings, now=now)

    def deliver_webhooks(self) -> bool:
        """POST due webhook events in their own thread (a read-only check when none is)."""
        return webhooks.courier(self.engine, self.settings).kick()

    def send_due_digests(self) -> int:
        """List digests that are due (read-only when none is); queued for the workers."""
        return digests.send_due_digests(self.engine, self.settings, utcnow())

    def sweep(self, *, lease: dt.timedelta, late: dt.timedelta) -> int:
        """Release dead workers' claims and re-enqueue deliveries that are due or lost."""
        with writing(self.engine) as conn:
            released = delivery.release_dead_claims(conn, lease=lease)
            due = delivery.due_for_dispatch(conn, late=late)
        if released:
            log.warning("released %d deliveries claimed by stopped workers",
                        sum(len(v) for v in released.values()))
        for outbound_id, ids in released.items():
            due.setdefault(outbound_id, []).extend(ids)
        for outbound_id, ids in due.items():
            ids.sort()
            self.dispatch_chunks(outbound_id, delivery.chunk_ranges(ids, self.settings.chunk_size))
        return sum(len(v) for v in due.values())


def build_runtime(settings: Settings, engine: Engine, broker: dramatiq.Broker, *,
                  threads: int) -> Runtime:
    worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    chunks = ChunkSender(engine, settings, worker_id=worker_id,
                         sender_for_thread=lambda: make_sender(settings.relay),
                         issue_copies=newsletters.IssueCopies(engine, settings),
                         signer=Signer.from_settings(settings))
    holder: dict[str, Runtime] = {}

    def process_inbound(inbound_ids: int | list[int]) -> None:
        holder["rt"].processor.process(inbound_ids)

    def deliver_chunk(outbound_id: int, first: int, last: int) -> None:
        chunks.send_chunk(outbound_id, first, last)

    ns = settings.queue_namespace
    inbound_actor = dramatiq.actor(process_inbound, broker=broker, actor_name="process_inbound",
                                   queue_name=f"{ns}-inbound", **ACTOR_OPTIONS)
    chunk_actor = dramatiq.actor(deliver_chunk, broker=broker, actor_name="deliver_chunk",
                                 queue_name=f"{ns}-deliver", **ACTOR_OPTIONS)
    rt = Runtime(settings, engine, broker, worker_id, inbound_actor, chunk_actor,
                 processor=None,  # type: ignore[arg-type]  # set just below
                 chunks=chunks)
    rt.processor = InboundProcessor(engine, settings, dispatch=rt.dispatch_chunks,
                                    threads=threads)
    holder["rt"] = rt
    return rt


class Clock(threading.Thread):
    """Heartbeat, inbound feeder and sweeper of one worker process.

    ``wake`` (embedded mode) is set by the gateway after each commit, so new mail is fed
    to the in-process broker at once instead of at the next tick.
    """

    def __init__(self, rt: Runtime, *, wake=None, embedded: bool, tick: float = 1.0,
                 lease: dt.timedelta = dt.timedelta(seconds=30),
                 late: dt.timedelta = dt.timedelta(seconds=30)) -> None:
        super().__init__(name="citymail-clock", daemon=True)
        self.rt = rt
        self.wake = wake
        self.embedded = embedded
        self.tick = tick
        self.lease = lease
        self.late = late
        # Inbound ids lost on the way get twice as long (60 s with the default lease):
        # processing one takes longer than claiming a chunk.
        self.stale = 2 * late
        self.stopping = threading.Event()
        # Feed fetches are network I/O: they run in their own thread, never in a tick.
        self.feeds = FeedPoller(rt.engine, every=dt.timedelta(
            minutes=rt.settings.feed_poll_minutes))
        # Scaled out, many clocks share the database: once-at-a-time duties run under a
        # lease (mailer/leases.py) in one clock only; another takes over if it stops.
        self.leases = Leases(rt.engine, rt.worker_id, ttl=2 * lease)
        self.pruner = Pruner(rt.engine, holder=rt.worker_id, keep_deliveries=dt.timedelta(
            days=rt.settings.keep_deliveries_days), keep_raw=dt.timedelta(
            days=rt.settings.keep_raw_days))

    def once(self, name: str, duty: Callable[[], object]) -> None:
        """Run ``duty`` if this clock holds its lease (scaled out: in one clock only).

        A duty that fails is logged and tried again next tick; it never keeps the duties
        after it (and the inbound feeder) from running."""
        try:
            if self.leases.held(name):
                duty()
        except Exception:
            log.exception("clock duty %s failed; trying again next tick", name)

    def run(self) -> None:
        last_sweep = last_expiry = last_issues = 0.0
        # An in-process broker starts empty: everything waiting is ours to send now.
        late = dt.timedelta(0) if self.embedded else self.late
        stale = dt.timedelta(0) if self.embedded else self.stale
        while not self.stopping.is_set():
            try:
                now = time.monotonic()
                if self.wake is not None:
                    self.wake.clear()
                self.rt.feed_inbound(stale=stale)
                stale = self.stale
                if now - last_issues >= self.tick:  # before dispatch: sent in this tick
                    self.once("issues", self.rt.start_due_issues)
                    last_issues = now
                self.rt.dispatch_new_outbound()
                if now - last_sweep >= self.tick:
                    self.rt.beat()
                    self.rt.sweep(lease=self.lease, late=late)
                    self.once("bounces", self.rt.bounce_duties)
                    self.once("webhooks", self.rt.deliver_webhooks)
                    self.once("digests", self.rt.send_due_digests)
                    self.once("feeds", self.feeds.maybe_start)
                    self.once("prune", self.pruner.maybe_start)
                    late = self.late
                    last_sweep = now
                if now - last_expiry >= EXPIRY_EVERY:
                    last_expiry = now
                    self.once("moderation-expiry",
                              lambda: expire_due(self.rt.engine, self.rt.settings))
            except Exception:
                log.exception("clock tick failed; trying again")
            if self.wake is not None:
                self.wake.wait(self.tick)
            else:
                self.stopping.wait(self.tick)
        self.pruner.stopping.set()
        try:  # another clock takes these duties over at once instead of after the ttl
            self.leases.release_all()
        except Exception:
            log.exception("could not release the clock's leases; they expire by themselves")

    def stop(self) -> None:
        self.stopping.set()
        if self.wake is not None:
            self.wake.set()
