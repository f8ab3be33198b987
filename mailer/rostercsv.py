"""The roster file: a CSV of league members, as Excel writes it and as citymail exports it.

Columns (the header row names them, in any order and any case; only ``email`` is
required; a column may be left out, and an empty cell leaves what citymail holds as it is):

=============  =========================================================================
``email``      the person's address (also: ``e-mail``, ``email address``); validated and
               normalised (lower case); one person per address
``name``       full name, as it appears in greetings (also: ``full name``)
``title``      job title as the city writes it, e.g. "Deputy City Clerk II"
``role``       the role or department that decides their lists (also: ``department``,
               ``role/department``), e.g. "City Clerk", "Mayor", "Fire Chief"; the table
               is ``mailer/data/league.toml`` [roles]; a role it does not name joins no list
``city``       the member city, e.g. "Sacramento" (coastal and rural cities join their lists)
``county``     the city's county; one county per city within a file
``division``   the city's league division; one division per city within a file
``caucuses``   caucuses the person belongs to, separated by ``;`` or ``|``
``lists``      further lists or newsletters to join (names as in ``citymail lists show``),
               separated by ``;`` or ``|``; only adds (people leave by their own link)
=============  =========================================================================

Every member also joins both newsletters and the lists of their role and city.  Other
columns are ignored (and named in the report).  Blank rows are skipped.  Row numbers are
Excel's: the header is row 1.

Accepted encodings: UTF-8 (with or without the BOM Excel writes for "CSV UTF-8"),
UTF-16 with a BOM (Excel's "Unicode Text"), else Windows-1252 (Excel's plain "CSV" on
Windows).  The delimiter (``,``, ``;`` as in European Excel, or tab) is read from the
header row; line ends may be CRLF or LF.  A cell that Excel would run as a formula
(starting with ``=``, ``+``, ``-`` or ``@``) is written with a leading ``'`` on export and
read back without it.

An address that appears on several rows is one person: later non-empty cells win,
caucuses and lists are joined, and the repeat is reported.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TextIO

from mailer.errors import InvalidInput

__all__ = [
    "COLUMNS", "Duplicate", "RosterFile", "RosterRow", "RowError", "decode", "read_roster",
    "write_roster",
]

COLUMNS = ("email", "name", "title", "role", "city", "county", "division", "caucuses", "lists")
TEXT_FIELDS = ("name", "title", "role", "city", "county", "division")
ALIASES = {
    "e-mail": "email", "email address": "email", "e-mail address": "email", "mail": "email",
    "full name": "name", "job title": "title", "department": "role",
    "role/department": "role", "role / department": "role", "caucus": "caucuses",
    "list": "lists", "extra lists": "lists",
}
MAX_LENGTH = {"name": 200, "title": 200, "role": 200, "city": 200, "county": 200,
              "division": 200, "caucuses": 100, "lists": 100}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
MULTI_SEPARATORS = (";", "|")


@dataclass(frozen=True)
class RosterRow:
    """One person as a roster gives them (empty strings: cell left empty)."""

    row: int
    email: str
    name: str = ""
    title: str = ""
    role: str = ""
    city: str = ""
    county: str = ""
    division: str = ""
    caucuses: tuple[str, ...] = ()
    lists: tuple[str, ...] = ()


@dataclass(frozen=True)
class RowError:
    """Why one cell of one row cannot be used."""

    row: int
    column: str
    why: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.column}: {self.why}"


@dataclass(frozen=True)
class Duplicate:
    """A row repeating an earlier row's address; ``replaced`` names the cells it changed."""

    row: int
    first_row: int
    email: str
    replaced: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = f"row {self.row} repeats {self.email} from row {self.first_row}: merged"
        if self.replaced:
            text += f" (its {', '.join(self.replaced)} replaced the earlier value)"
        return text


@dataclass(frozen=True)
class RosterFile:
    """A roster read and checked: the good rows merged, and what was wrong."""

    rows: tuple[RosterRow, ...]
    errors: tuple[RowError, ...] = ()
    duplicates: tuple[Duplicate, ...] = ()
    ignored_columns: tuple[str, ...] = ()
    bad_rows: tuple[int, ...] = ()
    encoding: str = "utf-8"
    delimiter: str = ","
    records: int = 0  # data rows in the file, blank ones not counted
    mentioned: frozenset[str] = field(default_factory=frozenset)  # every valid address seen


