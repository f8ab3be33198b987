"""Joining, leaving and delivery modes by email, with confirmation and owner approval.

Who may change a subscription by mail, and when it takes effect:

* A **league member** (``members`` row, ``is_league_member``) who joins a list they never
  left is subscribed at once.  Re-joining a list one left, leaving, and ``digest``/``nomail``
  act at once only when the mail is *authenticated* (an aligned DKIM/SPF pass or a DMARC
  pass for the From address, as the posting policy judges it): a From header proves
  nothing, and "left" may only be undone by the person's own opt-in.
* Otherwise the address gets a confirmation request from ``LIST-confirm+rTOKEN@`` (a signed
  token, valid ``CONFIRM_DAYS``); replying to it (anything but "cancel") confirms.  This is
  the double opt-in of people who are not league members.
* Where the list's config says ``join_needs_approval``, a confirmed join by a non-member
  then waits for an owner, who gets a notice from ``LIST-confirm+aTOKEN@`` and replies
  ``approve``, ``reject REASON`` or ``discard``.

A confirmed join is the person's own opt-in: ``source="self"``, which brings back a list
they had left.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any

from sqlalchemy import Connection, select

from listservs.commands import Decision
from listservs.confirm import confirm_address, make_token
from listservs.effects import (
    Effect,
    Leave,
    Limit,
    MoveRequest,
    NewRequest,
    Outcome,
    SendMail,
    SetMode,
    Subscribe,
)
from listservs.facts import poster_address
from listservs.lists import ListInfo, list_roles
from listservs.mailout import Replying, mail
from listservs.mailtext import parse
from listservs.models_moderation import ListRequest
from mailer.authorship import author_addresses, domain_of
from mailer.dkim_verify import authenticate
from mailer.models import Member, Subscription
from mailer.settings import Settings

__all__ = [
    "CONFIRM_DAYS", "Incoming", "Standing", "Step", "answer_limit", "approval_decision",
    "confirm_request", "expire_requests", "join_step", "leave_step", "mode_step", "standing",
]

CONFIRM_DAYS = 7
APPROVAL_DAYS = 7  # after the confirmation window, for an owner to decide
ANSWERS_PER_DAY = 10  # answers to one address about one list (RFC 3834 section 2)
MODE_NAMES = {"regular": "every message", "digest": "digests",
              "digest-plain": "plain-text digests", "nomail": "no mail"}


@dataclass(frozen=True)
class Incoming:
    """A message to a command address, read once."""

    inbound_id: int
    raw: bytes
    msg: EmailMessage
    mail_from: str
    sender: str | None  # From, else Sender, else the envelope sender
    name: str  # the From display name
    replying: Replying

    @classmethod
    def read(cls, inbound_id: int, raw: bytes, mail_from: str) -> Incoming:
        msg = parse(raw)
        sender = poster_address(msg, envelope_sender=mail_from)
        try:
            names = [n for n, a in getaddresses([str(msg.get("From", ""))]) if a]
        except Exception:
            names = []
        return cls(inbound_id, raw, msg, mail_from, sender, (names[0] if names else "")[:200],
                   Replying.to(msg))

    def authenticated(self, settings: Settings) -> bool:
        """An aligned pass vouches for the single From address, which is the sender."""
        found, problem = author_addresses(self.msg)
        if problem is not None or not found or found[0] != self.sender:
            return False
        auth = authenticate(self.raw, self.msg,
                            trusted_authserv_ids=settings.trusted_authserv_ids,
                            verify_dkim=settings.verify_dkim)
        return auth.authenticated and auth.from_domain == domain_of(found[0])


@dataclass(frozen=True)
class Standing:
    """What the database says about an address and a list."""

    league_member: bool = False
    member_status: str | None = None  # active | disabled | erased; None: unknown address
    status: str | None = None  # subscription: active | left | removed; None: never
    mode: str | None = None


def standing(conn: Connection, list_id: int, email: str) -> Standing:
    row = conn.execute(select(Member.id, Member.is_league_member, Member.status)
                       .where(Member.email == email.lower())).first()
    if row is None:
        return Standing()
    sub = conn.execute(select(Subscription.status, Subscription.mode)
                       .where(Subscription.member_id == row.id,
                              Subscription.list_id == list_id)).first()
    return Standing(bool(row.is_league_member), row.status, sub.status if sub else None,
                    sub.mode if sub else None)


@dataclass(frozen=True)
class Step:
    """The result of one command: a code for the answer's template, and what it writes.

    ``template`` is the message to send when the command came alone (``LIST-join``);
    ``token`` asks the answer to come from ``LIST-confirm+token@``.
    """

    code: str
    effects: tuple[Effect, ...] = ()
    template: str = "command_results"
    token: str | None = None
    context: dict[str, Any] = field(default_factory=dict)


def answer_limit(info: ListInfo, address: str) -> Limit:
    return Limit(info.id, address, "answer", per_day=ANSWERS_PER_DAY)


def _request(inc: Incoming, info: ListInfo, settings: Settings, now: dt.datetime, *,
             action: str, mode: str | None, needs_approval: bool = False) -> Step:
    assert inc.sender is not None
    expires = now + dt.timedelta(days=CONFIRM_DAYS)
    token = make_token(settings.secret_key, "r", info.name, inc.inbound_id,
                       expires=int(expires.timestamp()))
    new = NewRequest(inc.inbound_id, info.id, inc.sender, inc.name, action, mode,
                     needs_approval, expires)
    return Step("confirm_sent", (new,), "confirm_request", token,
                {"action": action, "mode": mode, "days": CONFIRM_DAYS,
                 "needs_approval": needs_approval})


def join_step(conn: Connection, inc: Incoming, info: ListInfo, settings: Settings,
              now: dt.datetime, *, mode: str = "regular") -> Step:
    assert inc.sender is not None
    st = standing(conn, info.id, inc.sender)
    if st.member_status in ("erased", "disabled"):
        return Step("cannot_subscribe")
    if st.status == "active":
        return Step("already_subscribed", context={"mode": st.mode})
    if st.league_member and (st.status is None or inc.authenticated(settings)):
        return Step("subscribed", (Subscribe(info.name, inc.sender, inc.name, mode),),
                    "list_welcome", context={"mode": mode})
    needs_approval = not st.league_member and bool(info.config.get("join_needs_approval"))
    return _request(inc, info, settings, now, action="join", mode=mode,
                    needs_approval=needs_approval)


def leave_step(conn: Connection, inc: Incoming, info: ListInfo, settings: Settings,
               now: dt.datetime) -> Step:
    assert inc.sender is not None
    if standing(conn, info.id, inc.sender).status != "active":
        return Step("not_subscribed")
    if inc.authenticated(settings):
        return Step("left", (Leave(info.id, inc.sender),), "list_goodbye")
    return _request(inc, info, settings, now, action="leave", mode=None)


def mode_step(conn: Connection, inc: Incoming, info: ListInfo, settings: Settings,
              now: dt.datetime, *, mode: str) -> Step:
    assert inc.sender is not None
    st = standing(conn, info.id, inc.sender)
    if st.status != "active":
        return Step("not_subscribed")
    if st.mode == mode:
        return Step("mode_set", context={"mode": mode})
    if inc.authenticated(settings):
        return Step("mode_set", (SetMode(info.id, inc.sender, mode),), context={"mode": mode})
    return _request(inc, info, settings, now, action="mode", mode=mode)


def _request_row(conn: Connection, **where: int) -> Any:
    t = ListRequest.__table__
    cond = [getattr(t.c, k) == v for k, v in where.items()]
    return conn.execute(select(t).where(*cond)).mappings().first()


def _done_effects(req: Any, info: ListInfo) -> tuple[tuple[Effect, ...], str]:
    """What a request does once confirmed (and approved), and the template that says so."""
    if req["action"] == "join":
        return (Subscribe(info.name, req["email"], req["name"], req["mode"] or "regular"),), \
            "list_welcome"
    if req["action"] == "leave":
        return (Leave(info.id, req["email"]),), "list_goodbye"
    return (SetMode(info.id, req["email"], req["mode"] or "regular"),), "list_mode_changed"


def confirm_request(conn: Connection, inc: Incoming, info: ListInfo, settings: Settings,
                    *, ident: int, decision: Decision | None) -> Outcome:
    """A reply to a confirmation request (token kind ``r``; ``ident`` is its inbound id)."""
    req = _request_row(conn, inbound_id=ident, list_id=info.id)
    to = [inc.sender] if inc.sender else []
    if req is None or req["state"] != "pending":
        state = req["state"] if req is not None else "unknown"
        return Outcome(f"confirmation for {info.name} request {ident}: already {state}",
                       (mail(info, settings, template="request_state", to=to,
                             replying=inc.replying, context={"state": state},
                             limit=answer_limit(info, to[0])),) if to else ())
    context = {"action": req["action"], "mode": req["mode"], "email": req["email"]}
    if decision is not None and decision.action in ("cancel", "discard", "reject"):
        then = (mail(info, settings, template="request_state", to=[req["email"]],
                     replying=inc.replying, context={"state": "cancelled"}),)
        return Outcome(f"{info.name} request {req['id']} cancelled by {inc.sender}",
                       (MoveRequest(req["id"], "pending", "cancelled", inc.sender, then=then),))
    if req["action"] == "join" and req["needs_approval"]:
        owners = list_roles(conn, info.id, "owner") or list_roles(conn, info.id, "moderator")
        token = make_token(settings.secret_key, "a", info.name, req["id"],
                           expires=int(req["expires_at"].timestamp()) + APPROVAL_DAYS * 86400)
        address = confirm_address(info.name, settings.list_domain, token)
        then = (
            mail(info, settings, template="join_approval", to=owners, sender=address,
                 context={**context, "name": req["name"], "token": token,
                          "confirm_address": address}),
            mail(info, settings, template="request_state", to=[req["email"]],
                 replying=inc.replying, context={"state": "awaiting_approval"}),
        )
        return Outcome(f"{info.name} join of {req['email']} confirmed; waiting for an owner",
                       (MoveRequest(req["id"], "pending", "confirmed", then=then),))
    effects, template = _done_effects(req, info)
    then = (*effects, mail(info, settings, template=template, to=[req["email"]],
                           replying=inc.replying, context=context))
    return Outcome(f"{info.name} {req['action']} of {req['email']} confirmed",
                   (MoveRequest(req["id"], "pending", "done", req["email"], then=then),))


def approval_decision(conn: Connection, inc: Incoming, info: ListInfo, settings: Settings,
                      *, ident: int, decision: Decision | None) -> Outcome:
    """An owner's reply to a join approval notice (token kind ``a``; ``ident``: request id)."""
    req = _request_row(conn, id=ident, list_id=info.id)
    owner = inc.sender or "unknown"
    ack_to = [inc.sender] if inc.sender else []
    if req is None or req["state"] != "confirmed":
        state = req["state"] if req is not None else "unknown"
        return Outcome(f"{info.name} approval of request {ident}: already {state}",
                       (mail(info, settings, template="request_state", to=ack_to,
                             replying=inc.replying, context={"state": state}),)
                       if ack_to else ())
    if decision is None or decision.action not in ("approve", "reject", "discard"):
        return Outcome(f"{info.name} approval of request {ident}: no decision in the reply",
                       (mail(info, settings, template="decision_unclear", to=ack_to,
                             replying=inc.replying, context={"moderation": False}),)
                       if ack_to else ())
    context = {"action": "join", "mode": req["mode"], "email": req["email"],
               "reason": decision.reason}
    then: list[Effect] = []
    if decision.action == "approve":
        effects, template = _done_effects(req, info)
        then += [*effects, mail(info, settings, template=template, to=[req["email"]],
                                context=context)]
        state = "done"
    else:
        state = "refused"
        if decision.action == "reject":
            then.append(mail(info, settings, template="join_refused", to=[req["email"]],
                             context=context))
    ack: SendMail | None = mail(info, settings, template="request_decided", to=ack_to,
                                replying=inc.replying,
                                context={**context, "decision": decision.action}) \
        if ack_to else None
    then += [ack] if ack is not None else []
    return Outcome(f"{info.name} join of {req['email']} {decision.action}d by {owner}",
                   (MoveRequest(req["id"], "confirmed", state, owner, decision.reason or None,
                                then=tuple(then)),))


def expire_requests(conn: Connection, *, now: dt.datetime, batch: int = 200) -> list[Outcome]:
    """Requests nobody confirmed (or no owner approved) in time: expired, silently."""
    t = ListRequest.__table__
    due = ((t.c.state == "pending") & (t.c.expires_at <= now)) | (
        (t.c.state == "confirmed") & (t.c.expires_at <= now - dt.timedelta(days=APPROVAL_DAYS)))
    rows = conn.execute(select(t.c.id, t.c.state).where(due).order_by(t.c.id).limit(batch)).all()
    return [Outcome(f"request {r.id} expired", (MoveRequest(r.id, r.state, "expired",
                                                            "expiry"),)) for r in rows]
