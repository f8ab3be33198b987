"""Sending issues: claim what is due, render once, fan out; personalise each chunk.

``tick(engine, settings)`` is the clock's duty (cheap when nothing is due):

1. ``start_due_issues``: for each scheduled issue whose time has come, render it once
   (outside any transaction), then in ONE write transaction claim it with
   ``UPDATE … SET state='sending' WHERE id=? AND state='scheduled' AND send_at<=now AND
   updated_at=<the version rendered> RETURNING``, store the prepared message as an
   ``outbound`` row (``kind="issue"``, ``dispatched_at`` NULL so the clock hands its chunks
   to the workers) and fan out one pending delivery per active subscriber.  Two clocks
   racing on one issue: one claim wins, the other finds nothing; a render that fails puts
   the issue back to draft with the error instead of retrying for ever.
2. ``finish_sent_issues``: an issue in ``sending`` with no pending, sending or deferred
   rows left becomes ``sent`` (no campaign stays "running" for ever).

``IssueCopies`` is the delivery engine's hook for ``kind="issue"`` outbound rows: one
query for the chunk's names and cities, then ``personalise`` per recipient.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable, Sequence
from email.header import Header
from email.utils import format_datetime

from sqlalchemy import Connection, Engine, exists, insert, select, update

from mailer import delivery, webhooks
from mailer.db import reading, utcnow, writing
from mailer.delivery import Claimed
from mailer.errors import InvalidInput
from mailer.listheaders import mailbox, phrase
from mailer.models import City, Delivery, MailingList, Member, Outbound
from mailer.people import normalise_email
from mailer.preferences import preferences_url
from mailer.sending import unsubscribe_url
from mailer.settings import Settings
from mailer.transport import Copy
from mailer.verp import verp_sender
from mailer.wire import field, fold_items
from newsletters import issues
from newsletters.models import Issue
from newsletters.prepared import RecipientInfo, fill, personalise, prepare
from newsletters.render import IssueContent, archive_url, render_issue

__all__ = ["IssueCopies", "build_prepared", "finish_sent_issues", "public_html",
           "send_test", "start_due_issues", "tick"]

log = logging.getLogger(__name__)

ISSUES = Issue.__table__
D = Delivery.__table__


def _subject_field(subject: str) -> bytes:
    charset = "us-ascii" if subject.isascii() else "utf-8"
    return field("Subject", Header(subject, charset, header_name="Subject").encode("\r\n"))


def build_prepared(content: IssueContent, settings: Settings, *, now: dt.datetime,
                   subject_prefix: str = "") -> tuple[bytes, str]:
    """The prepared message of an issue and its public web version (no personal data)."""
    rendered = render_issue(content, base_url=settings.base_url, zone=settings.timezone)
    nl = content.newsletter
    domain = settings.list_domain
    headers = [
        field("From", mailbox(nl.display_name, f"{nl.name}@{domain}").encode("utf-8")),
        _subject_field(subject_prefix + content.subject),
        field("Date", format_datetime(now)),
        field("Message-ID", f"<issue-{content.issue_id}.{uuid.uuid4().hex[:12]}@{domain}>"),
        fold_items("List-Id", [phrase(nl.display_name), f"<{nl.name}.{domain}>"], sep=" "),
        fold_items("List-Archive", [f"<{archive_url(settings.base_url, nl.name)}>"]),
        field("List-Post", "NO"),
        field("Precedence", "bulk"),
        field("X-Auto-Response-Suppress", "OOF, AutoReply"),
    ]
    prepared = prepare(headers=headers, text=rendered.text, html_text=rendered.html,
                       boundary=f"=_issue_{uuid.uuid4().hex}", mailto=f"{nl.name}-leave@{domain}")
    return prepared, public_html(rendered.html, settings)


def public_html(html: str, settings: Settings) -> str:
    """The web version: personal fields read as for any visitor."""
    manage = f"{settings.base_url}/manage"
    return fill(html, {"email": "your address", "unsubscribe_url": manage,
                       "preferences_url": manage}, escape=True)


# -- the clock's duties ----------------------------------------------------------------------
def start_due_issues(engine: Engine, settings: Settings, *,
                     now: dt.datetime | None = None) -> list[int]:
    """Claim and fan out every scheduled issue that is due; returns their ids."""
    now = now or utcnow()
    due = (ISSUES.c.state == "scheduled") & (ISSUES.c.send_at <= now)
    with reading(engine) as conn:
        ids = list(conn.scalars(select(ISSUES.c.id).where(due).order_by(ISSUES.c.send_at)))
    started = []
    for issue_id in ids:
        try:
            with reading(engine) as conn:
                issue = issues.get_issue(conn, issue_id)
                content = issues.issue_content(conn, issue, date=now)
            prepared, web = build_prepared(content, settings, now=now)
        except Exception as exc:  # a broken issue must not block the others, nor retry forever
            log.exception("issue %d could not be rendered; back to draft", issue_id)
            with writing(engine) as conn:
                conn.execute(update(ISSUES).where(ISSUES.c.id == issue_id,
                                                  ISSUES.c.state == "scheduled")
                             .values(state="draft", last_error=f"not sent: {exc}"[:2000],
                                     updated_at=utcnow()))
            continue
        with writing(engine) as conn:
            if _claim_and_fan_out(conn, issue, content, prepared, web, now=now):
                started.append(issue_id)
    return started


def _claim_and_fan_out(conn: Connection, issue: issues.IssueRow, content: IssueContent,
                       prepared: bytes, web: str, *, now: dt.datetime) -> bool:
    claimed = conn.execute(
        update(ISSUES).where(ISSUES.c.id == issue.id, ISSUES.c.state == "scheduled",
                             ISSUES.c.send_at <= now, ISSUES.c.updated_at == issue.updated_at)
        .values(state="sending", started_at=now, updated_at=now)
        .returning(ISSUES.c.id)).first()
    if claimed is None:  # another clock took it, or the editor changed it since the render
        return False
    name = content.newsletter.name
    outbound_id = conn.execute(insert(Outbound).values(
        kind="issue", list_id=issue.list_id, personal=True, body=prepared,
        bounce_local=f"{name}-bounces", created_at=now, dispatched_at=None)
        .returning(Outbound.id)).scalar_one()
    count = delivery.fan_out(conn, outbound_id=outbound_id, list_id=issue.list_id, now=now)
    conn.execute(update(ISSUES).where(ISSUES.c.id == issue.id).values(
        outbound_id=outbound_id, sent_items=[i.id for i in content.items], archive_html=web))
    log.info("issue %d of %s: sending to %d subscribers (outbound %d)", issue.id, name, count,
             outbound_id)
    return True


def finish_sent_issues(engine: Engine, *, now: dt.datetime | None = None) -> list[int]:
    """Mark ``sent`` the sending issues whose every delivery row is settled."""
    open_rows = exists().where(D.c.outbound_id == ISSUES.c.outbound_id,
                               D.c.state.in_(issues.REMAINING))
    done = (ISSUES.c.state == "sending") & ~open_rows
    with reading(engine) as conn:
        if conn.execute(select(ISSUES.c.id).where(done).limit(1)).first() is None:
            return []
    with writing(engine) as conn:
        sent = list(conn.scalars(update(ISSUES).where(done)
                                 .values(state="sent", finished_at=now or utcnow())
                                 .returning(ISSUES.c.id)))
        webhooks.emit(conn, "issue.sent", [issues.issue_status(conn, i) for i in sent])
        return sent


def tick(engine: Engine, settings: Settings, *, now: dt.datetime | None = None) -> list[int]:
    """The clock's newsletter duty; returns the issues started."""
    started = start_due_issues(engine, settings, now=now)
    finish_sent_issues(engine, now=now)
    return started