def decode(data: bytes) -> tuple[str, str]:
    """The text of a roster and the encoding it was in."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"the file is neither UTF-8 nor Windows-1252 (byte {data[exc.start]:#04x} at "
            f"offset {exc.start}); save it from Excel as \"CSV UTF-8\"") from None


def _delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def _column(label: str) -> str:
    key = " ".join(label.replace("_", " ").strip().lower().split())
    return ALIASES.get(key, key)


def _cell(value: str) -> str:
    value = value.strip()
    if value.startswith("'") and value[1:2] in FORMULA_START:
        value = value[1:]
    return value


def _split(value: str) -> tuple[str, ...]:
    for sep in MULTI_SEPARATORS[1:]:
        value = value.replace(sep, MULTI_SEPARATORS[0])
    return tuple(dict.fromkeys(v.strip() for v in value.split(MULTI_SEPARATORS[0])
                               if v.strip()))


def _check(number: int, cells: dict[str, str], known_lists: Collection[str] | None,
           normalise_email: Callable[[str], str]) -> tuple[RosterRow | None, list[RowError]]:
    errors: list[RowError] = []
    raw_email = cells.get("email", "").removeprefix("mailto:").strip()
    email = ""
    if not raw_email:
        errors.append(RowError(number, "email", "is empty; every row needs an address"))
    else:
        try:
            email = normalise_email(raw_email)
        except InvalidInput as exc:
            errors.append(RowError(number, "email", str(exc)))
    for name in TEXT_FIELDS:
        if len(cells.get(name, "")) > MAX_LENGTH[name]:
            errors.append(RowError(number, name, f"is longer than {MAX_LENGTH[name]} "
                                                 "characters"))
    caucuses = _split(cells.get("caucuses", ""))
    errors += [RowError(number, "caucuses", f"{c[:40]!r}… is longer than 100 characters")
               for c in caucuses if len(c) > MAX_LENGTH["caucuses"]]
    lists = _split(cells.get("lists", ""))
    if known_lists is not None:
        errors += [RowError(number, "lists", f"no list or newsletter named {n!r} "
                                             "(see: citymail lists show)")
                   for n in lists if n not in known_lists]
    if errors:
        return None, errors
    return RosterRow(number, email, caucuses=caucuses, lists=lists,
                     **{k: cells.get(k, "") for k in TEXT_FIELDS}), []


def _merge(first: RosterRow, later: RosterRow) -> tuple[RosterRow, tuple[str, ...]]:
    changes: dict[str, object] = {}
    replaced = []
    for name in TEXT_FIELDS:
        new, old = getattr(later, name), getattr(first, name)
        if new and new != old:
            changes[name] = new
            if old:
                replaced.append(name)
    for name in ("caucuses", "lists"):
        joined = tuple(dict.fromkeys((*getattr(first, name), *getattr(later, name))))
        if joined != getattr(first, name):
            changes[name] = joined
    return replace(first, **changes), tuple(replaced)  # type: ignore[arg-type]


def _city_facts(rows: Iterable[RosterRow]) -> list[RowError]:
    """One county and one division per city within a file."""
    errors: list[RowError] = []
    seen: dict[tuple[str, str], tuple[str, int]] = {}
    for r in rows:
        for name in ("county", "division"):
            value = getattr(r, name)
            if not (r.city and value):
                continue
            earlier = seen.setdefault((r.city, name), (value, r.row))
            if earlier[0] != value:
                errors.append(RowError(r.row, name, f"{value!r} differs from {earlier[0]!r} "
                                                    f"given for {r.city} on row {earlier[1]}"))
    return errors


def read_roster(data: bytes, *, known_lists: Collection[str] | None = None,
                normalise: Callable[[str], str] | None = None) -> RosterFile:
    """Read and check a roster; raises InvalidInput only when the file as a whole is unusable.

    ``known_lists``: the list and newsletter names a ``lists`` cell may name.
    ``normalise``: address validation (default ``mailer.people.normalise_email``, which
    raises InvalidInput); this module itself stays light for ``citymail --help``.
    """
    if normalise is None:
        from mailer.people import normalise_email

        normalise = normalise_email
    text, encoding = decode(data)
    if not text.strip():
        raise InvalidInput("the file is empty; the first row must name the columns "
                           f"({', '.join(COLUMNS)})")
    delimiter = _delimiter(text.split("\n", 1)[0])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
        columns = [_column(h) for h in header]
        if "email" not in columns:
            raise InvalidInput(f"no email column in the header row {header!r}; the columns "
                               f"are {', '.join(COLUMNS)} (only email is required)")
        repeated = sorted({c for c in columns if c in COLUMNS and columns.count(c) > 1})
        if repeated:
            raise InvalidInput(f"the header names {', '.join(repeated)} more than once")
        ignored = tuple(h.strip() for h, c in zip(header, columns, strict=True)
                        if c not in COLUMNS and h.strip())
        good: dict[str, RosterRow] = {}
        errors: list[RowError] = []
        duplicates: list[Duplicate] = []
        bad_rows: list[int] = []
        mentioned: set[str] = set()
        records = 0
        for number, record in enumerate(reader, start=2):
            if not any(v.strip() for v in record):
                continue
            records += 1
            cells = {c: _cell(v) for c, v in zip(columns, record, strict=False)
                     if c in COLUMNS}
            row, problems = _check(number, cells, known_lists, normalise)
            if any(v.strip() for v in record[len(columns):]):
                row = None
                problems.append(RowError(number, f"column {len(columns) + 1}", (
                    f"the row has {len(record)} cells but the header names {len(columns)}; "
                    "quote cells that contain the delimiter")))
            if row is None:
                errors += problems
                bad_rows.append(number)
                continue
            mentioned.add(row.email)
            first = good.get(row.email)
            if first is None:
                good[row.email] = row
                continue
            good[row.email], replaced = _merge(first, row)
            duplicates.append(Duplicate(number, first.row, row.email, replaced))
    except csv.Error as exc:
        raise InvalidInput(f"row {reader.line_num}: not valid CSV: {exc}") from None
    city_errors = _city_facts(good.values())
    if city_errors:
        errors += city_errors
        wrong = {e.row for e in city_errors}
        bad_rows += sorted(wrong)
        good = {k: v for k, v in good.items() if v.row not in wrong}
    return RosterFile(rows=tuple(good.values()), errors=tuple(errors),
                      duplicates=tuple(duplicates), ignored_columns=ignored,
                      bad_rows=tuple(sorted(set(bad_rows))), encoding=encoding,
                      delimiter=delimiter, records=records, mentioned=frozenset(mentioned))


def _safe(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_START) else value


def write_roster(rows: Iterable[RosterRow], out: TextIO, *,
                 columns: Sequence[str] = COLUMNS) -> int:
    """Write rows in the roster format (comma-separated, CRLF); returns how many."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    count = 0
    for r in rows:
        values = {name: getattr(r, name) for name in ("email", *TEXT_FIELDS)}
        values["caucuses"] = "; ".join(r.caucuses)
        values["lists"] = "; ".join(r.lists)
        writer.writerow([_safe(values[c]) for c in columns])
        count += 1
    return count
