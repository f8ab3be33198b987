"""Issues: the editor's service functions and the state machine.

States and the moves between them (``TRANSITIONS``; the clock makes the two marked *)::

    draft ──schedule──► scheduled ──claim*──► sending ──done*──► sent
      │  ◄─unschedule──    │                   │   ▲
      └──cancel──► cancelled ◄──cancel─────────┤   resume
                                               pause │
                                               ▼   │
                                              paused

Every move is one guarded ``UPDATE … WHERE state IN (…)``: two editors, or an editor
and the clock, can never both win.  Pausing moves the issue's pending and deferred
delivery rows to ``paused`` (the delivery engine claims only ``pending`` rows, so rows
already handed to the broker are skipped); resuming moves exactly those rows back and
asks the clock to hand them out again.  Nothing is ever sent from the top again.

Each function takes the caller's ``Connection`` (the unit of work); write through
``mailer.db.writing``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, case, func, insert, select, update

from mailer.bounce_events import complaints_by_outbound
from mailer.db import utcnow
from mailer.errors import InvalidInput, NotFound
from mailer.models import Delivery, MailingList, Outbound
from newsletters.models import FeedItem, Issue, NewsletterFeed
from newsletters.render import IssueContent, ItemView, NewsletterInfo
from newsletters.schedule import Schedule, local_schedule

__all__ = [
    "MAX_ITEMS", "TRANSITIONS", "IssueRow", "IssueStateError", "arrange_items",
    "cancel_issue", "candidate_items", "choose_items", "create_issue", "get_issue", "issue_content",
    "issue_items", "issue_status", "list_issues", "newsletter_info", "pause_issue",
    "resume_issue", "schedule_issue", "schedule_now", "unschedule_issue", "update_issue",
]

ISSUES = Issue.__table__
D = Delivery.__table__
MAX_ITEMS = 20  # feed items an issue carries unless the editor orders more in
REMAINING = ("pending", "sending", "deferred")

# action -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "edit": (frozenset({"draft", "scheduled"}), ""),
    "schedule": (frozenset({"draft", "scheduled"}), "scheduled"),
    "unschedule": (frozenset({"scheduled"}), "draft"),
    "claim": (frozenset({"scheduled"}), "sending"),
    "pause": (frozenset({"sending"}), "paused"),
    "resume": (frozenset({"paused"}), "sending"),
    "cancel": (frozenset({"draft", "scheduled", "sending", "paused"}), "cancelled"),
    "finish": (frozenset({"sending"}), "sent"),
}


class IssueStateError(InvalidInput):
    """The issue is not in a state that allows this (e.g. pausing a sent issue)."""


@dataclass(frozen=True)
class IssueRow:
    id: int
    list_id: int
    subject: str
    preheader: str
    state: str
    blocks: list[str]
    text_version: str | None
    item_order: list[int]
    dropped_items: list[int]
    sent_items: list[int] | None
    send_at: dt.datetime | None
    send_zone: str | None
    send_local: str | None
    outbound_id: int | None
    archive_html: str | None
    last_error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


_COLUMNS = [ISSUES.c[f.name] for f in fields(IssueRow)]


def newsletter_info(conn: Connection, name: str) -> NewsletterInfo:
    row = conn.execute(select(MailingList.id, MailingList.name, MailingList.display_name,
                              MailingList.short_name, MailingList.description, MailingList.kind)
                       .where(MailingList.name == name)).first()
    if row is None or row.kind != "newsletter":
        known = conn.scalars(select(MailingList.name).where(MailingList.kind == "newsletter")
                             .order_by(MailingList.name)).all()
        raise NotFound(f"no newsletter called {name!r}; newsletters: {', '.join(known)}")
    return NewsletterInfo(row.id, row.name, row.display_name, row.short_name, row.description)


def _newsletter_by_id(conn: Connection, list_id: int) -> NewsletterInfo:
    name = conn.execute(select(MailingList.name).where(MailingList.id == list_id)).scalar_one()
    return newsletter_info(conn, name)


def get_issue(conn: Connection, issue_id: int) -> IssueRow:
    row = conn.execute(select(*_COLUMNS).where(ISSUES.c.id == issue_id)).first()
    if row is None:
        raise NotFound(f"no issue #{issue_id} (see: citymail newsletters issue list)")
    return IssueRow(*row)


def create_issue(conn: Connection, newsletter: str, *, subject: str,
                 blocks: Sequence[str] = (), text_version: str | None = None,
                 preheader: str = "", now: dt.datetime | None = None) -> int:
    info = newsletter_info(conn, newsletter)
    subject = _subject(subject)
    now = now or utcnow()
    return conn.execute(insert(ISSUES).values(
        list_id=info.id, subject=subject, preheader=preheader.strip(), state="draft",
        blocks=list(blocks), text_version=text_version, item_order=[], dropped_items=[],
        created_at=now, updated_at=now).returning(ISSUES.c.id)).scalar_one()


def _subject(subject: str) -> str:
    subject = " ".join(subject.split())
    if not subject:
        raise InvalidInput("an issue needs a subject (--subject)")
    if len(subject) > 250:
        raise InvalidInput(f"the subject is {len(subject)} characters; keep it under 250")
    return subject


def _move(conn: Connection, issue_id: int, action: str, *, now: dt.datetime,
          **values: Any) -> IssueRow:
    """Apply ``action`` if the issue is in a state that allows it; else IssueStateError."""
    sources, target = TRANSITIONS[action]
    if target:
        values["state"] = target
    done = conn.execute(update(ISSUES).where(ISSUES.c.id == issue_id, ISSUES.c.state.in_(sources))
                        .values(updated_at=now, **values).returning(ISSUES.c.id)).first()
    if done is None:
        current = get_issue(conn, issue_id)  # NotFound for a wrong id
        allowed = " or ".join(sorted(sources))
        raise IssueStateError(f"issue #{issue_id} is {current.state}; only {allowed} issues "
                              f"can {action.replace('edit', 'be edited')}")
    return get_issue(conn, issue_id)


def update_issue(conn: Connection, issue_id: int, *, subject: str | None = None,
                 blocks: Sequence[str] | None = None, text_version: str | None = None,
                 preheader: str | None = None, now: dt.datetime | None = None) -> IssueRow:
    values: dict[str, Any] = {}
    if subject is not None:
        values["subject"] = _subject(subject)
    if blocks is not None:
        values["blocks"] = list(blocks)
    if text_version is not None:
        values["text_version"] = text_version or None
    if preheader is not None:
        values["preheader"] = preheader.strip()
    return _move(conn, issue_id, "edit", now=now or utcnow(), **values)


# -- feed items ------------------------------------------------------------------------------
def _last_start(conn: Connection, list_id: int, issue_id: int) -> dt.datetime | None:
    return conn.execute(select(func.max(ISSUES.c.started_at, type_=ISSUES.c.started_at.type))
                        .where(ISSUES.c.list_id == list_id, ISSUES.c.id != issue_id,
                               ISSUES.c.state.in_(("sending", "paused", "sent")))).scalar()


def _views(conn: Connection, where: Any) -> list[ItemView]:
    F = FeedItem.__table__
    rows = conn.execute(
        select(F.c.id, F.c.title, F.c.link, F.c.html, F.c.published_at, NewsletterFeed.title)
        .join(NewsletterFeed, NewsletterFeed.id == F.c.feed_id).where(where)
        .order_by(case((F.c.published_at.is_(None), 1), else_=0), F.c.published_at.desc(),
                  F.c.id.desc()).limit(500)).all()
    return [ItemView(r[0], r[1], r[2], r[3], r[4], r[5] or "") for r in rows]


def candidate_items(conn: Connection, issue: IssueRow) -> list[ItemView]:
    """The newsletter's feed items first seen since its last issue started sending."""
    F = FeedItem.__table__
    since = _last_start(conn, issue.list_id, issue.id)
    where = F.c.list_id == issue.list_id
    if since is not None:
        where = where & (F.c.first_seen_at > since)
    return _views(conn, where)


