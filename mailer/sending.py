"""Send one chunk: claim its rows, splice the personal bytes, hand copies to the relay.

The shared bytes of a message are built once (``outbound.body``); per recipient only a few
header lines are put in front of them: the RFC 8058 one-click unsubscribe URL and, through
the envelope, the VERP bounce address.  Python's email package is never run per recipient.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace

from sqlalchemy import Engine, select

from mailer import delivery
from mailer.db import reading
from mailer.decorate import personal_headers
from mailer.dkim_sign import PreparedMessage, Signer, SigningError
from mailer.logfmt import log_ids
from mailer.models import Outbound
from mailer.settings import Settings
from mailer.throttle import Throttles
from mailer.tokens import sign
from mailer.transport import Copy, Result, Sender
from mailer.verp import verp_sender

__all__ = ["ChunkSender", "IssueCopies", "unsubscribe_url"]

IssueCopies = Callable[[Sequence[delivery.Claimed], bytes, str], list[Copy]]
"""Builds the personalised copies of one chunk of a newsletter issue (outbound kind
"issue"): given the claimed rows, the prepared bytes and the bounce local part.  The
workers pass ``newsletters.dispatch.IssueCopies``; mailer never imports newsletters."""

log = logging.getLogger(__name__)
RECORD_PATIENCE = 120.0  # seconds a chunk's results wait for the database to return


def unsubscribe_url(settings: Settings, member_id: int, list_id: int) -> str:
    token = sign(settings.secret_key, "unsubscribe", member_id, list_id)
    return f"{settings.base_url}/u/{token}"


class ChunkSender:
    """Delivers chunks of one process; keeps the few most recent message bodies in memory."""

    def __init__(self, engine: Engine, settings: Settings, *, worker_id: str,
                 sender_for_thread: Callable[[], Sender], cache_size: int = 16,
                 issue_copies: IssueCopies | None = None,
                 signer: Signer | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.worker_id = worker_id
        self.sender_for_thread = sender_for_thread
        self.issue_copies = issue_copies
        self.signer = signer
        self._prepared: OrderedDict[int, tuple[bytes, PreparedMessage | None]] = OrderedDict()
        self._bodies: OrderedDict[int, tuple[bytes, str, bool, str]] = OrderedDict()
        self._lock = threading.Lock()
        self.cache_size = cache_size
        self.throttles = Throttles(rate=settings.rate, window=settings.rate_window,
                                   domains=settings.domain_rates)

    def _body(self, outbound_id: int) -> tuple[bytes, str, bool, str]:
        with self._lock:
            if outbound_id in self._bodies:
                self._bodies.move_to_end(outbound_id)
                return self._bodies[outbound_id]
        with reading(self.engine) as conn:
            kind = conn.execute(select(Outbound.kind)
                                .where(Outbound.id == outbound_id)).scalar_one()
            value = (*delivery.outbound_body(conn, outbound_id), kind)
        with self._lock:
            self._bodies[outbound_id] = value
            while len(self._bodies) > self.cache_size:
                self._bodies.popitem(last=False)
        return value

    def copies(self, claimed: list[delivery.Claimed], body: bytes, bounce_local: str,
               personal: bool, kind: str = "post") -> list[Copy]:
        if kind == "issue" and self.issue_copies is not None:
            return self.issue_copies(claimed, body, bounce_local)
        s = self.settings
        domain = s.list_domain
        if not personal:
            mail_from = f"{bounce_local}@{domain}"
            step = s.relay_max_rcpt
            groups = [claimed[i:i + step] for i in range(0, len(claimed), step)]
            return [Copy(mail_from, tuple((c.delivery_id, c.recipient) for c in group), body)
                    for group in groups]
        key = s.secret_key
        list_name = bounce_local.removesuffix("-bounces")
        mailto = f"mailto:{list_name}-leave@{domain}"
        out = []
        for c in claimed:
            head = b""
            if c.member_id is not None and c.list_id is not None:
                head = personal_headers(unsubscribe_url(s, c.member_id, c.list_id), mailto)
            out.append(Copy(verp_sender(bounce_local, domain, key, c.delivery_id),
                            ((c.delivery_id, c.recipient),), body, head))
        return out

    def _prepared_for(self, outbound_id: int, body: bytes) -> PreparedMessage | None:
        """DKIM work shared by every copy of a message: its body hash, once per process."""
        assert self.signer is not None
        with self._lock:
            cached = self._prepared.get(outbound_id)
            if cached is not None and cached[0] is body:
                return cached[1]
        try:
            prepared: PreparedMessage | None = self.signer.prepare(body)
        except SigningError as exc:  # unsigned beats undelivered; the log says why
            log.error("outbound %d cannot be DKIM-signed, sending unsigned: %s", outbound_id,
                      exc)
            prepared = None
        with self._lock:
            self._prepared[outbound_id] = (body, prepared)
            while len(self._prepared) > self.cache_size:
                self._prepared.popitem(last=False)
        return prepared

    def sign(self, outbound_id: int, copies: list[Copy]) -> list[Copy]:
        """Put DKIM signatures in front of each copy's own header lines (RFC 8058 asks that
        List-Unsubscribe and List-Unsubscribe-Post be signed, so personal copies are signed
        one by one; the body hash is computed once per distinct body)."""
        if self.signer is None or not copies:
            return copies
        prepared: dict[int, PreparedMessage | None] = {}
        out = []
        for copy in copies:
            key = id(copy.body)
            if key not in prepared:
                prepared[key] = (self._prepared_for(outbound_id, copy.body)
                                 if copy.body is copies[0].body else self._prepare_once(copy.body))
            p = prepared[key]
            out.append(copy if p is None else replace(copy, head=p.sign(copy.head) + copy.head))
        return out

    def _prepare_once(self, body: bytes) -> PreparedMessage | None:
        assert self.signer is not None
        try:
            return self.signer.prepare(body)
        except SigningError as exc:
            log.error("a copy cannot be DKIM-signed, sending unsigned: %s", exc)
            return None

    @log_ids(outbound_id="outbound_id", chunk="first-last")  # JSON logs carry the ids
    def send_chunk(self, outbound_id: int, first: int, last: int) -> dict[str, int]:
        claimed = delivery.claim(self.engine, outbound_id=outbound_id, first=first, last=last,
                                 worker=self.worker_id, throttles=self.throttles)
        if not claimed:
            return {}
        try:
            body, bounce_local, personal, kind = self._body(outbound_id)
            copies = self.sign(outbound_id,
                               self.copies(claimed, body, bounce_local, personal, kind))
            results = self.sender_for_thread().send(copies)
        except Exception as exc:  # a bug must not strand the claim: retry the chunk later
            log.exception("outbound %d chunk %d-%d failed", outbound_id, first, last)
            results = [Result(c.delivery_id, "deferred", 0, f"internal error: {exc}")
                       for c in claimed]
        counts = self._record(results, claimed)
        log.info("outbound %d chunk %d-%d: %s", outbound_id, first, last, counts)
        return counts

    def _record(self, results: list[Result], claimed: list[delivery.Claimed]
                ) -> dict[str, int]:
        """Record the results, waiting out a database restart: rows this (live) worker
        leaves in ``sending`` are never released by the sweeper (found by the reliability
        suite's PostgreSQL crash test, which lost a chunk that way)."""
        deadline = time.monotonic() + RECORD_PATIENCE
        pause = 0.5
        while True:
            try:
                return delivery.record_results(
                    self.engine, results, claimed, worker=self.worker_id,
                    retry_base=dt.timedelta(seconds=self.settings.retry_base),
                    give_up_after=dt.timedelta(hours=self.settings.give_up_hours))
            except Exception:
                if time.monotonic() + pause > deadline:
                    raise
                log.warning("recording %d results failed; trying again in %.1fs",
                            len(results), pause, exc_info=True)
                time.sleep(pause)
                pause = min(pause * 2, 5.0)
