"""Wire form of messages: CRLF bytes that 8-bit text and long lines survive.

Two families of helpers live here:

* byte-level ones that decoration and the delivery engine use without ever
  re-serialising a message (`to_wire_form`, `split_head`, `insert_header_lines`,
  `overlong_lines`, ...): what is not edited is copied, so nothing can be damaged;
* `parse` and `serialise` for code that builds messages with `email`
  (digests, notices, newsletters): a policy with ``linesep="\\r\\n"`` that neither
  re-folds received headers nor needs ASCII when the message goes out with SMTPUTF8.

The header/body split follows CPython's feed parser exactly (same header-line
pattern, same treatment of a missing blank line), so that byte offsets found here
and the structure `email` sees never disagree.
"""

from __future__ import annotations

import re
from email import policy
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.parser import BytesParser
from io import BytesIO

__all__ = [
    "CRLF",
    "MAX_LINE",
    "field",
    "field_name",
    "field_value",
    "fold_items",
    "has_8bit_body",
    "header_end",
    "insert_header_lines",
    "needs_smtputf8",
    "overlong_lines",
    "parse",
    "serialise",
    "split_head",
    "to_crlf",
    "to_wire_form",
]

CRLF = b"\r\n"
MAX_LINE = 998
"""RFC 5322 2.1.1: a line is at most 998 octets, CRLF excluded."""

# CPython's email.feedparser.headerRE, on bytes: a header, a continuation line or an
# mbox "From " line. The first line that matches none of these ends the header block.
_HEADER_LINE = re.compile(rb"(From |[\x21-\x39\x3b-\x7e]*:|[\t ])")

# Received headers may be refolded by policy.default; ours must not be (DKIM, and the
# bytes kept exactly as received), hence refold_source="none".
_WIRE = policy.SMTP.clone(refold_source="none")
_WIRE_UTF8 = policy.SMTPUTF8.clone(refold_source="none")


def to_crlf(raw: bytes) -> bytes:
    """Return *raw* with every line end (CRLF, bare LF, bare CR) written as CRLF.

    Bare CR counts as a line end because CPython's parser splits on it too; SMTP
    forbids bare CR and LF anyway, so this changes nothing that may be sent.
    """
    if b"\r" not in raw:
        return raw.replace(b"\n", CRLF)
    return raw.replace(CRLF, b"\n").replace(b"\r", b"\n").replace(b"\n", CRLF)


def to_wire_form(raw: bytes) -> bytes:
    """Return *raw* with CRLF line ends and without an mbox ``From `` line."""
    data = to_crlf(raw)
    if data.startswith(b"From "):
        # An mbox envelope line is not part of the message (CPython drops it too).
        cut = data.find(CRLF)
        data = b"" if cut < 0 else data[cut + 2 :]
    return data


def split_head(data: bytes, start: int = 0, end: int | None = None) -> tuple[list[bytes], int]:
    """Split the header block of the entity at ``data[start:end]`` into fields.

    *data* must use CRLF line ends. Returns the fields (each one header with its
    continuation lines and CRLFs) and the offset where the body starts. As in
    CPython, a blank line is consumed as the separator while any other line that
    is not a header starts the body (a "missing separator" defect).
    """
    stop = len(data) if end is None else end
    fields: list[bytes] = []
    pos = start
    while pos < stop:
        eol = data.find(CRLF, pos, stop)
        nxt = stop if eol < 0 else eol + 2
        line = data[pos:nxt]
        if line in (CRLF, b""):
            return fields, nxt
        if not _HEADER_LINE.match(line):
            return fields, pos
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
        pos = nxt
    return fields, stop


def field_name(raw_field: bytes) -> str:
    """Return the lower-cased name of a raw header field ("" for a stray line)."""
    colon = raw_field.find(b":")
    if colon < 0 or raw_field[:1] in (b" ", b"\t"):
        return ""
    return raw_field[:colon].strip().decode("ascii", "replace").lower()


def field_value(raw_field: bytes) -> bytes:
    """Return the unfolded value of a raw header field, without surrounding blanks."""
    colon = raw_field.find(b":")
    value = raw_field[colon + 1 :] if colon >= 0 else raw_field
    return value.replace(CRLF, b"").strip()


def field(name: str, value: str | bytes) -> bytes:
    """Return one header field line; *value* must already be folded and encoded."""
    if isinstance(value, str):
        value = value.encode("ascii")
    return name.encode("ascii") + b": " + value + CRLF


def fold_items(name: str, items: list[str], sep: str = ", ", width: int = 78) -> bytes:
    """Return a field whose *items* are joined by *sep*, folded between items.

    Used for structured headers (List-*, Reply-To): folding only at the separators
    keeps every item, e.g. a long signed URL, intact on one line.
    """
    lines: list[str] = []
    current = f"{name}:"
    for index, item in enumerate(items):
        piece = item + (sep.rstrip() if index < len(items) - 1 else "")
        if len(current) + 1 + len(piece) > width and current != f"{name}:":
            lines.append(current)
            current = " " + piece
        else:
            current += " " + piece
    lines.append(current)
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def header_end(data: bytes) -> int:
    """Return the offset just past the blank line that ends the header block.

    For messages in wire form produced here (decorate's output), where the header
    block always ends with an empty line.
    """
    if data.startswith(CRLF):
        return 2
    cut = data.find(b"\r\n\r\n")
    return len(data) if cut < 0 else cut + 4


def insert_header_lines(data: bytes, lines: bytes) -> bytes:
    """Return *data* with the CRLF-terminated header *lines* added to its header block.

    The delivery engine uses this to splice the few personal header bytes (RFC 8058
    List-Unsubscribe, To, ...) into a message decorated once per post.
    """
    if lines and not lines.endswith(CRLF):
        raise ValueError("header lines must end with CRLF")
    cut = header_end(data)
    blank = cut - 2 if data[cut - 2 : cut] == CRLF else cut
    return data[:blank] + lines + data[blank:]


def overlong_lines(data: bytes, limit: int = MAX_LINE) -> list[bytes]:
    """Return the lines of *data* longer than *limit* octets (CRLF excluded)."""
    if len(data) <= limit:
        return []
    return [line for line in data.split(CRLF) if len(line) > limit]


def needs_smtputf8(data: bytes) -> bool:
    """Tell whether the header block holds raw 8-bit bytes (RFC 6532 headers)."""
    return not data[: header_end(data)].isascii()


def has_8bit_body(data: bytes) -> bool:
    """Tell whether the body holds raw 8-bit bytes (needs 8BITMIME to relay)."""
    return not data[header_end(data) :].isascii()


def parse(raw: bytes) -> EmailMessage:
    """Parse *raw* with the modern policy; never raises on malformed input."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def serialise(message: EmailMessage, *, smtputf8: bool = False) -> bytes:
    """Return *message* as wire bytes: CRLF line ends, received headers not refolded.

    With *smtputf8* non-ASCII headers are written as raw UTF-8 (RFC 6532), for a
    relay that announced SMTPUTF8; otherwise they are RFC 2047 encoded. 8-bit bodies
    are written as they are (8BITMIME), never re-encoded.
    """
    out = BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=_WIRE_UTF8 if smtputf8 else _WIRE).flatten(
        message
    )
    return out.getvalue()
