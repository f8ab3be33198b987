"""The resources of /api/v1 about mail going out: held messages, issues, deliveries.

Decisions go through ``listservs.moderation.plan_decision`` (planned from a read, applied
in one write, exactly as ``citymail moderation`` does); issues through
``newsletters.issues`` (the functions of ``citymail newsletters issue``); delivery
progress is ``mailer.delivery.status``, the data of ``citymail deliveries status --json``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from listservs.commands import Decision
from listservs.lists import get_list
from listservs.moderation import ACTIONS, hold_days, plan_decision
from mailer import delivery
from mailer.db import reading, utcnow, writing
from mailer.models import Held, MailingList, Outbound
from newsletters import issues
from web.api import ApiError, Call, Endpoint, Param, Reply
from web.api_schema import obj

__all__ = ["PUBLISHING"]


def _flag(call: Call, name: str) -> bool:
    text = call.query.get(name, "false").lower()
    if text not in ("true", "false", "1", "0"):
        raise ApiError(400, f"?{name}= must be true or false, got {text!r}")
    return text in ("true", "1")


# -- held messages -------------------------------------------------------------------------------
def get_held(call: Call) -> dict[str, Any]:
    """Messages waiting for a moderator, oldest first (``citymail moderation list``)."""
    stmt = (select(Held.id, Held.sender, Held.subject, Held.reasons, Held.received_at,
                   Held.state, MailingList.name.label("list_name"))
            .join(MailingList, MailingList.id == Held.list_id)
            .where(Held.state == "held").order_by(Held.id))
    with reading(call.engine) as conn:
        if call.query.get("list"):
            stmt = stmt.where(Held.list_id == get_list(conn, call.query["list"]).id)
        rows = conn.execute(stmt).all()
        days = {n: hold_days(get_list(conn, n)) for n in {r.list_name for r in rows}}
    return {"held": [{
        "id": r.id, "list": r.list_name, "sender": r.sender, "subject": r.subject,
        "reasons": list(r.reasons or []), "received": r.received_at.isoformat(),
        "expires": (r.received_at + dt.timedelta(days=days[r.list_name])).isoformat(),
        "state": r.state} for r in rows]}


def post_held(call: Call) -> dict[str, Any]:
    held_id = call.params["id"]
    decision = Decision(call.body["action"], call.body.get("reason", ""))
    with reading(call.engine) as conn:
        outcome = plan_decision(conn, held_id=held_id, decision=decision,
                                decided_by=f"api:{call.client.name if call.client else '?'}",
                                settings=call.settings)
    with writing(call.engine) as conn:
        done = outcome.apply(conn, now=utcnow())
        state = conn.scalar(select(Held.state).where(Held.id == held_id))
    if not done:
        raise ApiError(409, f"held message {held_id} was decided by someone else meanwhile")
    return {"id": held_id, "state": state, "note": outcome.note}


# -- issues --------------------------------------------------------------------------------------
def get_issues(call: Call) -> dict[str, Any]:
    with reading(call.engine) as conn:
        return {"issues": issues.list_issues(conn, call.query.get("newsletter") or None)}


def get_issue(call: Call) -> dict[str, Any]:
    with reading(call.engine) as conn:
        return issues.issue_status(conn, call.params["id"])


def post_issue(call: Call) -> Reply:
    b = call.body
    with writing(call.engine) as conn:
        issue_id = issues.create_issue(conn, b["newsletter"], subject=b["subject"],
                                       blocks=b.get("blocks", []),
                                       text_version=b.get("text") or None,
                                       preheader=b.get("preheader", ""))
        status = issues.issue_status(conn, issue_id)
    return Reply(status, 201)


def post_schedule(call: Call) -> dict[str, Any]:
    issue_id, at = call.params["id"], call.body["at"].strip()
    zone = call.body.get("zone") or call.settings.timezone
    with writing(call.engine) as conn:
        if at.lower() == "now":
            issues.schedule_now(conn, issue_id, zone=zone)
        else:
            issues.schedule_issue(conn, issue_id, at, zone=zone)
        return issues.issue_status(conn, issue_id)


def _move(action: str) -> Any:
    functions = {"cancel": issues.cancel_issue, "pause": issues.pause_issue,
                 "resume": issues.resume_issue}

    def handler(call: Call) -> dict[str, Any]:
        with writing(call.engine) as conn:
            functions[action](conn, call.params["id"])
            return issues.issue_status(conn, call.params["id"])

    handler.__name__ = f"post_{action}"
    return handler


# -- deliveries ----------------------------------------------------------------------------------
def get_deliveries(call: Call) -> dict[str, Any]:
    """``citymail deliveries status --json``: progress, rate and ETA per message."""
    with reading(call.engine) as conn:
        rows = delivery.status(conn, include_finished=_flag(call, "all"))
        meta = {r.id: r for r in conn.execute(
            select(Outbound.id, Outbound.kind, Outbound.created_at, MailingList.name)
            .outerjoin(MailingList, MailingList.id == Outbound.list_id)
            .where(Outbound.id.in_([r["id"] for r in rows])))}
    for row in rows:
        m = meta.get(int(str(row["id"])))
        if m is not None:
            row.update(kind=m.kind, list=m.name, created=m.created_at.isoformat())
    return {"deliveries": rows}


# -- the table -----------------------------------------------------------------------------------
DECISION_BODY = obj({"action": {"type": "string", "enum": list(ACTIONS)},
                     "reason": {"type": "string", "maxLength": 2000}}, required=("action",))
ISSUE_BODY = obj({
    "newsletter": {"type": "string", "minLength": 1, "maxLength": 100},
    "subject": {"type": "string", "minLength": 1, "maxLength": 250},
    "preheader": {"type": "string", "maxLength": 250},
    "blocks": {"type": "array", "items": {"type": "string", "maxLength": 20_000},
               "maxItems": 20},
    "text": {"type": "string", "maxLength": 50_000},
}, required=("newsletter", "subject"))
SCHEDULE_BODY = obj({
    "at": {"type": "string", "minLength": 1, "maxLength": 40,
           "description": "local wall time 'YYYY-MM-DD HH:MM' in the zone, or 'now'"},
    "zone": {"type": "string", "maxLength": 60,
             "description": "an IANA zone (default CITYMAIL_TIMEZONE, America/Los_Angeles)"},
}, required=("at",))

PUBLISHING: tuple[Endpoint, ...] = (
    Endpoint("GET", "/held", get_held, "held:read", "Messages held for moderation",
             query=(Param("list", "only this list"),), errors=(404,)),
    Endpoint("POST", "/held/{id:int}", post_held, "held:write",
             "Approve, reject (with a reason) or discard a held message",
             body=DECISION_BODY, errors=(400, 404, 409)),
    Endpoint("GET", "/issues", get_issues, "issues:read", "Newsletter issues",
             query=(Param("newsletter", "only this newsletter"),), errors=(404,)),
    Endpoint("POST", "/issues", post_issue, "issues:write", "Create a draft issue",
             body=ISSUE_BODY, status=201, errors=(400, 404)),
    Endpoint("GET", "/issues/{id:int}", get_issue, "issues:read",
             "An issue's state, progress, rate and ETA", errors=(404,)),
    Endpoint("POST", "/issues/{id:int}/schedule", post_schedule, "issues:write",
             "Schedule (or reschedule) at a local time; it follows daylight saving time",
             body=SCHEDULE_BODY, errors=(400, 404, 409)),
    *(Endpoint("POST", f"/issues/{{id:int}}/{action}", _move(action), "issues:write", text,
               errors=(404, 409))
      for action, text in (("cancel", "Never send it, or stop sending it"),
                           ("pause", "Stop handing out copies; resume continues"),
                           ("resume", "Send the copies still waiting, each once"))),
    Endpoint("GET", "/deliveries", get_deliveries, "deliveries:read",
             "Progress and ETA of messages being delivered",
             query=(Param("all", "include finished messages", {"type": "boolean"}),)),
)
