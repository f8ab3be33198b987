"""Retention: old delivery rows and raw bytes that nobody will read again are pruned.

* Delivery rows of *finished* outbound messages (nothing pending, sending, deferred or
  paused) created more than ``keep_deliveries`` ago are deleted.
* The raw bytes of processed inbound messages older than ``keep_raw`` are emptied unless
  the message is an archived post, a post still waiting for a moderator, or a
  subscription request still waiting for someone; rejected and discarded posts, bounces
  and commands go.  The row itself stays (its size, sender and time remain for
  statistics).  Archived posts are never pruned.

Work is done in small batches, each its own short write transaction with a pause after
it, so the gateway's commits (which back its 250s) never wait long behind a prune.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from sqlalchemy import Engine, column, delete, exists, func, select, table, update

from mailer.db import reading, utcnow, writing
from mailer.leases import take_turn
from mailer.models import Delivery, Held, Inbound, Outbound, Post

__all__ = ["PruneResult", "Pruner", "prune"]

log = logging.getLogger(__name__)

D = Delivery.__table__
IN = Inbound.__table__
UNFINISHED = ("pending", "sending", "deferred", "paused")
BATCH = 500
PAUSE = 0.02  # seconds between batches: room for the gateway's commits
# Subscription requests (listservs) that still wait for the person or an owner.
LIST_REQUESTS = table("list_requests", column("inbound_id"), column("state"))
WAITING_REQUEST = ("pending", "confirmed")


@dataclass(frozen=True)
class PruneResult:
    deliveries: int
    raw_messages: int
    raw_bytes: int
    dry_run: bool

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def _finished_outbound(cutoff: dt.datetime):
    unfinished = exists().where(D.c.outbound_id == Outbound.id, D.c.state.in_(UNFINISHED))
    has_rows = exists().where(D.c.outbound_id == Outbound.id)
    return select(Outbound.id).where(Outbound.created_at < cutoff, has_rows, ~unfinished)


def _raw_prunable(cutoff: dt.datetime, *, with_requests: bool):
    cond = [IN.c.state.in_(("done", "failed")), IN.c.received_at < cutoff,
            func.length(IN.c.raw) > 0,
            ~exists().where(Post.inbound_id == IN.c.id),
            ~exists().where(Held.inbound_id == IN.c.id, Held.state == "held")]
    if with_requests:
        cond.append(~exists().where(LIST_REQUESTS.c.inbound_id == IN.c.id,
                                    LIST_REQUESTS.c.state.in_(WAITING_REQUEST)))
    return cond


def _has_requests_table(engine: Engine) -> bool:
    from sqlalchemy import inspect

    return inspect(engine).has_table("list_requests")


def prune(engine: Engine, *, keep_deliveries: dt.timedelta, keep_raw: dt.timedelta,
          now: dt.datetime | None = None, dry_run: bool = False, batch: int = BATCH,
          pause: float = PAUSE, stopping: Callable[[], bool] = lambda: False) -> PruneResult:
    """Prune what is older than the retention periods; ``dry_run`` only counts."""
    now = now or utcnow()
    d_cut, r_cut = now - keep_deliveries, now - keep_raw
    raw_cond = _raw_prunable(r_cut, with_requests=_has_requests_table(engine))
    if dry_run:
        with reading(engine) as conn:
            deliveries = conn.scalar(select(func.count()).select_from(D).where(
                D.c.outbound_id.in_(_finished_outbound(d_cut)))) or 0
            raw = conn.execute(select(func.count(), func.coalesce(func.sum(IN.c.size), 0))
                               .where(*raw_cond)).one()
        return PruneResult(int(deliveries), int(raw[0]), int(raw[1]), True)

    deliveries = raw_messages = raw_bytes = 0
    while not stopping():
        with writing(engine) as conn:
            ids = list(conn.scalars(select(D.c.id).where(
                D.c.outbound_id.in_(_finished_outbound(d_cut))).limit(batch)))
            if ids:
                conn.execute(delete(D).where(D.c.id.in_(ids)))
        deliveries += len(ids)
        if len(ids) < batch:
            break
        time.sleep(pause)
    while not stopping():
        with writing(engine) as conn:
            rows = conn.execute(select(IN.c.id, IN.c.size).where(*raw_cond).order_by(IN.c.id)
                                .limit(batch)).all()
            if rows:
                conn.execute(update(IN).where(IN.c.id.in_([r.id for r in rows])).values(raw=b""))
        raw_messages += len(rows)
        raw_bytes += sum(r.size or 0 for r in rows)
        if len(rows) < batch:
            break
        time.sleep(pause)
    if deliveries or raw_messages:
        log.info("pruned %d delivery rows and the raw bytes of %d messages (%d bytes)",
                 deliveries, raw_messages, raw_bytes)
    return PruneResult(deliveries, raw_messages, raw_bytes, False)


class Pruner:
    """The clock's daily prune: one turn a day over all clocks, in its own thread."""

    TURN = "prune-daily"

    def __init__(self, engine: Engine, *, holder: str, keep_deliveries: dt.timedelta,
                 keep_raw: dt.timedelta, every: dt.timedelta = dt.timedelta(days=1),
                 check_every: float = 600.0) -> None:
        self.engine = engine
        self.holder = holder
        self.keep_deliveries = keep_deliveries
        self.keep_raw = keep_raw
        self.every = every
        self.check_every = check_every
        self._last_check = float("-inf")
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()

    def maybe_start(self) -> bool:
        """Start a prune if this clock takes today's turn (checked every few minutes)."""
        now = time.monotonic()
        if now - self._last_check < self.check_every or (
                self._thread is not None and self._thread.is_alive()):
            return False
        self._last_check = now
        if not take_turn(self.engine, self.TURN, self.holder, self.every):
            return False
        self._thread = threading.Thread(target=self._run, name="citymail-prune", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        try:
            prune(self.engine, keep_deliveries=self.keep_deliveries, keep_raw=self.keep_raw,
                  stopping=self.stopping.is_set)
        except Exception:
            log.exception("prune failed; the next turn tries again")

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