# -- test copies -----------------------------------------------------------------------------
def send_test(engine: Engine, settings: Settings, issue_id: int,
              addresses: Iterable[str]) -> int:
    """Queue a ``[TEST]`` copy of the issue as it stands to ``addresses``; the outbound id.

    It goes through the delivery engine like the real thing (the clock dispatches it);
    an address that belongs to a member is personalised as theirs.
    """
    targets = sorted({normalise_email(a) for a in addresses})
    if not targets:
        raise InvalidInput("give at least one --to ADDRESS")
    now = utcnow()
    with reading(engine) as conn:
        issue = issues.get_issue(conn, issue_id)
        content = issues.issue_content(conn, issue, date=now)
    prepared, _ = build_prepared(content, settings, now=now, subject_prefix="[TEST] ")
    with writing(engine) as conn:
        outbound_id = conn.execute(insert(Outbound).values(
            kind="issue", list_id=issue.list_id, personal=True, body=prepared,
            bounce_local=f"{content.newsletter.name}-bounces", created_at=now,
            dispatched_at=None).returning(Outbound.id)).scalar_one()
        members = dict(conn.execute(select(Member.email, Member.id)
                                    .where(Member.email.in_(targets))).all())
        conn.execute(insert(D), [{
            "outbound_id": outbound_id, "member_id": members.get(t), "list_id": issue.list_id,
            "recipient": t, "state": "pending", "attempts": 0, "due_at": now,
            "created_at": now} for t in targets])
    return outbound_id


# -- the delivery engine's hook --------------------------------------------------------------
class IssueCopies:
    """Build the copies of one claimed chunk of an issue (``ChunkSender``'s hook)."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    def recipients(self, claimed: Sequence[Claimed]) -> dict[int, RecipientInfo]:
        """One query for the chunk: names and cities by member id."""
        s = self.settings
        ids = {c.member_id for c in claimed if c.member_id is not None}
        people: dict[int, tuple[str, str]] = {}
        if ids:
            with reading(self.engine) as conn:
                people = {r.id: (r.name or "", r.city or "") for r in conn.execute(
                    select(Member.id, Member.name, City.name.label("city"))
                    .outerjoin(City, City.id == Member.city_id).where(Member.id.in_(ids)))}
        manage = f"{s.base_url}/manage"
        out = {}
        for c in claimed:
            name, city = people.get(c.member_id, ("", "")) if c.member_id else ("", "")
            if c.member_id is not None and c.list_id is not None:
                unsub = unsubscribe_url(s, c.member_id, c.list_id)
                prefs = preferences_url(s, c.member_id)
            else:
                unsub = prefs = manage
            out[c.delivery_id] = RecipientInfo(c.member_id, c.recipient, name, city, c.list_id,
                                               unsub, prefs)
        return out

    def __call__(self, claimed: Sequence[Claimed], prepared: bytes,
                 bounce_local: str) -> list[Copy]:
        s = self.settings
        info = self.recipients(claimed)
        out = []
        for c in claimed:
            head, body = personalise(prepared, info[c.delivery_id])
            out.append(Copy(verp_sender(bounce_local, s.list_domain, s.secret_key,
                                        c.delivery_id), ((c.delivery_id, c.recipient),),
                            body, head))
        return out


def newsletter_names(conn: Connection) -> list[str]:
    return list(conn.scalars(select(MailingList.name).where(MailingList.kind == "newsletter")
                             .order_by(MailingList.name)))
