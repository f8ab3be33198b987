"""Erasure everywhere: find and blank one person's address and name in every table.

``mailer.privacy.forget`` erases what it knows by name (members, deliveries, posts,
held). Tables come and go with the other parts (bounce events, list requests, answers
sent, archives, digests, webhooks), and ``mailer`` may not import the outer layers, so
this sweep reads the live schema (SQLAlchemy reflection) and scans every text and JSON
column: the address (any case) becomes the erased placeholder, the person's full name
becomes "". What stays on purpose: ``inbound``'s received bytes and envelope (kept
exactly as received, DESIGN.md principle 2), the hashed ``suppressions``, and webhook
events still pending (they tell receivers to erase the person too).

``find_traces`` runs in the read transaction, ``scrub_rows`` in the erasure's write
transaction, by primary key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    MetaData,
    String,
    Table,
    Text,
    cast,
    or_,
    select,
    tuple_,
    update,
)

__all__ = ["Trace", "find_traces", "person_names", "scrub_rows"]

# table -> the only columns scanned there (None: skip the table)
_ONLY: dict[str, frozenset[str] | None] = {
    "inbound": frozenset({"error"}),  # raw, mail_from, rcpt_to are kept as received
    "suppressions": None,
    "alembic_version": None,
}
# table -> rows to leave alone
_LEAVE: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "webhook_events": lambda row: row.get("state") == "pending",
}
# Only full names ("Kim Núñez", at least two words): a lone "Pat" would blank "Patricia"
# in other people's rows.
_MIN_NAME = 5


@dataclass(frozen=True)
class Trace:
    """Rows of one table that mention the person."""

    table: str
    keys: tuple[tuple[Any, ...], ...]


def _schema(conn: Connection) -> list[Table]:
    meta = MetaData()
    meta.reflect(conn)
    return list(meta.sorted_tables)


def _columns(table: Table) -> list[Any]:
    only = _ONLY.get(table.name, frozenset())
    if only is None or not table.primary_key.columns:
        return []
    return [c for c in table.columns if isinstance(c.type, String | Text | JSON)
            and (not only or c.name in only)]


def person_names(conn: Connection, address: str) -> tuple[str, ...]:
    """Full names (two words or more) stored beside the address (members, requests...)."""
    names: set[str] = set()
    for table in _schema(conn):
        cols = table.columns
        key = cols.get("email") if "email" in cols else cols.get("address")
        if key is None or "name" not in cols or table.name in _ONLY:
            continue
        for (name,) in conn.execute(select(cols["name"]).where(key == address)):
            text = " ".join(name.split()) if isinstance(name, str) else ""
            if len(text) >= _MIN_NAME and " " in text:
                names.add(text)
    return tuple(sorted(names))


def find_traces(conn: Connection, address: str, names: tuple[str, ...]) -> list[Trace]:
    """Every row whose text mentions *address* (any case) or one of *names*."""
    found: list[Trace] = []
    for table in _schema(conn):
        columns = _columns(table)
        if not columns:
            continue
        tests = []
        for c in columns:
            text = cast(c, Text) if isinstance(c.type, JSON) else c
            tests.append(text.ilike(f"%{_escape(address)}%", escape="\\"))
            tests += [text.contains(n, autoescape=True) for n in names]
        pk = list(table.primary_key.columns)
        rows = conn.execute(select(*pk, *[c for c in columns if c not in pk])
                            .where(or_(*tests))).mappings().all()
        leave = _LEAVE.get(table.name)
        keys = tuple(tuple(r[c.name] for c in pk) for r in rows if not (leave and leave(r)))
        if keys:
            found.append(Trace(table.name, keys))
    return found


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _scrub(value: Any, pattern: re.Pattern[str], hidden: str, names: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        value = pattern.sub(hidden, value)
        for name in names:
            value = value.replace(name, "")
        return value
    if isinstance(value, list):
        return [_scrub(v, pattern, hidden, names) for v in value]
    if isinstance(value, dict):
        return {_scrub(k, pattern, hidden, names): _scrub(v, pattern, hidden, names)
                for k, v in value.items()}
    return value


def scrub_rows(conn: Connection, traces: list[Trace], *, address: str,
               names: tuple[str, ...], hidden: str) -> int:
    """Blank the address and names in the rows *traces* found; returns rows changed."""
    if not traces:
        return 0
    tables = {t.name: t for t in _schema(conn)}
    # The address itself, not a longer one that ends or starts with it (banjo@ for jo@).
    pattern = re.compile(r"(?<![\w.!#$%&'*+/=?^`{|}~-])" + re.escape(address)
                         + r"(?![\w-]|\.\w)", re.IGNORECASE)
    changed = 0
    for trace in traces:
        table = tables.get(trace.table)
        if table is None:
            continue
        pk = list(table.primary_key.columns)
        columns = [c for c in _columns(table) if c not in pk]
        for start in range(0, len(trace.keys), 500):
            part = trace.keys[start:start + 500]
            rows = conn.execute(select(*pk, *columns)
                                .where(tuple_(*pk).in_(part))).mappings().all()
            for row in rows:
                new = {c.name: _scrub(row[c.name], pattern, hidden, names) for c in columns}
                new = {k: v for k, v in new.items() if v != row[k]}
                if new:
                    conn.execute(update(table).where(*[c == row[c.name] for c in pk])
                                 .values(**new))
                    changed += 1
    return changed
