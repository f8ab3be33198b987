"""Full-text search of a list's archive: SQLite FTS5 embedded, PostgreSQL when scaled out.

What people type is read the same way on both: words must all appear (any order,
stemmed: "budgets" finds "budget"), a "quoted phrase" must appear as written, and
``-word`` leaves out posts with that word. On SQLite the query is rebuilt from those
terms (every term quoted, so FTS5 operators typed by a user are plain words); PostgreSQL
reads the same syntax itself with ``websearch_to_tsquery``. Results are ranked (bm25,
``ts_rank_cd``) with a snippet whose matches are marked by ``MARK_START``/``MARK_END``
(the caller escapes the text, then turns the marks into ``<mark>``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, text

__all__ = ["MARK_END", "MARK_START", "Hit", "fts5_query", "search", "terms"]

MARK_START, MARK_END = "\x02", "\x03"
_TERM = re.compile(r'(-?)"([^"]*)"?|(-?)(\S+)')


@dataclass(frozen=True)
class Hit:
    post_id: int
    subject: str
    author: str
    sender: str
    sent_at: dt.datetime
    snippet: str  # plain text with MARK_START/MARK_END around matches


def terms(query: str) -> list[tuple[bool, str]]:
    """(excluded, phrase) pairs of a query as typed; empty phrases dropped."""
    out = []
    for m in _TERM.finditer(query):
        negated = bool(m.group(1) or m.group(3))
        phrase = " ".join((m.group(2) if m.group(2) is not None else m.group(4)).split())
        phrase = phrase.strip('"')
        if phrase and re.search(r"\w", phrase):
            out.append((negated, phrase))
    return out


def fts5_query(query: str) -> str:
    """An FTS5 MATCH expression for a query as typed ("" when nothing is searchable)."""
    quoted = [(neg, '"' + phrase.replace('"', '""') + '"') for neg, phrase in terms(query)]
    wanted = [q for neg, q in quoted if not neg]
    if not wanted:  # FTS5 cannot start with NOT: a query of exclusions finds nothing
        return ""
    expr = " AND ".join(wanted)
    for q in (q for neg, q in quoted if neg):
        expr = f"({expr}) NOT {q}"
    return expr


_SQLITE = text("""
SELECT p.id AS post_id, a.subject, a.author, p.sender, a.sent_at,
       snippet(archive_fts, 2, :start, :end, ' … ', 24) AS snippet
FROM archive_fts
JOIN archive_messages AS a ON a.id = archive_fts.rowid
JOIN posts AS p ON p.id = a.post_id
WHERE archive_fts MATCH :match AND a.list_id = :list_id
ORDER BY bm25(archive_fts, 5.0, 2.0, 1.0), a.sent_at DESC
LIMIT :limit
""")

_POSTGRES = text("""
SELECT p.id AS post_id, a.subject, a.author, p.sender, a.sent_at,
       ts_headline('english', a.body, q, :options) AS snippet
FROM archive_messages AS a
JOIN posts AS p ON p.id = a.post_id,
     websearch_to_tsquery('english', :query) AS q
WHERE a.list_id = :list_id AND a.search @@ q
ORDER BY ts_rank_cd(a.search, q) DESC, a.sent_at DESC
LIMIT :limit
""")


def search(conn: Connection, list_id: int, query: str, *, limit: int = 50) -> list[Hit]:
    """The list's posts matching ``query``, best first."""
    from mailer.models_archive import ArchiveMessage

    sent_type = ArchiveMessage.__table__.c.sent_at.type
    if conn.dialect.name == "postgresql":
        if not terms(query):
            return []
        options = (f"StartSel={MARK_START}, StopSel={MARK_END}, MaxWords=30, MinWords=12, "
                   "MaxFragments=2, FragmentDelimiter=\" … \"")
        stmt = _POSTGRES.bindparams(query=query, options=options)
    else:
        match = fts5_query(query)
        if not match:
            return []
        stmt = _SQLITE.bindparams(match=match, start=MARK_START, end=MARK_END)
    stmt = stmt.bindparams(bindparam("list_id", list_id), bindparam("limit", limit))
    stmt = stmt.columns(sent_at=sent_type)  # UTC restored as on every other read
    return [Hit(r.post_id, r.subject or "", (r.author or r.sender) if r.sender else "",
                r.sender or "", r.sent_at, r.snippet or "") for r in conn.execute(stmt)]