def issue_items(conn: Connection, issue: IssueRow) -> list[ItemView]:
    """The items the issue carries, in the editor's order (frozen once it was sent)."""
    if issue.sent_items is not None:
        by_id = {v.id: v for v in _views(conn, FeedItem.__table__.c.id.in_(issue.sent_items))}
        return [by_id[i] for i in issue.sent_items if i in by_id]
    return choose_items(candidate_items(conn, issue), issue.item_order, issue.dropped_items)


def choose_items(candidates: Sequence[ItemView], order: Iterable[int],
                 dropped: Iterable[int]) -> list[ItemView]:
    """The editor's ``order`` first, then the newest others up to ``MAX_ITEMS``; never
    a dropped one.  Pure: the editor's live preview applies unsaved choices with it."""
    by_id = {v.id: v for v in candidates}
    dropped = set(dropped)
    ordered = [by_id[i] for i in order if i in by_id and i not in dropped]
    chosen = {v.id for v in ordered}
    rest = [v for i, v in by_id.items() if i not in chosen and i not in dropped]
    return ordered + rest[:max(0, MAX_ITEMS - len(ordered))]


def arrange_items(conn: Connection, issue_id: int, *, order: Iterable[int] = (),
                  drop: Iterable[int] = (), restore: Iterable[int] = (),
                  now: dt.datetime | None = None) -> list[ItemView]:
    """Put ``order`` first (in that order), drop or restore items; returns the new list."""
    issue = get_issue(conn, issue_id)
    order, drop, restore = list(order), set(drop), set(restore)
    known = {v.id for v in candidate_items(conn, issue)}
    unknown = sorted((set(order) | drop | restore) - known)
    if unknown:
        raise InvalidInput(f"item(s) {', '.join(map(str, unknown))} are not among the new "
                           f"feed items of issue #{issue_id}")
    dropped = (set(issue.dropped_items) | drop) - restore - set(order)
    new_order = order + [i for i in issue.item_order if i not in order and i not in dropped]
    issue = _move(conn, issue_id, "edit", now=now or utcnow(), item_order=new_order,
                  dropped_items=sorted(dropped))
    return issue_items(conn, issue)


