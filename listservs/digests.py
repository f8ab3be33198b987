"""Digests per list: collect accepted posts, send them as one message per period.

* ``mailer.models_digests.collect_post``: in the transaction that accepts a post, a
  ``digest_items`` row.
* ``send_due_digests(engine, settings, now)``: the clock's duty.  One read finds the lists
  whose digest is due (schedule, size or count threshold) and the last digests owed; an
  idle clock takes no write lock.  Each digest is rendered outside any transaction, then
  claimed and fanned out in ONE write transaction that first moves the list's
  ``digest_state`` from the issue it read to the next (compare-and-set): of several
  clocks, one wins and the others write nothing, so a digest is never sent twice.
* Delivery reuses posts' path: an ``outbound`` row (``kind="digest"``, personalised VERP
  and RFC 8058 one-click unsubscribe spliced in per copy) per format, with deliveries for
  the subscribers in that mode; ``dispatched_at`` NULL so the clock hands it to workers.
* A member who switched from a digest mode to regular is owed a last digest
  (``mailer.models_digests.owe_last_digest``): the posts waiting at the switch, for them
  alone, numbered as the list's upcoming issue.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.header import Header
from email.utils import format_datetime

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from listservs.digest_format import Masthead, mime_digest, plain_message, post_from_bytes
from listservs.digest_schedule import (
    DigestRules,
    Waiting,
    due_reason,
    next_due,
    next_number,
    rules_from_config,
)
from listservs.lists import ListInfo, get_list
from listservs.posting import identity_for
from mailer import delivery
from mailer.db import reading, utcnow, writing
from mailer.errors import CitymailError, InvalidInput
from mailer.listheaders import list_headers, mailbox
from mailer.models import Delivery, MailingList, Member, Outbound, Post, Subscription
from mailer.models_digests import DIGEST_MODES, Digest, DigestItem, DigestLast, DigestState
from mailer.notices import templates
from mailer.settings import Settings
from mailer.wire import field, field_name

__all__ = ["Sent", "digest_status", "rules_for", "send_digest",
           "send_due_digests", "send_last_digests"]

log = logging.getLogger(__name__)

# RFC 2369/2919 fields a digest carries (no Archived-At: it is not one post; no List-Owner
# or X-BeenThere: the reduced set, as Mailman sends).
DIGEST_FIELDS = ("list-id", "list-post", "list-help", "list-subscribe", "list-unsubscribe",
                 "list-archive", "precedence")
MIME, PLAIN = DIGEST_MODES  # "digest" (MIME), "digest-plain" (RFC 1153)


@dataclass(frozen=True)
class Sent:
    """A digest that went out (or was owed and sent to one member)."""

    list_name: str
    volume: int
    issue: int
    items: int
    recipients: int
    reason: str  # schedule | size | count | manual | last


def rules_for(info: ListInfo, settings: Settings) -> DigestRules:
    return rules_from_config(info.config, zone=settings.timezone)


# -- reading ---------------------------------------------------------------------------------

def _waiting(conn: Connection, list_ids: Sequence[int] | None = None) -> dict[int, Waiting]:
    stmt = (select(DigestItem.list_id, func.count(), func.coalesce(func.sum(DigestItem.size), 0),
                   func.min(DigestItem.added_at))
            .where(DigestItem.digest_id.is_(None)).group_by(DigestItem.list_id))
    if list_ids is not None:
        stmt = stmt.where(DigestItem.list_id.in_(list_ids))
    out = {}
    for list_id, count, size, oldest in conn.execute(stmt):
        if oldest is not None and oldest.tzinfo is None:  # aggregates bypass UTCDateTime
            oldest = dt.datetime.fromisoformat(str(oldest)).replace(tzinfo=dt.UTC)
        out[list_id] = Waiting(int(count), int(size), oldest)
    return out


def _list_name(conn: Connection, list_id: int) -> str:
    return conn.execute(select(MailingList.name).where(MailingList.id == list_id)).scalar_one()


def _state(conn: Connection, list_id: int) -> tuple[int, int, dt.datetime | None, bool]:
    row = conn.execute(select(DigestState.volume, DigestState.issue, DigestState.last_sent_at)
                       .where(DigestState.list_id == list_id)).first()
    return (row.volume, row.issue, row.last_sent_at, True) if row else (0, 0, None, False)


def _items(conn: Connection, list_id: int, *, first: int | None = None,
           last: int | None = None) -> list[tuple[int, bytes | None]]:
    """(item id, the post's bytes as sent to the list) in the order the gateway received
    them (workers may accept two posts the other way round).

    None for a post whose message is gone (erased): it is taken, not shown, so it cannot
    keep a digest waiting for ever."""
    stmt = (select(DigestItem.id, Outbound.body)
            .join(Post, Post.id == DigestItem.post_id)
            .outerjoin(Outbound, (Outbound.post_id == DigestItem.post_id)
                       & (Outbound.kind == "post"))
            .where(DigestItem.list_id == list_id).order_by(Post.inbound_id, DigestItem.id))
    if first is None:
        stmt = stmt.where(DigestItem.digest_id.is_(None))
    else:
        stmt = stmt.where(DigestItem.id.between(first, last))
    return [(r.id, None if r.body is None else bytes(r.body)) for r in conn.execute(stmt)]


# -- rendering -------------------------------------------------------------------------------

def _subject(text: str) -> bytes:
    if text.isascii():
        return field("Subject", text)
    return field("Subject", Header(text, "utf-8", header_name="Subject").encode("\r\n"))


def _headers(info: ListInfo, settings: Settings, *, volume: int, issue: int,
             now: dt.datetime) -> list[bytes]:
    ident = identity_for(info, settings)
    prefix = (ident.subject_prefix or f"[{info.display_name}]").strip()
    domain = settings.list_domain
    fields = [
        field("From", mailbox(info.display_name, ident.request_address).encode("utf-8")),
        field("To", mailbox(info.display_name, ident.address).encode("utf-8")),
        _subject(f"{prefix} Digest, Vol {volume}, Issue {issue}"),
        field("Date", format_datetime(now)),
        field("Message-ID", f"<digest.{info.name}.{volume}.{issue}.{uuid.uuid4().hex[:12]}"
                            f"@{domain}>"),
    ]
    if not info.announce_only:
        fields.append(field("Reply-To", ident.address))
    personal = info.delivery == "personalised"
    fields += [f for f in list_headers(ident, personal=personal)
               if field_name(f) in DIGEST_FIELDS]
    fields.append(field("Auto-Submitted", "auto-generated"))
    return fields


def _masthead(info: ListInfo, settings: Settings, volume: int, issue: int) -> Masthead:
    ident = identity_for(info, settings)
    intro = templates().get_template("notices/digest_masthead.txt").render(
        display_name=info.display_name, address=ident.address, info_url=ident.help_url,
        request_address=ident.request_address, owner_address=ident.owner_address)
    return Masthead(info.short_name, volume, issue, intro, ident.footer_text)


def render(info: ListInfo, settings: Settings, bodies: Sequence[bytes], *, volume: int,
           issue: int, now: dt.datetime) -> dict[str, bytes]:
    """Both formats of one digest: mode -> message bytes."""
    prefix = identity_for(info, settings).subject_prefix or ""
    posts = [post_from_bytes(i + 1, raw, prefix=prefix) for i, raw in enumerate(bodies)]
    headers = _headers(info, settings, volume=volume, issue=issue, now=now)
    masthead = _masthead(info, settings, volume, issue)
    return {MIME: mime_digest(headers, masthead, posts),
            PLAIN: plain_message(headers, masthead, posts)}


# -- sending ---------------------------------------------------------------------------------

def _outbound(conn: Connection, info: ListInfo, body: bytes, now: dt.datetime) -> int:
    return conn.execute(insert(Outbound).values(
        kind="digest", list_id=info.id, personal=info.delivery == "personalised", body=body,
        bounce_local=f"{info.name}-bounces", created_at=now, dispatched_at=None)
        .returning(Outbound.id)).scalar_one()


class _Lost(Exception):
    """Another clock claimed this digest first (the transaction is rolled back)."""


def send_digest(engine: Engine, settings: Settings, name: str, *, reason: str,
                now: dt.datetime | None = None) -> Sent | None:
    """Send the list's waiting posts as its next digest; None if none wait (or lost race)."""
    now = now or utcnow()
    with reading(engine) as conn:
        info = get_list(conn, name)
        rules = rules_for(info, settings)
        volume, issue, last_sent, known = _state(conn, info.id)
        items = _items(conn, info.id)
    if not items:
        return None
    new_volume, new_issue = next_number(volume, issue, last_sent, now, rules.tz())
    bodies = [body for _, body in items if body is not None]
    messages = render(info, settings, bodies, volume=new_volume, issue=new_issue,
                      now=now) if bodies else {}
    ids = [item_id for item_id, _ in items]
    try:
        with writing(engine) as conn:
            recipients = _claim_and_fan_out(conn, info, messages, ids, (volume, issue, known),
                                            (new_volume, new_issue), reason, now)
    except (_Lost, IntegrityError):
        log.info("digest %s vol %d issue %d: sent by another clock", name, new_volume,
                 new_issue)
        return None
    log.info("digest %s vol %d issue %d (%s): %d posts to %d members", name, new_volume,
             new_issue, reason, len(ids), recipients)
    return Sent(name, new_volume, new_issue, len(ids), recipients, reason)


def _claim_and_fan_out(conn: Connection, info: ListInfo, messages: dict[str, bytes],
                       ids: list[int], old: tuple[int, int, bool], new: tuple[int, int],
                       reason: str, now: dt.datetime) -> int:
    volume, issue, known = old
    values = {"volume": new[0], "issue": new[1], "last_sent_at": now}
    if known:
        won = conn.execute(update(DigestState).where(
            DigestState.list_id == info.id, DigestState.volume == volume,
            DigestState.issue == issue).values(**values)).rowcount
        if not won:
            raise _Lost
    else:
        conn.execute(insert(DigestState).values(list_id=info.id, **values))  # PK: one wins
    digest_id = conn.execute(insert(Digest).values(
        list_id=info.id, volume=new[0], issue=new[1], reason=reason, items=len(ids),
        recipients=0, sent_at=now).returning(Digest.id)).scalar_one()
    taken = conn.execute(update(DigestItem).where(DigestItem.id.in_(ids),
                                                  DigestItem.digest_id.is_(None))
                         .values(digest_id=digest_id)).rowcount
    if taken != len(ids):
        raise _Lost
    total = 0
    for mode, body in messages.items():
        outbound_id = _outbound(conn, info, body, now)
        count = delivery.fan_out(conn, outbound_id=outbound_id, list_id=info.id, modes=(mode,),
                                 now=now)
        if not count:  # nobody reads this format: no message
            conn.execute(delete(Outbound).where(Outbound.id == outbound_id))
        total += count
    conn.execute(update(Digest).where(Digest.id == digest_id).values(recipients=total))
    return total


def send_last_digests(engine: Engine, settings: Settings, *,
                      now: dt.datetime | None = None) -> list[Sent]:
    """One last digest to each member who left a digest mode for regular delivery."""
    now = now or utcnow()
    sent = []
    with reading(engine) as conn:
        owed = conn.execute(select(DigestLast).where(DigestLast.sent_at.is_(None))
                            .order_by(DigestLast.id)).all()
    for row in owed:
        try:
            result = _send_last(engine, settings, row, now)
        except CitymailError as exc:
            log.error("last digest %d cannot be sent: %s", row.id, exc)
            continue
        except Exception:  # the clock's boundary: the others still go
            log.exception("last digest %d failed; trying again at the next tick", row.id)
            continue
        if result is not None:
            sent.append(result)
    return sent


def _send_last(engine: Engine, settings: Settings, row, now: dt.datetime) -> Sent | None:
    with reading(engine) as conn:
        info = get_list(conn, _list_name(conn, row.list_id))
        rules = rules_for(info, settings)
        volume, issue, last_sent, _known = _state(conn, info.id)
        items = _items(conn, info.id, first=row.from_item, last=row.upto_item)
        member = conn.execute(select(Member.email).where(Member.id == row.member_id,
                                                         Member.status == "active")).first()
    new_volume, new_issue = next_number(volume, issue, last_sent, now, rules.tz())
    body = None
    bodies = [b for _, b in items if b is not None]
    if bodies and member is not None:
        body = render(info, settings, bodies, volume=new_volume,
                      issue=new_issue, now=now)[row.mode if row.mode in DIGEST_MODES else MIME]
    with writing(engine) as conn:
        claimed = conn.execute(update(DigestLast).where(DigestLast.id == row.id,
                                                        DigestLast.sent_at.is_(None))
                               .values(sent_at=now)).rowcount
        if not claimed or body is None or member is None:
            return None
        outbound_id = _outbound(conn, info, body, now)
        conn.execute(insert(Delivery).values(
            outbound_id=outbound_id, member_id=row.member_id, list_id=info.id,
            recipient=member.email, state="pending", attempts=0, due_at=now, created_at=now))
    log.info("last digest of %s to member %d: %d posts", info.name, row.member_id,
             len(bodies))
    return Sent(info.name, new_volume, new_issue, len(bodies), 1, "last")


def send_due_digests(engine: Engine, settings: Settings,
                     now: dt.datetime | None = None) -> int:
    """The clock's duty: send every digest that is due; returns how many went."""
    now = now or utcnow()
    with reading(engine) as conn:  # the common case: nothing due, and no write lock
        waiting = _waiting(conn)
        owed = conn.execute(select(DigestLast.id).where(DigestLast.sent_at.is_(None))
                            .limit(1)).first() is not None
        due: list[tuple[str, str]] = []
        if waiting:
            rows = conn.execute(select(MailingList.id, MailingList.name, MailingList.config)
                                .where(MailingList.id.in_(list(waiting))))
            for list_id, name, config in rows:
                try:
                    rules = rules_from_config(config or {}, zone=settings.timezone)
                except InvalidInput as exc:
                    log.error("digest of %s not sent: %s", name, exc)
                    continue
                reason = due_reason(rules, waiting[list_id], now)
                if reason:
                    due.append((name, reason))
    if not due and not owed:
        return 0
    count = len(send_last_digests(engine, settings, now=now)) if owed else 0
    for name, reason in due:
        try:
            count += send_digest(engine, settings, name, reason=reason, now=now) is not None
        except Exception:  # one list's trouble must not hold up the others' digests
            log.exception("digest of %s failed; trying again at the next tick", name)
    return count


# -- status ----------------------------------------------------------------------------------

def _show(instant: dt.datetime | None, rules: DigestRules) -> str | None:
    if instant is None:
        return None
    return instant.astimezone(rules.tz()).strftime("%Y-%m-%d %H:%M %Z")


def digest_status(engine: Engine, settings: Settings, name: str,
                  now: dt.datetime | None = None) -> dict[str, object]:
    """What ``citymail lists digest NAME --status`` shows."""
    now = now or utcnow()
    with reading(engine) as conn:
        info = get_list(conn, name)
        rules = rules_for(info, settings)
        waiting = _waiting(conn, [info.id]).get(info.id, Waiting(0, 0, None))
        volume, issue, last_sent, _known = _state(conn, info.id)
        modes = dict(conn.execute(
            select(Subscription.mode, func.count())
            .where(Subscription.list_id == info.id, Subscription.status == "active",
                   Subscription.mode.in_(DIGEST_MODES)).group_by(Subscription.mode)).all())
    reason = due_reason(rules, waiting, now)
    due = None
    if waiting.count and rules.enabled:
        due = now if reason in ("count", "size") else next_due(rules, waiting.oldest or now)
    return {
        "list": info.name, "enabled": rules.enabled, "frequency": rules.frequency,
        "weekday": rules.weekday if rules.frequency == "weekly" else None,
        "send_at": rules.send_at, "zone": rules.zone, "size_kb": rules.size_kb,
        "count": rules.count,
        "waiting": {"posts": waiting.count, "bytes": waiting.size,
                    "oldest": waiting.oldest.isoformat() if waiting.oldest else None},
        "next_due": {"utc": due.isoformat() if due else None, "local": _show(due, rules),
                     "reason": reason},
        "last": {"volume": volume or None, "issue": issue or None,
                 "sent_at": last_sent.isoformat() if last_sent else None,
                 "local": _show(last_sent, rules)},
        "subscribers": {"digest": modes.get(MIME, 0), "digest-plain": modes.get(PLAIN, 0)},
    }
