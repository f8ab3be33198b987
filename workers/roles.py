"""The roles of list addresses other than posting, as a table of handlers.

``plan_role`` is called by ``InboundProcessor.process`` inside its read transaction, for
each envelope recipient whose role is not "post".  It returns an ``Outcome`` (effects and a
log note); the processor applies every outcome in ``_store``'s single write transaction,
after it has claimed the inbound row, so a message is acted on exactly once.

Mail that RFC 3834 says must never be answered (auto-replies, bulk and list mail, reports,
the null sender) is not acted on at the command addresses; ``-owner`` forwards it anyway.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy import Connection

from listservs.effects import Outcome
from listservs.handlers import plan_confirm, plan_join, plan_leave, plan_owner, plan_request
from listservs.joins import Incoming
from listservs.lists import ListInfo
from listservs.moderation import plan_hold as _plan_hold
from listservs.posting import PostPlan
from listservs.rfc3834 import never_answer
from listservs.site_mail import plan_site_bounces, plan_site_owner
from mailer import bounce_events
from mailer.addresses import Target
from mailer.settings import Settings

__all__ = ["ROLE_HANDLERS", "SITE_HANDLERS", "RoleHandler", "plan_hold", "plan_role",
           "plan_site_role"]

log = logging.getLogger(__name__)

RoleHandler = Callable[..., Outcome]


def plan_bounces(conn: Connection, inc: Incoming, *, info: ListInfo, target: Target,
                 settings: Settings, now: dt.datetime) -> Outcome:
    """``LIST-bounces[+TOKEN]``: VERP or DSN to bounce events and scores (mailer.bounce_events)."""
    plan = bounce_events.plan_bounce(conn, settings, target, inc.raw, now=now,
                                     inbound_id=inc.inbound_id)
    return Outcome(f"inbound {inc.inbound_id} to {info.name}-bounces: {plan.outcome} "
                   f"({plan.detail})", (plan,))


ROLE_HANDLERS: dict[str, RoleHandler] = {
    "request": plan_request,
    "join": plan_join,
    "leave": plan_leave,
    "owner": plan_owner,
    "confirm": plan_confirm,
    "bounces": plan_bounces,
}
# Roles that act on any mail: the rest ignore automatic mail (RFC 3834).
ACT_ON_AUTOMATIC = frozenset({"owner", "bounces"})
# The site's own addresses (mailer.addresses.SITE): citymail-owner@, citymail-bounces@.
SITE_HANDLERS: dict[str, RoleHandler] = {
    "owner": plan_site_owner,
    "bounces": plan_site_bounces,
}


def plan_site_role(conn: Connection, target: Target, *, inbound_id: int, raw: bytes,
                   mail_from: str, settings: Settings, now: dt.datetime) -> Outcome:
    """Like ``plan_role``, for a site address (no list). Never raises."""
    where = f"inbound {inbound_id} to {target.address(settings.list_domain)}"
    handler = SITE_HANDLERS.get(target.role)
    if handler is None:
        return Outcome(f"{where}: no handler", error=f"{where}: no handler")
    try:
        inc = Incoming.read(inbound_id, raw, mail_from)
        return handler(conn, inc, target=target, settings=settings, now=now)
    except Exception as exc:  # the handler boundary: keep the message, note why
        log.exception("%s: handling failed", where)
        return Outcome(f"{where}: failed", error=f"{where}: {type(exc).__name__}: {exc}")


def plan_role(conn: Connection, target: Target, *, info: ListInfo, inbound_id: int, raw: bytes,
              mail_from: str, settings: Settings, now: dt.datetime) -> Outcome:
    """Decide what a message to ``target`` (a non-post role) does; write nothing.

    Never raises: a handler's failure becomes ``Outcome.error`` (kept on the inbound row,
    with the message) so one bad message cannot stall the queue.
    """
    where = f"inbound {inbound_id} to {target.address(settings.list_domain)}"
    handler = ROLE_HANDLERS.get(target.role)
    if handler is None:
        return Outcome(f"{where}: no handler", error=f"{info.name}-{target.role}: no handler")
    try:
        inc = Incoming.read(inbound_id, raw, mail_from)
        if target.role not in ACT_ON_AUTOMATIC:
            why = never_answer(inc.msg, envelope_sender=mail_from,
                               list_domain=settings.list_domain)
            if why is not None:
                return Outcome(f"{where} ignored (RFC 3834): {why}")
        return handler(conn, inc, info=info, target=target, settings=settings, now=now)
    except Exception as exc:  # the handler boundary: keep the message, note why
        log.exception("%s: handling failed", where)
        return Outcome(f"{where}: failed", error=f"{info.name}-{target.role}: "
                                                 f"{type(exc).__name__}: {exc}")


def plan_hold(conn: Connection, *, inbound_id: int, info: ListInfo, plan: PostPlan, raw: bytes,
              settings: Settings, now: dt.datetime) -> Outcome:
    """What a held post writes besides its ``held`` row (moderator and poster notices).

    Apply it after the ``held`` insert in the same transaction.  Never raises.
    """
    try:
        return _plan_hold(conn, inbound_id=inbound_id, info=info, plan=plan, raw=raw,
                          settings=settings, now=now)
    except Exception as exc:  # a notice must not keep the post from being held
        log.exception("inbound %d held on %s: planning the notices failed", inbound_id,
                      info.name)
        return Outcome(f"inbound {inbound_id} held on {info.name}: no notices",
                       error=f"{info.name}: hold notices failed: {type(exc).__name__}: {exc}")
