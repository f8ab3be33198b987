"""Handlers of the command addresses: ``-request``, ``-join``, ``-leave``, ``-owner``, ``-confirm``.

Each handler reads (inside the caller's read transaction) and returns an
:class:`~listservs.effects.Outcome` for the caller to apply in its write transaction.
Answers go to the sender's address (From, else Sender, else the envelope sender), never to
a Reply-To, and at most ``ANSWERS_PER_DAY`` a day per address and list.

Replies to notices are matched by token: the notice comes from ``LIST-confirm+TOKEN@``
(From and Reply-To), so a reply lands on the confirm address with the token; a reply sent
to ``LIST-request@`` instead still works when its Subject keeps ``(confirm TOKEN)``.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import Connection, select

from listservs.commands import Command, parse_commands, reply_decision
from listservs.confirm import confirm_address, read_token
from listservs.effects import Effect, Outcome, SendMail
from listservs.joins import (
    Incoming,
    Step,
    answer_limit,
    approval_decision,
    confirm_request,
    join_step,
    leave_step,
    mode_step,
)
from listservs.lists import ListInfo, list_roles
from listservs.mailout import mail
from listservs.moderation import ACTIONS, plan_decision
from mailer.addresses import Target
from mailer.authorship import header_values
from mailer.errors import InvalidInput
from mailer.models import Held, Member, Subscription
from mailer.settings import Settings

__all__ = ["plan_confirm", "plan_join", "plan_leave", "plan_owner", "plan_request"]

log = logging.getLogger(__name__)

_MODES = {("digest", "on"): "digest", ("digest", ""): "digest", ("digest", "off"): "regular",
          ("digest", "mime"): "digest", ("digest", "plain"): "digest-plain",
          ("nomail", "on"): "nomail", ("nomail", ""): "nomail", ("nomail", "off"): "regular",
          ("mail", ""): "regular", ("mail", "on"): "regular", ("mail", "off"): "nomail"}


def _mode_of(command: Command) -> str | None:
    return _MODES.get((command.verb, command.args[0] if command.args else ""))


def _answer(inc: Incoming, info: ListInfo, settings: Settings,
            steps: list[tuple[str, Step]], *, ignored: tuple[str, ...] = (),
            single: bool = False) -> SendMail:
    assert inc.sender is not None
    token = next((s.token for _, s in steps if s.token), None)
    address = confirm_address(info.name, settings.list_domain, token) if token else None
    extra = {"token": token, "confirm_address": address, "email": inc.sender}
    if single and steps[0][1].template != "command_results":
        step = steps[0][1]
        return mail(info, settings, template=step.template, to=[inc.sender], sender=address,
                    replying=inc.replying, context={**extra, **step.context},
                    limit=answer_limit(info, inc.sender))
    results = [{"line": line, "code": s.code, **s.context} for line, s in steps]
    return mail(info, settings, template="command_results", to=[inc.sender], sender=address,
                replying=inc.replying, limit=answer_limit(info, inc.sender),
                context={**extra, "results": results, "ignored": list(ignored),
                         "show_help": any(s.code == "help" for _, s in steps)})


def _outcome(inc: Incoming, info: ListInfo, steps: list[tuple[str, Step]],
             answer: SendMail) -> Outcome:
    effects: list[Effect] = [e for _, s in steps for e in s.effects]
    codes = ", ".join(s.code for _, s in steps)
    return Outcome(f"inbound {inc.inbound_id} to {info.name} commands from {inc.sender}: "
                   f"{codes}", (*effects, answer))


def _roster(conn: Connection, info: ListInfo) -> list[dict[str, str]]:
    rows = conn.execute(select(Member.email, Subscription.mode)
                        .join(Member, Member.id == Subscription.member_id)
                        .where(Subscription.list_id == info.id, Subscription.status == "active")
                        .order_by(Member.email)).all()
    return [{"email": r.email, "mode": r.mode} for r in rows]


def _step(conn: Connection, inc: Incoming, info: ListInfo, settings: Settings,
          now: dt.datetime, command: Command, *, join_mode: str | None) -> Step:
    verb = command.verb
    if verb == "help":
        return Step("help")
    if verb == "join":
        asked = _MODES.get((command.args[0], "on")) if command.args else None
        return join_step(conn, inc, info, settings, now, mode=join_mode or asked or "regular")
    if verb == "leave":
        return leave_step(conn, inc, info, settings, now)
    if verb in ("digest", "nomail", "mail"):
        mode = _mode_of(command) or "regular"
        if join_mode is not None:
            return Step("mode_in_join", context={"mode": mode})
        return mode_step(conn, inc, info, settings, now, mode=mode)
    if verb == "who":
        owners = {o.lower() for o in list_roles(conn, info.id, "owner")}
        if inc.sender in owners:
            return Step("who", context={"roster": _roster(conn, info)})
        return Step("who_denied")
    return Step("needs_token")  # confirm/approve/reject/discard without a token


def plan_request(conn: Connection, inc: Incoming, *, info: ListInfo, target: Target,
                 settings: Settings, now: dt.datetime) -> Outcome:
    """``LIST-request``: the commands in the Subject and the first body lines."""
    parsed = parse_commands(inc.msg)
    if parsed.token:
        return plan_confirm(conn, inc, info=info, target=target, settings=settings, now=now,
                            token=parsed.token)
    if not inc.sender:
        return Outcome(f"inbound {inc.inbound_id} to {info.name}-request: no sender to answer")
    commands = list(parsed.commands)
    join_mode: str | None = None
    if any(c.verb == "join" for c in commands):
        modes = [m for c in commands if (m := _mode_of(c))]
        join_mode = modes[-1] if modes else None
    steps: list[tuple[str, Step]] = []
    token = None
    for command in commands:
        step = _step(conn, inc, info, settings, now, command, join_mode=join_mode)
        if step.token and token:
            step = Step("one_confirmation")
        token = token or step.token
        steps.append((command.line, step))
    if not steps:
        steps = [("", Step("help"))]
    answer = _answer(inc, info, settings, steps, ignored=parsed.ignored)
    return _outcome(inc, info, steps, answer)


def plan_join(conn: Connection, inc: Incoming, *, info: ListInfo, target: Target,
              settings: Settings, now: dt.datetime) -> Outcome:
    """``LIST-join``: subscribe the sender (the body is not read)."""
    if not inc.sender:
        return Outcome(f"inbound {inc.inbound_id} to {info.name}-join: no sender")
    steps = [("join", join_step(conn, inc, info, settings, now))]
    return _outcome(inc, info, steps, _answer(inc, info, settings, steps, single=True))


def plan_leave(conn: Connection, inc: Incoming, *, info: ListInfo, target: Target,
               settings: Settings, now: dt.datetime) -> Outcome:
    """``LIST-leave``: unsubscribe the sender (the body is not read)."""
    if not inc.sender:
        return Outcome(f"inbound {inc.inbound_id} to {info.name}-leave: no sender")
    steps = [("leave", leave_step(conn, inc, info, settings, now))]
    return _outcome(inc, info, steps, _answer(inc, info, settings, steps, single=True))


def plan_owner(conn: Connection, inc: Incoming, *, info: ListInfo, target: Target,
               settings: Settings, now: dt.datetime) -> Outcome:
    """``LIST-owner``: forward the message unchanged to the owners.

    Like a local delivery agent, the forward gets a ``Delivered-To: LIST-owner@`` trace line
    on top; a message that already carries it has looped and is dropped.
    """
    address = f"{info.name}-owner@{settings.list_domain}"
    if any(v.strip().lower() == address for v in header_values(inc.msg, "Delivered-To")):
        return Outcome(f"inbound {inc.inbound_id} to {address} dropped: it looped back")
    owners = list_roles(conn, info.id, "owner") or list_roles(conn, info.id, "moderator")
    if not owners:
        return Outcome(f"inbound {inc.inbound_id} to {address}: the list has no owner",
                       error=f"{address}: no owner to forward to")
    eol = b"\r\n" if b"\r\n" in inc.raw[:2000] else b"\n"
    data = b"Delivered-To: " + address.encode() + eol + inc.raw
    forward = SendMail(data, tuple(owners), bounce_local=f"{info.name}-bounces",
                       list_id=info.id)
    return Outcome(f"inbound {inc.inbound_id} to {address} forwarded to {len(owners)} owners",
                   (forward,))


def plan_confirm(conn: Connection, inc: Incoming, *, info: ListInfo, target: Target,
                 settings: Settings, now: dt.datetime, token: str | None = None) -> Outcome:
    """``LIST-confirm+TOKEN``: a reply to a moderation, confirmation or approval notice."""
    keys = [k.encode() for k in settings.secret_keys]
    found = read_token(keys, info.name, token or target.token, now=now.timestamp())
    to = [inc.sender] if inc.sender else []
    where = f"inbound {inc.inbound_id} to {info.name}-confirm from {inc.sender}"

    def tell(template: str, **context: object) -> tuple[SendMail, ...]:
        if not to:
            return ()
        return (mail(info, settings, template=template, to=to, replying=inc.replying,
                     context=context, limit=answer_limit(info, to[0])),)

    if found is None:
        return Outcome(f"{where}: refused a forged, garbled or expired token",
                       tell("token_invalid"))
    decision = reply_decision(inc.msg)
    if found.kind == "r":
        return confirm_request(conn, inc, info, settings, ident=found.ident, decision=decision)
    if found.kind == "a":
        return approval_decision(conn, inc, info, settings, ident=found.ident,
                                 decision=decision)
    held_id = conn.execute(select(Held.id).where(Held.inbound_id == found.ident,
                                                 Held.list_id == info.id)).scalar()
    if held_id is None:
        return Outcome(f"{where}: no held message for the token", tell("token_invalid"))
    if decision is None or decision.action not in ACTIONS:
        return Outcome(f"{where}: no decision in the reply for held {held_id}",
                       tell("decision_unclear", moderation=True))
    try:
        return plan_decision(conn, held_id=held_id, decision=decision,
                             decided_by=inc.sender or "unknown", settings=settings,
                             answer=inc.replying)
    except InvalidInput as exc:
        return Outcome(f"{where}: {exc}", tell("moderation_state", detail=str(exc)))
