"""Many rows in one statement: executemany straight to the driver, for short write locks.

SQLAlchemy's executemany spends ~20-40 µs per row on parameter handling (measured on
SQLite: 5,000 members and 15,000 subscriptions took 0.65 s through ``insert(Model)``,
0.08 s through the driver).  These helpers run each column's bind processor once per
value and hand plain tuples to the DB-API cursor, so a large import holds the write lock
for milliseconds per thousand rows.  Values are what the models take (aware datetimes,
bools); table and column names come from the models, never from users.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection, Table, func, select, text
from sqlalchemy.orm import DeclarativeBase

__all__ = ["bulk_insert", "bulk_update", "reserve_ids"]

PAGE = 5000


def _placeholder(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _processors(conn: Connection, table: Table, names: Sequence[str]
                ) -> list[Callable[[Any], Any] | None]:
    return [table.c[n].type.bind_processor(conn.dialect) for n in names]


def _run(conn: Connection, sql: str, table: Table, names: Sequence[str],
         rows: Sequence[Sequence[Any]]) -> None:
    procs = _processors(conn, table, names)
    columns = list(zip(*rows, strict=True))
    for i, proc in enumerate(procs):
        if proc is not None:  # each distinct value once: an import's timestamps are all "now"
            memo: dict[Any, Any] = {}
            columns[i] = tuple(v if v is None else memo[v] if v in memo
                               else memo.setdefault(v, proc(v)) for v in columns[i])
    converted = list(zip(*columns, strict=True))
    for start in range(0, len(converted), PAGE):
        conn.exec_driver_sql(sql, converted[start:start + PAGE])


def _table(model: type[DeclarativeBase]) -> Table:
    return cast(Table, model.__table__)


def bulk_insert(conn: Connection, model: type[DeclarativeBase],
                rows: Sequence[Mapping[str, Any]]) -> int:
    """INSERT ``rows`` (dicts with the same keys) in the caller's transaction."""
    if not rows:
        return 0
    table = _table(model)
    names = list(rows[0])
    mark = _placeholder(conn)
    sql = (f"INSERT INTO {table.name} ({', '.join(names)}) "
           f"VALUES ({', '.join([mark] * len(names))})")
    _run(conn, sql, table, names, [[r[n] for n in names] for r in rows])
    return len(rows)


def bulk_update(conn: Connection, model: type[DeclarativeBase],
                rows: Sequence[Mapping[str, Any]], *, key: str = "id") -> int:
    """UPDATE each row by ``key`` (dicts with the same keys, ``key`` among them)."""
    if not rows:
        return 0
    table = _table(model)
    names = [n for n in rows[0] if n != key]
    mark = _placeholder(conn)
    sql = (f"UPDATE {table.name} SET {', '.join(f'{n} = {mark}' for n in names)} "
           f"WHERE {key} = {mark}")
    _run(conn, sql, table, [*names, key], [[*(r[n] for n in names), r[key]] for r in rows])
    return len(rows)


def reserve_ids(conn: Connection, model: type[DeclarativeBase], count: int) -> list[int]:
    """``count`` unused primary keys for ``table`` (call inside the write transaction).

    SQLite: the write lock is held, so the next ids after the largest are free.
    PostgreSQL: taken from the table's sequence, so concurrent inserts never collide.
    """
    if count <= 0:
        return []
    table = _table(model)
    if conn.dialect.name == "postgresql":
        return list(conn.scalars(text(
            f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) "
            "FROM generate_series(1, :n)"), {"n": count}))
    top = conn.scalar(select(func.coalesce(func.max(table.c.id), 0)))
    return list(range(int(top or 0) + 1, int(top or 0) + 1 + count))
