"""The public archive of a newsletter: an index page, each issue's web version, RSS.

Pure functions of the database rows (no HTTP here): the web layer mounts them at
``/newsletters/NAME/`` (``archive_index``), ``/newsletters/NAME/issues/ID``
(``archive_issue``) and ``/newsletters/NAME/rss.xml`` (``archive_rss``), the URLs the
issues themselves link to (``render.issue_url`` and friends).  Only sent issues, and
issues being sent, are public; a web version never holds a subscriber's data.
"""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from mailer.errors import NotFound
from newsletters.issues import newsletter_info
from newsletters.models import Issue
from newsletters.render import _environment, archive_url, issue_url, rss_url

__all__ = ["PUBLIC_STATES", "archive_index", "archive_issue", "archive_rss"]

ISSUES = Issue.__table__
PUBLIC_STATES = ("sending", "paused", "sent")
RSS_ITEMS = 50


def _published(conn: Connection, list_id: int, limit: int | None = None) -> list[Any]:
    stmt = (select(ISSUES.c.id, ISSUES.c.subject, ISSUES.c.preheader, ISSUES.c.started_at,
                   ISSUES.c.archive_html)
            .where(ISSUES.c.list_id == list_id, ISSUES.c.state.in_(PUBLIC_STATES),
                   ISSUES.c.started_at.is_not(None))
            .order_by(ISSUES.c.started_at.desc(), ISSUES.c.id.desc()))
    return conn.execute(stmt.limit(limit) if limit else stmt).all()


def archive_index(conn: Connection, newsletter: str, *, zone: str = "America/Los_Angeles",
                  base_url: str = "") -> str:
    """The archive's index page (HTML): every published issue, newest first."""
    info = newsletter_info(conn, newsletter)
    tz = ZoneInfo(zone)
    rows = [{"subject": r.subject, "preheader": r.preheader,
             "url": issue_url(base_url, info.name, r.id) if base_url else f"issues/{r.id}",
             "date": _day(r.started_at.astimezone(tz))} for r in _published(conn, info.id)]
    rss = rss_url(base_url, info.name) if base_url else "rss.xml"
    return _environment().get_template("newsletters/archive_index.html").render(
        newsletter=info, issues=rows, rss_url=rss)


def _day(value: dt.datetime) -> str:
    return f"{value:%B} {value.day}, {value.year}"


def archive_issue(conn: Connection, newsletter: str, issue_id: int) -> str:
    """The web version of one published issue (as sent, without personal data)."""
    info = newsletter_info(conn, newsletter)
    row = conn.execute(select(ISSUES.c.archive_html).where(
        ISSUES.c.id == issue_id, ISSUES.c.list_id == info.id,
        ISSUES.c.state.in_(PUBLIC_STATES))).first()
    if row is None or not row.archive_html:
        raise NotFound(f"{newsletter} has no published issue #{issue_id}")
    return str(row.archive_html)


def archive_rss(conn: Connection, newsletter: str, base_url: str) -> str:
    """RSS 2.0 of the newest published issues (full HTML in ``description``)."""
    info = newsletter_info(conn, newsletter)
    rows = _published(conn, info.id, RSS_ITEMS)
    items = []
    for r in rows:
        link = issue_url(base_url, info.name, r.id)
        items.append(
            "<item>"
            f"<title>{escape(r.subject)}</title>"
            f"<link>{escape(link)}</link>"
            f'<guid isPermaLink="true">{escape(link)}</guid>'
            f"<pubDate>{format_datetime(r.started_at)}</pubDate>"
            f"<description>{escape(r.archive_html or r.preheader or '')}</description>"
            "</item>")
    latest = f"<lastBuildDate>{format_datetime(rows[0].started_at)}</lastBuildDate>" if rows \
        else ""
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
            f"<title>{escape(info.display_name)}</title>"
            f"<link>{escape(archive_url(base_url, info.name))}</link>"
            f"<description>{escape(info.description or info.display_name)}</description>"
            f'<atom:link href="{escape(rss_url(base_url, info.name))}" rel="self" '
            'type="application/rss+xml"/>'
            f"<language>en-us</language>{latest}{''.join(items)}</channel></rss>\n")
