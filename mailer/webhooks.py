"""Webhooks: events written in the changing transaction (outbox), POSTed by the clock.

``emit(conn, event, data)`` adds one ``webhook_events`` row per webhook that wants the
event, in the caller's transaction: the event exists if and only if the change does.
``deliver_due_webhooks`` claims due rows (pushing their next attempt out by a lease, so
several clocks never send one twice at once), POSTs them outside any transaction, and
records the results.  Each POST carries::

    X-Citymail-Event: member.added
    X-Citymail-Delivery: 42                 (the webhook_events id; the same on a retry)
    X-Citymail-Timestamp: 1767225600        (Unix seconds of this attempt)
    X-Citymail-Signature: sha256=HEX        (HMAC-SHA256 of "TIMESTAMP.BODY" with the secret)

A non-2xx answer, a connection error or no answer within 10 s is retried with exponential
back-off and jitter for 24 hours, then the row is marked ``failed``.  ``Courier`` runs the
deliveries in a thread of their own, so a slow receiver never holds up the clock's mail.

Errors::

    CitymailError
     └── InvalidInput
          └── WebhookError      a URL or event name that cannot be used
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import random
import secrets
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from mailer.db import reading, utcnow, writing
from mailer.errors import InvalidInput
from mailer.models import MailingList, Member
from mailer.models_api import Webhook, WebhookEvent
from mailer.settings import Settings

__all__ = [
    "EVENTS", "Attempt", "Courier", "WebhookError", "add_webhook", "courier",
    "deliver_due_webhooks", "emit", "list_webhooks", "listeners", "remove_webhook",
    "retry_delay", "signature", "subscription_changed",
]

log = logging.getLogger(__name__)

EVENTS: dict[str, str] = {
    "member.added": "a person was added (league member or newsletter subscriber)",
    "member.removed": "a member was disabled (roster sync) or erased (privacy request)",
    "subscription.changed": "someone joined, left, changed mode or was removed for bounces",
    "issue.sent": "a newsletter issue finished sending",
}
TIMEOUT = 10.0  # seconds a receiver has to answer
GIVE_UP = dt.timedelta(hours=24)
KEEP = dt.timedelta(days=30)  # delivered and failed events are kept this long, for the record
LEASE = dt.timedelta(minutes=5)  # a claimed row is retried after this if its sender died
FIRST_RETRY = 30.0  # seconds; doubles per attempt
MAX_RETRY = 3600.0
BATCH = 50
PARALLEL = 8

E = WebhookEvent.__table__
H = Webhook.__table__


class WebhookError(InvalidInput):
    """A webhook URL or event name that cannot be used."""


# -- managing hooks ----------------------------------------------------------------------------
def check_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError(f"a webhook URL must be http(s)://HOST/PATH, got {url!r}")
    return url.strip()


def check_events(events: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(events))
    unknown = [e for e in chosen if e not in EVENTS]
    if unknown or not chosen:
        raise WebhookError(f"events are one or more of {', '.join(EVENTS)}; "
                           f"got {', '.join(unknown) or 'none'}")
    return chosen


def add_webhook(conn: Connection, url: str, events: Iterable[str]) -> tuple[int, str]:
    """Register a receiver; returns its id and its new secret (shown once to the admin)."""
    secret = "whsec_" + secrets.token_urlsafe(32)
    hook_id = conn.execute(insert(H).values(url=check_url(url), secret=secret,
                                            events=check_events(events), created_at=utcnow())
                           .returning(H.c.id)).scalar_one()
    return hook_id, secret


def list_webhooks(conn: Connection) -> list[dict[str, Any]]:
    """Every webhook with its event counts by state (secrets are never shown again)."""
    counts: dict[int, dict[str, int]] = {}
    for hook_id, state, n in conn.execute(select(E.c.webhook_id, E.c.state, func.count())
                                          .group_by(E.c.webhook_id, E.c.state)):
        counts.setdefault(hook_id, {"pending": 0, "delivered": 0, "failed": 0})[state] = n
    return [{"id": r.id, "url": r.url, "events": list(r.events),
             "created": r.created_at.isoformat(),
             **counts.get(r.id, {"pending": 0, "delivered": 0, "failed": 0})}
            for r in conn.execute(select(H).order_by(H.c.id))]


def remove_webhook(conn: Connection, ident: str) -> int:
    """Remove a webhook by id or URL (its undelivered events go with it); returns how many."""
    where = H.c.id == int(ident) if ident.isdigit() else H.c.url == ident
    return conn.execute(delete(H).where(where)).rowcount or 0


# -- the outbox --------------------------------------------------------------------------------
def listeners(conn: Connection, event: str) -> list[int]:
    """The webhooks that want ``event`` (a small table: read whole)."""
    if event not in EVENTS:
        raise WebhookError(f"unknown webhook event {event!r}")
    return [r.id for r in conn.execute(select(H.c.id, H.c.events)) if event in r.events]


def subscription_changed(conn: Connection, member_id: int, lists: Sequence[str | int], *,
                         status: str, source: str, mode: str | None = None) -> int:
    """Emit ``subscription.changed`` for one person and some lists (names or ids), looked
    up only when a webhook listens, so the usual case costs one small query."""
    if not lists or not listeners(conn, "subscription.changed"):
        return 0
    email = conn.scalar(select(Member.email).where(Member.id == member_id))
    names = [x for x in lists if isinstance(x, str)]
    ids = [x for x in lists if isinstance(x, int)]
    rows = conn.execute(select(MailingList.name, MailingList.kind)
                        .where(MailingList.name.in_(names) | MailingList.id.in_(ids))).all()
    return emit(conn, "subscription.changed", [
        {"email": email, "list": r.name, "kind": r.kind, "status": status, "mode": mode,
         "source": source} for r in rows])


def emit(conn: Connection, event: str, data: Mapping[str, Any] | Sequence[Mapping[str, Any]],
         *, now: dt.datetime | None = None) -> int:
    """Queue ``event`` (one payload, or several) for every webhook that wants it.

    Runs in the caller's transaction; costs one small query when nobody listens.
    """
    items = [data] if isinstance(data, Mapping) else list(data)
    hooks = listeners(conn, event) if items else []
    if not hooks:
        return 0
    now = now or utcnow()
    rows = []
    for item in items:
        body = json.dumps({"id": uuid.uuid4().hex, "event": event, "created": now.isoformat(),
                           "data": dict(item)}, ensure_ascii=False, default=str)
        rows += [{"webhook_id": h, "event": event, "body": body, "state": "pending",
                  "attempts": 0, "created_at": now, "next_attempt_at": now} for h in hooks]
    conn.execute(insert(E), rows)
    return len(rows)


# -- delivery ----------------------------------------------------------------------------------
def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Citymail-Signature value: HMAC-SHA256 of ``TIMESTAMP.BODY``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def retry_delay(attempts: int, *, rng: random.Random | None = None) -> float:
    """Seconds before the next try after ``attempts`` failures: doubling, with jitter."""
    base = min(MAX_RETRY, FIRST_RETRY * 2 ** max(0, attempts - 1))
    return base * (rng or random).uniform(0.5, 1.0)


@dataclass(frozen=True)
class Attempt:
    id: int
    event: str
    body: str
    url: str
    secret: str
    attempts: int  # including this one
    created_at: dt.datetime


# One POST: (url, headers, body) -> HTTP status; raises OSError when nothing answered.
Post = Callable[[str, dict[str, str], bytes], int]


_client: Any = None
_client_lock = threading.Lock()


def http_post(url: str, headers: dict[str, str], body: bytes) -> int:
    """The real POST (httpx; redirects are not followed: a receiver answers itself)."""
    import httpx  # here, not at import: every writer of members imports this module

    global _client
    with _client_lock:  # one client per process: building its TLS context costs ~0.2 s
        if _client is None:
            _client = httpx.Client(timeout=TIMEOUT, follow_redirects=False)
    try:
        return _client.post(url, headers=headers, content=body).status_code
    except httpx.HTTPError as exc:  # timeouts, refused connections, bad TLS
        raise OSError(f"{type(exc).__name__}: {exc}") from exc


def _claim(conn: Connection, now: dt.datetime, limit: int) -> list[Attempt]:
    due = (E.c.state == "pending") & (E.c.next_attempt_at <= now)
    ids = list(conn.scalars(select(E.c.id).where(due).order_by(E.c.next_attempt_at, E.c.id)
                            .limit(limit)))
    conn.execute(delete(E).where(E.c.state != "pending", E.c.created_at < now - KEEP))
    if not ids:
        return []
    conn.execute(update(E).where(E.c.id.in_(ids), due)
                 .values(next_attempt_at=now + LEASE, attempts=E.c.attempts + 1))
    rows = conn.execute(select(E.c.id, E.c.event, E.c.body, E.c.attempts, E.c.created_at,
                               H.c.url, H.c.secret)
                        .join(H, H.c.id == E.c.webhook_id).where(E.c.id.in_(ids))).all()
    return [Attempt(r.id, r.event, r.body, r.url, r.secret, r.attempts, r.created_at)
            for r in rows]


def _send(attempt: Attempt, post: Post) -> str | None:
    """POST one event; None when the receiver took it, else why not."""
    body = attempt.body.encode()
    stamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": "citymail-webhooks",
               "X-Citymail-Event": attempt.event, "X-Citymail-Delivery": str(attempt.id),
               "X-Citymail-Timestamp": stamp,
               "X-Citymail-Signature": signature(attempt.secret, stamp, body)}
    try:
        status = post(attempt.url, headers, body)
    except OSError as exc:
        return f"no answer: {exc}"[:500]
    return None if 200 <= status < 300 else f"HTTP {status}"


def _record(conn: Connection, attempt: Attempt, error: str | None, *, now: dt.datetime,
            rng: random.Random | None) -> None:
    mine = (E.c.id == attempt.id) & (E.c.state == "pending")
    if error is None:
        conn.execute(update(E).where(mine).values(state="delivered", delivered_at=now,
                                                  last_error=None))
        return
    retry_at = now + dt.timedelta(seconds=retry_delay(attempt.attempts, rng=rng))
    if retry_at - attempt.created_at > GIVE_UP:
        conn.execute(update(E).where(mine).values(state="failed", last_error=error))
        log.warning("webhook event %d to %s failed for good: %s", attempt.id, attempt.url,
                    error)
    else:
        conn.execute(update(E).where(mine).values(next_attempt_at=retry_at, last_error=error))


def webhooks_due(conn: Connection, *, now: dt.datetime) -> bool:
    """Cheap read-only check: is any event waiting to be sent?"""
    return conn.execute(select(E.c.id).where(E.c.state == "pending", E.c.next_attempt_at <= now)
                        .limit(1)).first() is not None


def deliver_due_webhooks(engine: Engine, settings: Settings, *, now: dt.datetime | None = None,
                         post: Post = http_post, rng: random.Random | None = None,
                         limit: int = BATCH) -> int:
    """POST the events that are due; returns how many were delivered.

    The HTTP exchanges run outside any transaction, several at a time.
    """
    fixed = now  # tests pass a time; otherwise each step reads the clock
    now = now or utcnow()
    with reading(engine) as conn:  # the common case: nothing, and no write lock
        if not webhooks_due(conn, now=now):
            return 0
    with writing(engine) as conn:
        claimed = _claim(conn, now, limit)
    if not claimed:
        return 0
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(claimed))) as pool:
        errors = list(pool.map(lambda a: _send(a, post), claimed))
    done = fixed or utcnow()
    with writing(engine) as conn:
        for attempt, error in zip(claimed, errors, strict=True):
            _record(conn, attempt, error, now=done, rng=rng)
    return sum(e is None for e in errors)


class Courier:
    """Runs ``deliver_due_webhooks`` in its own thread, one run at a time (clock duty)."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._thread: threading.Thread | None = None

    def kick(self) -> bool:
        """Start a run if events are due and none is running; True if one was started."""
        if self._thread is not None and self._thread.is_alive():
            return False
        with reading(self.engine) as conn:
            if not webhooks_due(conn, now=utcnow()):
                return False
        self._thread = threading.Thread(target=self._run, name="citymail-webhooks",
                                        daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        try:
            deliver_due_webhooks(self.engine, self.settings)
        except Exception:  # a thread boundary: log, the next tick tries again
            log.exception("webhook delivery failed; trying again at the next tick")


_couriers: weakref.WeakKeyDictionary[Engine, Courier] = weakref.WeakKeyDictionary()
_couriers_lock = threading.Lock()


def courier(engine: Engine, settings: Settings) -> Courier:
    """The one ``Courier`` of ``engine`` in this process."""
    with _couriers_lock:
        found = _couriers.get(engine)
        if found is None:
            found = _couriers[engine] = Courier(engine, settings)
        return found
