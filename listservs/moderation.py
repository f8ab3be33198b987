"""Moderation: notices for held posts, decisions by reply or CLI, and expiry.

A held post sends its list's moderators (``ListRole`` "moderator", else "owner") a notice
from ``LIST-confirm+TOKEN@`` (also its Reply-To; the token is in the Subject too), where the
token names the held message (see :mod:`listservs.confirm`).  Replying with ``approve``,
``reject REASON`` or ``discard`` as the first line of one's own text decides it; the
moderator gets a short answer.  A decided message cannot be decided again: every decision
is ``UPDATE held … WHERE state = 'held'`` in the transaction that acts.

* approve: the post is decorated as an accepted post (``listservs.posting``'s path) and
  stored with its outbound row undispatched; the workers' clock fans it out, so the CLI
  (which cannot reach the broker) approves the same way as a reply.
* reject: the reason goes to the poster only if the hold found them authenticated
  (``PostPlan.notify_sender``, kept in ``held_records``); otherwise the message is
  discarded silently and the reason logged (no backscatter).
* expiry: after ``hold_days`` (list config ``hold_days``, or ``policy.hold_days`` once
  ``ListPolicy`` has it; default 14) with a notice to an authenticated poster.
* a poster is told that their post is held once per list (``responses_sent``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy import Connection, Engine, select

from listservs.commands import Decision
from listservs.confirm import confirm_address, make_token
from listservs.effects import DecideHeld, Limit, Outcome, RecordHold, SendMail, StorePost
from listservs.joins import expire_requests
from listservs.lists import ListInfo, get_list, list_roles
from listservs.mailout import Replying, mail
from listservs.mailtext import parse, safe_excerpt
from listservs.models_moderation import HeldRecord
from listservs.models_post_dmarc import stored_policy
from listservs.post_content import approval_copy_inputs, build_copy, prepare_content
from listservs.posting import PostPlan, derived_message_id, identity_for, read_headers
from mailer.db import reading, utcnow, writing
from mailer.errors import InvalidInput, NotFound
from mailer.models import Held, Inbound, MailingList
from mailer.settings import Settings

__all__ = [
    "ACTIONS", "HOLD_DAYS", "HeldRow", "accepted_post", "expire_due", "expired", "hold_days",
    "moderators", "plan_decision", "plan_hold",
]

log = logging.getLogger(__name__)

HOLD_DAYS = 14
ACTIONS = {"approve": "approved", "reject": "rejected", "discard": "discarded"}


@dataclass(frozen=True)
class HeldRow:
    id: int
    list_id: int
    inbound_id: int
    sender: str
    subject: str
    received_at: dt.datetime
    state: str = "held"


def hold_days(info: ListInfo) -> int:
    """Days a post may wait for a moderator on this list."""
    policy = info.config.get("policy") or {}
    value = policy.get("hold_days", info.config.get("hold_days", HOLD_DAYS))
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        log.warning("list %s: hold_days %r is not a number; using %d", info.name, value,
                    HOLD_DAYS)
        return HOLD_DAYS


def expired(held_rows: Iterable[HeldRow], now: dt.datetime,
            days: int | Mapping[int, int]) -> list[HeldRow]:
    """The held rows whose time is up: ``days`` for every list, or per list id (default 14)."""
    def limit(list_id: int) -> int:
        return days if isinstance(days, int) else days.get(list_id, HOLD_DAYS)

    return [r for r in held_rows
            if r.state == "held" and r.received_at + dt.timedelta(days=limit(r.list_id)) <= now]


def moderators(conn: Connection, list_id: int) -> list[str]:
    return list_roles(conn, list_id, "moderator") or list_roles(conn, list_id, "owner")


def accepted_post(raw: bytes, *, inbound_id: int, info: ListInfo, settings: Settings,
                  envelope_sender: str, dmarc_policy: str | None = None) -> StorePost:
    """A held post as an accepted one: decorated like ``plan_post`` decorates, ready to store.

    ``dmarc_policy``: what DNS said when the post arrived (``models_post_dmarc``).
    """
    headers = read_headers(raw, envelope_sender)
    message_id = headers.message_id or derived_message_id(raw, settings.list_domain)
    archived_at = f"{settings.base_url}/archives/{info.name}/msg/{quote(message_id, safe='')}"
    lookups, sealer = approval_copy_inputs(raw, settings, dmarc_policy=dmarc_policy)
    body = build_copy(prepare_content(raw, info.config).raw, identity_for(info, settings),
                      config=info.config, lookups=lookups, sealer=sealer,
                      archived_at=archived_at,
                      message_id=None if headers.message_id else message_id,
                      personal=info.delivery == "personalised")
    return StorePost(inbound_id, info.id, info.name, info.delivery == "personalised", body,
                     message_id, headers.in_reply_to, headers.subject, headers.sender)


def _expires(received_at: dt.datetime, info: ListInfo) -> int:
    return int((received_at + dt.timedelta(days=hold_days(info) + 1)).timestamp())


def plan_hold(conn: Connection, *, inbound_id: int, info: ListInfo, plan: PostPlan, raw: bytes,
              settings: Settings, now: dt.datetime) -> Outcome:
    """What a hold writes besides its ``held`` row: the record, the notices."""
    h = plan.headers
    effects: list[SendMail | RecordHold] = [RecordHold(inbound_id, info.id, plan.notify_sender)]
    token = make_token(settings.secret_key, "m", info.name, inbound_id,
                       expires=_expires(now, info))
    address = confirm_address(info.name, settings.list_domain, token)
    to = moderators(conn, info.id)
    if to:
        effects.append(mail(info, settings, template="held_moderator", to=to, sender=address,
                            context={"sender": h.sender, "subject": h.subject or "(no subject)",
                                     "reasons": list(plan.reasons), "token": token,
                                     "confirm_address": address, "hold_days": hold_days(info),
                                     "excerpt": safe_excerpt(raw)}))
    else:
        log.warning("inbound %d held on %s, which has no moderator or owner to tell",
                    inbound_id, info.name)
    if plan.notify_sender and h.sender:
        effects.append(mail(info, settings, template="held_poster", to=[h.sender],
                            replying=Replying.to(parse(raw)),
                            context={"subject": h.subject or "(no subject)",
                                     "reasons": list(plan.reasons),
                                     "hold_days": hold_days(info)},
                            limit=Limit(info.id, h.sender, "hold")))
    return Outcome(f"inbound {inbound_id} held on {info.name}: {len(to)} moderators told",
                   tuple(effects))


def _held(conn: Connection,
          held_id: int) -> tuple[HeldRow, str | None, ListInfo, bytes, bool, str]:
    row = conn.execute(select(Held.__table__).where(Held.id == held_id)).mappings().first()
    if row is None:
        raise NotFound(f"no held message {held_id} (see: citymail moderation list)")
    name = conn.execute(select(MailingList.name).where(MailingList.id == row["list_id"])).scalar()
    info = get_list(conn, str(name))
    inbound = conn.execute(select(Inbound.raw, Inbound.mail_from)
                           .where(Inbound.id == row["inbound_id"])).one()
    notify = bool(conn.execute(select(HeldRecord.notify_sender)
                               .where(HeldRecord.held_id == held_id)).scalar())
    held = HeldRow(row["id"], row["list_id"], row["inbound_id"], row["sender"], row["subject"],
                   row["received_at"], row["state"])
    return held, row["decided_by"], info, bytes(inbound.raw), notify, inbound.mail_from


def plan_decision(conn: Connection, *, held_id: int, decision: Decision, decided_by: str,
                  settings: Settings, answer: Replying | None = None) -> Outcome:
    """A moderator's decision on a held message; InvalidInput if it was already decided.

    ``answer``: the moderator's reply, to be acknowledged (to ``decided_by``).
    """
    if decision.action not in ACTIONS:
        raise InvalidInput(f"a decision is one of {', '.join(ACTIONS)}; got {decision.action!r}")
    held, by, info, raw, notify, mail_from = _held(conn, held_id)
    if held.state != "held":
        raise InvalidInput(f"held message {held_id} was already {held.state}"
                           + (f" by {by}" if by else ""))
    state = ACTIONS[decision.action]
    then: list[StorePost | SendMail] = []
    note = f"held {held_id} on {info.name} {state} by {decided_by}"
    if decision.action == "approve":
        then.append(accepted_post(raw, inbound_id=held.inbound_id, info=info,
                                  settings=settings, envelope_sender=mail_from,
                                  dmarc_policy=stored_policy(conn, held.inbound_id)))
    elif decision.action == "reject" and notify and held.sender:
        then.append(mail(info, settings, template="held_rejected", to=[held.sender],
                         replying=Replying.to(parse(raw)),
                         context={"subject": held.subject or "(no subject)",
                                  "reason": decision.reason}))
    elif decision.action == "reject":
        state = "discarded"
        note = (f"held {held_id} on {info.name} rejected by {decided_by}; the poster is not "
                f"authenticated, so it is discarded silently. Reason: {decision.reason!r}")
    if answer is not None:
        then.append(mail(info, settings, template="moderation_done", to=[decided_by],
                         replying=answer,
                         context={"action": state, "sender": held.sender,
                                  "subject": held.subject or "(no subject)",
                                  "reason": decision.reason, "told": bool(notify)},
                         limit=Limit(info.id, decided_by, "answer", per_day=200)))
    return Outcome(note, (DecideHeld(held_id, state, decided_by, tuple(then)),))


def expire_due(engine: Engine, settings: Settings, *, now: dt.datetime | None = None,
               batch: int = 200) -> int:
    """Expire held posts past their list's ``hold_days`` and stale requests (clock duty)."""
    now = now or utcnow()
    with reading(engine) as conn:
        lists = {r.id: r.name for r in conn.execute(select(MailingList.id, MailingList.name))}
        infos = {i: get_list(conn, n) for i, n in lists.items()}
        days = {i: hold_days(info) for i, info in infos.items()}
        oldest = now - dt.timedelta(days=min(days.values(), default=HOLD_DAYS))
        rows = [HeldRow(r.id, r.list_id, r.inbound_id, r.sender, r.subject, r.received_at)
                for r in conn.execute(select(Held.id, Held.list_id, Held.inbound_id, Held.sender,
                                             Held.subject, Held.received_at)
                                      .where(Held.state == "held", Held.received_at <= oldest)
                                      .order_by(Held.id).limit(batch))]
        outcomes = [_expiry(conn, row, infos[row.list_id], settings)
                    for row in expired(rows, now, days)]
        outcomes += expire_requests(conn, now=now, batch=batch)
    if not outcomes:
        return 0
    with writing(engine) as conn:
        done = sum(outcome.apply(conn, now=now) for outcome in outcomes)
    return done


def _expiry(conn: Connection, row: HeldRow, info: ListInfo, settings: Settings) -> Outcome:
    notify = bool(conn.execute(select(HeldRecord.notify_sender)
                               .where(HeldRecord.held_id == row.id)).scalar())
    then: tuple[SendMail, ...] = ()
    if notify and row.sender:
        then = (mail(info, settings, template="held_expired", to=[row.sender],
                     context={"subject": row.subject or "(no subject)",
                              "hold_days": hold_days(info)}),)
    return Outcome(f"held {row.id} on {info.name} expired after {hold_days(info)} days",
                   (DecideHeld(row.id, "expired", "expiry", then),))
