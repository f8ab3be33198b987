"""process_inbound: from a stored message to held rows or deliveries, exactly once.

Everything slow (parsing, decoration) happens before the write transaction; the
transaction re-checks that the message is still unprocessed, so two workers racing on the
same id (a re-enqueue by the sweeper) store its outcome once.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, insert, select, update

from listservs.archive_store import store_entry
from listservs.archive_text import ArchiveEntry, archive_entry
from listservs.effects import Outcome
from listservs.facts import Membership
from listservs.lists import ListInfo, get_list, list_roles, subscriber_status
from listservs.models_post_dmarc import remember_for_hold
from listservs.post_content import PostDns, PostLookups
from listservs.posting import PostPlan, list_policy, plan_post
from mailer import delivery
from mailer.addresses import SITE, Target
from mailer.db import reading, utcnow, writing
from mailer.errors import NotFound
from mailer.logfmt import log_ids
from mailer.models import Held, Inbound, Outbound, Post
from mailer.models_digests import collect_post
from mailer.settings import Settings
from workers.roles import plan_hold, plan_role, plan_site_role

__all__ = ["InboundProcessor"]

log = logging.getLogger(__name__)

INBOUND = Inbound.__table__


@dataclass
class Planned:
    """What one inbound message will turn into, decided before the write transaction."""

    inbound_id: int
    plans: list[tuple[ListInfo, PostPlan]]
    notes: list[str]
    error: str | None = None
    outcomes: list[Outcome] = field(default_factory=list)  # holds' notices, command addresses
    archive: ArchiveEntry | None = None  # the archive's index row, parsed before writing


class InboundProcessor:
    def __init__(self, engine: Engine, settings: Settings, *,
                 dispatch: Callable[[int, list[tuple[int, int]]], None], threads: int,
                 post_dns: PostDns | None = None) -> None:
        self.engine = engine
        self.settings = settings
        # DMARC policies and ARC sealing (tests inject DNS answers here).
        self.post_dns = post_dns or PostDns.from_settings(settings)
        self.dispatch = dispatch  # (outbound id, chunk ranges) -> enqueue deliver_chunk
        self.threads = threads

    def warm_up(self) -> None:
        """Run one synthetic post through policy and decoration, storing nothing.

        The first post after a start otherwise pays for lazy initialisation (the public
        suffix list, compiled patterns, first-use imports): about a second measured.
        """
        from listservs.facts import Membership as M
        from listservs.lists import ListInfo

        info = ListInfo(0, "warm-up", "list", "Warm-up", "Warm-up", "", None, False,
                        "personalised", "", {})
        raw = (b"From: a@example.org\r\nTo: warm-up@example.org\r\nSubject: x\r\n"
               b"Message-ID: <w@example.org>\r\n\r\nx\r\n")
        try:
            plan_post(raw, info=info, settings=self.settings, envelope_sender="a@example.org",
                      lookup=lambda _s: M(is_member=True), seen=lambda _m: False, now=utcnow())
        except Exception:
            log.exception("warm-up failed (harmless)")

    def process(self, inbound_ids: int | Sequence[int]) -> None:
        """Process stored messages; a batch shares one write transaction."""
        ids = [inbound_ids] if isinstance(inbound_ids, int) else list(inbound_ids)
        planned: list[Planned] = []
        with reading(self.engine) as conn:
            c = INBOUND.c
            rows = conn.execute(select(c.id, c.raw, c.mail_from, c.rcpt_to)
                                .where(c.id.in_(ids), c.state == "received")
                                .order_by(c.id)).all()
        # DNS (DMARC policy, ARC) outside any transaction: a slow resolver holds no snapshot.
        dns = {row.id: self.post_dns.look_up(bytes(row.raw)) for row in rows
               if any(t[1] == "post" for t in row.rcpt_to)}
        with reading(self.engine) as conn:
            for row in rows:
                try:
                    planned.append(self._plan(conn, row.id, bytes(row.raw), row.mail_from,
                                              row.rcpt_to, dns.get(row.id)))
                except Exception as exc:  # one bad message must not block the others
                    log.exception("inbound %d could not be processed", row.id)
                    planned.append(Planned(row.id, [], [], error=f"{type(exc).__name__}: {exc}"))
        if not planned:
            return
        created = self._store(planned)
        for outbound_id, count in created:
            size = delivery.chunk_size_for(count, threads=self.threads,
                                           maximum=self.settings.chunk_size)
            with reading(self.engine) as conn:
                ranges = delivery.pending_ranges(conn, outbound_id, size)
            self.dispatch(outbound_id, ranges)

    @log_ids(inbound_id="inbound_id")  # JSON logs carry the id
    def _plan(self, conn: Connection, inbound_id: int, raw: bytes, mail_from: str,
              rcpt_to: list[list[str | None]], lookups: PostLookups | None = None) -> Planned:
        targets = [Target.from_json(t) for t in rcpt_to]
        plans: list[tuple[ListInfo, PostPlan]] = []
        notes: list[str] = []
        outcomes: list[Outcome] = []
        for target in targets:
            if target.list_name == SITE:  # citymail-owner@, citymail-bounces@: no list
                outcome = plan_site_role(conn, target, inbound_id=inbound_id, raw=raw,
                                         mail_from=mail_from, settings=self.settings,
                                         now=utcnow())
                notes.extend([outcome.error] if outcome.error else [])
                outcomes.append(outcome)
                continue
            try:
                info = get_list(conn, target.list_name)
            except NotFound:
                notes.append(f"{target.list_name}: list no longer exists")
                continue
            if target.role != "post":
                outcome = plan_role(conn, target, info=info, inbound_id=inbound_id, raw=raw,
                                    mail_from=mail_from, settings=self.settings, now=utcnow())
                notes.extend([outcome.error] if outcome.error else [])
                outcomes.append(outcome)
                continue
            plan = plan_post(
                raw, info=info, settings=self.settings, envelope_sender=mail_from,
                lookup=lambda sender, info=info: self._membership(conn, info, sender),
                seen=lambda mid, info=info: self._seen(conn, info, mid),
                now=utcnow(), lookups=lookups, sealer=self.post_dns.sealer)
            plans.append((info, plan))
            if plan.action == "hold":
                outcome = plan_hold(conn, inbound_id=inbound_id, info=info, plan=plan, raw=raw,
                                    settings=self.settings, now=utcnow())
                notes.extend([outcome.error] if outcome.error else [])
                outcomes.append(outcome)
                kept = remember_for_hold(inbound_id, lookups.dmarc_policy if lookups else None)
                if kept is not None:  # an approval then mitigates without asking DNS
                    outcomes.append(Outcome(f"inbound {inbound_id}: DMARC policy kept", (kept,)))
        accepted = any(plan.action == "accept" for _, plan in plans)
        archive = archive_entry(raw, received_at=utcnow()) if accepted else None
        return Planned(inbound_id, plans, notes, outcomes=outcomes, archive=archive)

    def _membership(self, conn: Connection, info: ListInfo, sender: str | None) -> Membership:
        if not sender:
            return Membership()
        sender = sender.lower()
        status = subscriber_status(conn, info.id, sender)
        posters = {p.lower() for p in list_roles(conn, info.id, "poster")}
        banned = {p.lower() for p in list_roles(conn, info.id, "banned")}
        return Membership(is_member=status == "active", named_poster=sender in posters,
                          banned=sender in banned)

    def _seen(self, conn: Connection, info: ListInfo, message_id: str | None) -> bool:
        """Was this Message-ID posted to the list within the duplicate window?"""
        if not message_id:
            return False
        window = list_policy(info).duplicate_window
        found = conn.execute(
            select(Post.id).where(Post.list_id == info.id,
                                  Post.message_id == f"<{message_id}>",
                                  Post.created_at > utcnow() - window).limit(1)).first()
        return found is not None

    def _store(self, planned: list[Planned]) -> list[tuple[int, int]]:
        """Write each message's outcome in its own short transaction.

        One transaction per message, not per batch: SQLite has a single write lock, and the
        gateway's group commits must be able to slip in between (a 50-message transaction
        held it long enough to stall the gateway to a tenth of its rate).
        """
        created: list[tuple[int, int]] = []
        for item in planned:
            with writing(self.engine) as conn:
                created.extend(self._store_one(conn, item, utcnow()))
        return created

    @log_ids(inbound_id="item.inbound_id")
    def _store_one(self, conn: Connection, item: Planned,
                   now: dt.datetime) -> list[tuple[int, int]]:
        inbound_id, plans, notes = item.inbound_id, item.plans, item.notes
        created: list[tuple[int, int]] = []
        if item.error is not None:
            conn.execute(update(INBOUND).where(INBOUND.c.id == inbound_id,
                                               INBOUND.c.state == "received")
                         .values(state="failed", processed_at=now, error=item.error))
            return created
        claimed = conn.execute(
            update(INBOUND).where(INBOUND.c.id == inbound_id, INBOUND.c.state == "received")
            .values(state="done", processed_at=now,
                    error="; ".join(notes) if notes else None)).rowcount
        if not claimed:
            return []  # another worker stored it first
        for info, plan in plans:
            h = plan.headers
            if plan.action == "accept":
                assert plan.body is not None
                post_id = conn.execute(insert(Post).values(
                    inbound_id=inbound_id, list_id=info.id, message_id=plan.message_id,
                    in_reply_to=h.in_reply_to, subject=h.subject, sender=h.sender,
                    created_at=now).returning(Post.id)).scalar_one()
                if item.archive is not None:  # the search index, in the same transaction
                    store_entry(conn, post_id=post_id, list_id=info.id, entry=item.archive)
                outbound_id = conn.execute(insert(Outbound).values(
                    kind="post", list_id=info.id, post_id=post_id,
                    personal=info.delivery == "personalised", body=plan.body,
                    bounce_local=f"{info.name}-bounces", created_at=now,
                    dispatched_at=now)
                    .returning(Outbound.id)).scalar_one()
                # Digest readers get it later, in the list's digest; fan_out is regular only.
                collect_post(conn, list_id=info.id, post_id=post_id, size=len(plan.body),
                             now=now, config=info.config)
                count = delivery.fan_out(conn, outbound_id=outbound_id, list_id=info.id,
                                         now=now)
                created.append((outbound_id, count))
                log.info("inbound %d accepted on %s: %d recipients", inbound_id,
                         info.name, count)
            elif plan.action == "hold":
                conn.execute(insert(Held).values(
                    inbound_id=inbound_id, list_id=info.id, sender=h.sender,
                    subject=h.subject, reasons=list(plan.reasons), state="held",
                    received_at=now))
                log.info("inbound %d held on %s: %s", inbound_id, info.name,
                         "; ".join(plan.reasons))
            else:
                log.info("inbound %d %s on %s: %s", inbound_id, plan.action, info.name,
                         "; ".join(plan.reasons))
        for outcome in item.outcomes:  # after the held rows above, which they refer to
            outcome.apply_isolated(conn, now=now)
        return created
