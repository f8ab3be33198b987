"""Clock leases: a duty that must run in one place at a time runs where its lease is held.

Every worker process runs a clock; scaled out, there are many on many machines.  Duties
such as the newsletter tick, digests or pruning take a named lease in ``clock_leases``
(name, holder, expires_at).  A lease is taken or renewed with one conditional UPDATE
(``WHERE holder = me OR expires_at <= now``), or an INSERT that does nothing when another
clock inserted first, so two clocks can never both believe they hold it.  A holder that
dies stops renewing and another clock takes over after ``ttl``.  Machines' clocks must
agree to well within the ttl (NTP).

``Leases`` caches what it learnt, so that the holder writes only when half the ttl is
spent and the others ask again only every quarter ttl (or when the lease they saw has
expired): a few statements a minute for all duties, never one per tick.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, String, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from mailer.db import UTCDateTime, utcnow, writing
from mailer.models import Base

__all__ = ["ClockLease", "Leases", "release", "take_turn", "try_lease"]


class ClockLease(Base):
    """Who runs a once-at-a-time duty, until when."""

    __tablename__ = "clock_leases"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


L = ClockLease.__table__


def _insert_if_absent(conn: Connection, name: str, holder: str, expires: dt.datetime) -> bool:
    """INSERT that yields to a row inserted first by another clock (no exception)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(L).values(name=name, holder=holder, expires_at=expires)
    return bool(conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"])).rowcount)


def _acquire(conn: Connection, name: str, holder: str, ttl: dt.timedelta, now: dt.datetime,
             *, renew: bool) -> tuple[bool, dt.datetime | None]:
    """Take (or, with ``renew``, keep) the lease; returns (held, expiry as seen)."""
    free = L.c.expires_at <= now
    cond = (L.c.holder == holder) | free if renew else free
    expires = now + ttl
    if conn.execute(update(L).where(L.c.name == name, cond)
                    .values(holder=holder, expires_at=expires)).rowcount:
        return True, expires
    if _insert_if_absent(conn, name, holder, expires):
        return True, expires
    seen = conn.execute(select(L.c.expires_at).where(L.c.name == name)).scalar()
    return False, seen


def try_lease(engine: Engine, name: str, holder: str, ttl: dt.timedelta, *,
              now: dt.datetime | None = None) -> bool:
    """Take the lease ``name`` for ``holder``, or renew it if already theirs."""
    with writing(engine) as conn:
        return _acquire(conn, name, holder, ttl, now or utcnow(), renew=True)[0]


def take_turn(engine: Engine, name: str, holder: str, every: dt.timedelta, *,
              now: dt.datetime | None = None) -> bool:
    """True at most once per ``every`` over all clocks (a daily duty's turn).

    Unlike ``try_lease`` the holder cannot renew: the turn is spent until it expires.
    """
    with writing(engine) as conn:
        return _acquire(conn, name, holder, every, now or utcnow(), renew=False)[0]


def release(engine: Engine, holder: str, names: list[str] | None = None) -> int:
    """Give up ``holder``'s leases (a clock that stops): another clock takes over at once."""
    stmt = delete(L).where(L.c.holder == holder)
    if names is not None:
        stmt = stmt.where(L.c.name.in_(names))
    with writing(engine) as conn:
        return conn.execute(stmt).rowcount or 0


@dataclass
class Leases:
    """One clock's view of its leases, renewed lazily to keep writes rare."""

    engine: Engine
    holder: str
    ttl: dt.timedelta = dt.timedelta(seconds=60)
    _mine: dict[str, dt.datetime] = field(default_factory=dict)  # name -> our expiry
    _theirs: dict[str, dt.datetime] = field(default_factory=dict)  # name -> when to look again

    def held(self, name: str, *, now: dt.datetime | None = None) -> bool:
        """True when this clock may run the duty ``name`` now."""
        now = now or utcnow()
        mine = self._mine.get(name)
        if mine is not None and now < mine - self.ttl / 2:
            return True  # ours, with time to spare: no query
        theirs = self._theirs.get(name)
        if mine is None and theirs is not None and now < theirs:
            return False  # another clock's, not yet expired: no query
        with writing(self.engine) as conn:
            ok, expires = _acquire(conn, name, self.holder, self.ttl, now, renew=True)
        self._mine.pop(name, None)
        self._theirs.pop(name, None)
        if ok and expires is not None:
            self._mine[name] = expires
        elif expires is not None:  # look again at its expiry, or sooner if it is released
            self._theirs[name] = min(expires, now + self.ttl / 4)
        return ok

    def release_all(self) -> None:
        if self._mine:
            release(self.engine, self.holder, list(self._mine))
        self._mine.clear()
