"""Sending rates shared by every worker process, enforced through due times.

Each limit is a GCRA ("virtual scheduling") cell kept in the database: its theoretical
arrival time (``tat``) moves forward by one emission interval per message.  A chunk that
is claimed takes slots from the cells that apply to it; copies whose slot is in the future
are not sent now but deferred to that slot (the sweeper hands them back when due), so no
actor ever sleeps and the limits hold across processes and machines.

Limits: a global rate (messages per second), a rolling window (N per period, which allows a
burst of N), and per-destination-domain rates, from settings or learnt: a domain that
answers 4.7.x ("try later, you are sending too fast") is slowed on its own for an hour.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select

from mailer.models import Throttle

__all__ = ["Limit", "Throttles", "due_times", "learned_limit"]

SLACK = dt.timedelta(milliseconds=250)  # slots this close are sent now
LEARNT_RATE = 1.0  # messages/s for a domain that pushed back with 4.7.x
LEARNT_FOR = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Limit:
    key: str  # "global", "window", "domain:outlook.com"
    interval: float  # seconds between messages at the steady rate
    tolerance: float = 0.0  # seconds of burst allowed ahead of the steady rate

    @classmethod
    def rate(cls, key: str, per_second: float, *, burst: float = 1.0) -> Limit:
        return cls(key, 1.0 / per_second, max(0.0, burst - 1) / per_second)

    @classmethod
    def window(cls, key: str, count: int, seconds: float) -> Limit:
        interval = seconds / count
        return cls(key, interval, seconds - interval)


def due_times(tat: dt.datetime | None, now: dt.datetime, limit: Limit,
              count: int) -> tuple[list[dt.datetime], dt.datetime]:
    """Pure GCRA: the earliest time each of ``count`` messages may go, and the new tat."""
    start = max(tat or now, now)
    step = dt.timedelta(seconds=limit.interval)
    tolerance = dt.timedelta(seconds=limit.tolerance)
    dues = [max(now, start + step * k - tolerance) for k in range(count)]
    return dues, start + step * count


def learned_limit(domain: str) -> Limit:
    return Limit.rate(f"domain:{domain}", LEARNT_RATE, burst=max(1.0, LEARNT_RATE))


class Throttles:
    """The configured limits; ``plan`` runs inside the claim's write transaction."""

    def __init__(self, *, rate: float = 0.0, window: tuple[int, float] | None = None,
                 domains: dict[str, float] | None = None) -> None:
        self.fixed: list[Limit] = []
        if rate > 0:
            # A second's worth of burst: the clock hands due rows back once a second.
            self.fixed.append(Limit.rate("global", rate, burst=max(1.0, rate)))
        if window is not None:
            self.fixed.append(Limit.window("window", *window))
        self.domains = {d.lower(): Limit.rate(f"domain:{d.lower()}", r, burst=max(1.0, r))
                        for d, r in (domains or {}).items()}

    @property
    def active(self) -> bool:
        return bool(self.fixed or self.domains)

    def plan(self, conn: Connection, recipients: Sequence[str],
             now: dt.datetime) -> list[dt.datetime]:
        """Due time per recipient (same order); slots are spent only by copies that go now.

        A copy that must wait is deferred to the time its next slot frees, without taking
        that slot: it competes again when it comes back, so waiting never pushes others out.
        """
        cells = {row.key: row for row in conn.execute(select(Throttle.__table__))}
        learnt = {key.removeprefix("domain:"): learned_limit(key.removeprefix("domain:"))
                  for key, row in cells.items()
                  if key.startswith("domain:") and row.until is not None and row.until > now}

        def tat_of(key: str) -> dt.datetime | None:
            return cells[key].tat if key in cells else None

        dues = [now] * len(recipients)
        limit_of: dict[int, Limit] = {}
        by_domain: dict[str, list[int]] = {}
        for index, address in enumerate(recipients):
            by_domain.setdefault(address.rpartition("@")[2].lower(), []).append(index)
        for domain, indexes in by_domain.items():
            limit = learnt.get(domain) or self.domains.get(domain)
            if limit is None:
                continue
            slots, _ = due_times(tat_of(limit.key), now, limit, len(indexes))
            for index, slot in zip(indexes, slots, strict=True):
                dues[index], limit_of[index] = slot, limit
        candidates = [i for i, due in enumerate(dues) if due <= now + SLACK]
        ready = candidates
        for limit in self.fixed:
            slots, _ = due_times(tat_of(limit.key), now, limit, len(candidates))
            fits = sum(1 for slot in slots if slot <= now + SLACK)
            ready = ready[:fits] if fits < len(ready) else ready
            if fits < len(slots):
                for index in candidates[fits:]:
                    dues[index] = max(dues[index], slots[fits])
        ready_set = set(ready)
        for index in candidates:
            if index not in ready_set and dues[index] <= now + SLACK:
                dues[index] = now + SLACK * 2
        # Spend the slots of the copies that go now.
        spent: dict[Limit, int] = {limit: len(ready) for limit in self.fixed}
        for index in ready:
            if index in limit_of:
                spent[limit_of[index]] = spent.get(limit_of[index], 0) + 1
        for limit, count in spent.items():
            if count:
                _, tat = due_times(tat_of(limit.key), now, limit, count)
                self._store(conn, limit.key, tat, cells)
        return [now if i in ready_set else dues[i] for i in range(len(recipients))]

    def _store(self, conn: Connection, key: str, tat: dt.datetime, cells) -> None:
        table = Throttle.__table__
        if key in cells:
            conn.execute(table.update().where(table.c.key == key).values(tat=tat))
        else:
            conn.execute(table.insert().values(key=key, tat=tat, interval=0.0, until=None))

    @staticmethod
    def learn(conn: Connection, domain: str, now: dt.datetime) -> None:
        """A domain answered 4.7.x: slow it down on its own for a while."""
        table = Throttle.__table__
        key = f"domain:{domain.lower()}"
        limit = learned_limit(domain)
        found = conn.execute(select(table.c.key).where(table.c.key == key)).first()
        values = {"interval": limit.interval, "until": now + LEARNT_FOR}
        if found:
            conn.execute(table.update().where(table.c.key == key).values(**values))
        else:
            conn.execute(table.insert().values(key=key, tat=now, **values))