def issue_content(conn: Connection, issue: IssueRow, *, date: dt.datetime) -> IssueContent:
    return IssueContent(
        issue_id=issue.id, newsletter=_newsletter_by_id(conn, issue.list_id),
        subject=issue.subject, preheader=issue.preheader, blocks=tuple(issue.blocks),
        items=tuple(issue_items(conn, issue)), text_version=issue.text_version, date=date)


# -- schedule, cancel, pause, resume ---------------------------------------------------------
def schedule_issue(conn: Connection, issue_id: int, at: str | dt.datetime, *, zone: str,
                   now: dt.datetime | None = None) -> Schedule:
    """Send at the local wall time ``at`` in ``zone`` (a reschedule when already scheduled)."""
    now = now or utcnow()
    when = local_schedule(at, zone)
    if when.send_at < now - dt.timedelta(minutes=5):
        raise InvalidInput(f"{at} ({zone}) is in the past; give a later time, or 'now'")
    _move(conn, issue_id, "schedule", now=now, send_at=when.send_at, send_zone=when.zone,
          send_local=when.local, last_error=None)
    return when


def schedule_now(conn: Connection, issue_id: int, *, zone: str,
                 now: dt.datetime | None = None) -> Schedule:
    """Send at the clock's next tick."""
    now = now or utcnow()
    when = Schedule(send_at=now, zone=zone,
                    local=now.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M"))
    _move(conn, issue_id, "schedule", now=now, send_at=when.send_at, send_zone=zone,
          send_local=when.local, last_error=None)
    return when


def unschedule_issue(conn: Connection, issue_id: int, *,
                     now: dt.datetime | None = None) -> IssueRow:
    return _move(conn, issue_id, "unschedule", now=now or utcnow(), send_at=None,
                 send_zone=None, send_local=None)


def cancel_issue(conn: Connection, issue_id: int, *, now: dt.datetime | None = None) -> int:
    """Cancel; an issue being sent stops where it is.  Returns the deliveries not sent."""
    issue = _move(conn, issue_id, "cancel", now=now or utcnow())
    if issue.outbound_id is None:
        return 0
    return conn.execute(update(D).where(D.c.outbound_id == issue.outbound_id,
                                        D.c.state.in_(("pending", "deferred", "paused")))
                        .values(state="cancelled", claimed_by=None)).rowcount or 0


def pause_issue(conn: Connection, issue_id: int, *, now: dt.datetime | None = None) -> int:
    """Stop handing out copies; returns how many deliveries wait.  Copies already with a
    worker (``sending``) finish and are recorded as usual."""
    issue = _move(conn, issue_id, "pause", now=now or utcnow())
    return conn.execute(update(D).where(D.c.outbound_id == issue.outbound_id,
                                        D.c.state.in_(("pending", "deferred")))
                        .values(state="paused")).rowcount or 0


def resume_issue(conn: Connection, issue_id: int, *, now: dt.datetime | None = None) -> int:
    """Continue from the checkpoint: only the paused rows go out again, each once."""
    now = now or utcnow()
    issue = _move(conn, issue_id, "resume", now=now)
    count = conn.execute(update(D).where(D.c.outbound_id == issue.outbound_id,
                                         D.c.state == "paused")
                         .values(state="pending", due_at=now)).rowcount or 0
    # The workers' clock hands out pending rows of undispatched outbound messages.
    conn.execute(update(Outbound).where(Outbound.id == issue.outbound_id)
                 .values(dispatched_at=None))
    return count


# -- progress --------------------------------------------------------------------------------
def issue_status(conn: Connection, issue_id: int, *, now: dt.datetime | None = None,
                 window: dt.timedelta = dt.timedelta(minutes=1)) -> dict[str, Any]:
    """Progress, rate and ETA of an issue from its delivery rows."""
    now = now or utcnow()
    issue = get_issue(conn, issue_id)
    info = _newsletter_by_id(conn, issue.list_id)
    counts = {s: 0 for s in ("pending", "sending", "sent", "deferred", "failed", "paused",
                             "cancelled")}
    recent = complaints = 0
    if issue.outbound_id is not None:
        # ARF complaints are recorded per outbound message (mailer.bounce_events).
        complaints = complaints_by_outbound(conn, [issue.outbound_id]).get(issue.outbound_id, 0)
        counts.update(dict(conn.execute(select(D.c.state, func.count())  # type: ignore[arg-type]
                                        .where(D.c.outbound_id == issue.outbound_id)
                                        .group_by(D.c.state)).all()))
        recent = conn.execute(select(func.count()).where(
            D.c.outbound_id == issue.outbound_id, D.c.state == "sent",
            D.c.sent_at > now - window)).scalar_one()
    total = sum(counts.values())
    remaining = sum(counts[s] for s in REMAINING)
    rate = recent / window.total_seconds()
    if issue.state == "sending" and remaining:
        eta: float | None = round(remaining / rate, 1) if rate else None
    else:
        eta = 0.0 if not remaining and issue.state in ("sending", "sent") else None
    return {
        "id": issue.id, "newsletter": info.name, "subject": issue.subject,
        "state": issue.state, "send_at": _iso(issue.send_at), "send_local": issue.send_local,
        "send_zone": issue.send_zone, "started_at": _iso(issue.started_at),
        "finished_at": _iso(issue.finished_at), "total": total, **counts,
        "remaining": remaining, "complaints": complaints,
        "percent": round(100 * counts["sent"] / total, 1) if total else 0.0,
        "rate_per_s": round(rate, 1), "eta_seconds": eta,
        "last_error": issue.last_error,
    }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def list_issues(conn: Connection, newsletter: str | None = None) -> list[dict[str, Any]]:
    c = ISSUES.c
    stmt = (select(c.id, MailingList.name, c.subject, c.state, c.send_at, c.send_local,
                   c.send_zone, c.created_at, c.finished_at)
            .join(MailingList, MailingList.id == ISSUES.c.list_id).order_by(ISSUES.c.id))
    if newsletter is not None:
        stmt = stmt.where(MailingList.id == newsletter_info(conn, newsletter).id)
    return [{"id": r.id, "newsletter": r.name, "subject": r.subject, "state": r.state,
             "send_at": _iso(r.send_at), "send_local": r.send_local, "send_zone": r.send_zone,
             "created_at": _iso(r.created_at), "finished_at": _iso(r.finished_at)}
            for r in conn.execute(stmt)]
