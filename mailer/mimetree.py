"""Byte offsets of a message's MIME entities, and the proof that an edit kept them.

`email` parses a message into objects but forgets where each part lay in the
bytes, and writing it back re-encodes what it did not understand. Decoration
instead edits a few byte ranges and copies the rest; this module finds those
ranges. The split follows CPython's feed parser rule for rule (boundary lines,
the CRLF before a delimiter belonging to the delimiter, repeated delimiters,
outer delimiters ending inner parts), and `leaves_preserved` checks afterwards,
with `email` itself, that every leaf part not meant to change decodes as before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser

from mailer.wire import CRLF, overlong_lines, split_head

__all__ = ["Entity", "decoded_leaves", "leaves_preserved", "parse_tree"]

_HEADERS = BytesHeaderParser(policy=policy.compat32)
_PARSER = BytesParser(policy=policy.compat32)
_MAX_DEPTH = 40  # deeper nesting is an attack or a loop, not mail


@dataclass(frozen=True, slots=True)
class Entity:
    """One MIME entity: where it lies in the message bytes and what it declares.

    ``data[start:body_start]`` is the header block (with the blank line, if any)
    and ``data[body_start:end]`` the body; ``end`` stops before the CRLF that
    belongs to the next delimiter. For a multipart, ``close_at`` is where its
    closing delimiter line starts (None when missing) and ``defect`` says why it
    could not be split ("" when it could).
    """

    start: int
    body_start: int
    end: int
    fields: tuple[bytes, ...]
    header: Message
    children: tuple[Entity, ...] = ()
    close_at: int | None = None
    boundary: bytes = b""
    defect: str = ""

    @property
    def content_type(self) -> str:
        """Return the lower-cased media type, with RFC 2045's defaults."""
        return self.header.get_content_type()

    @property
    def maintype(self) -> str:
        """Return the lower-cased top-level media type."""
        return self.header.get_content_maintype()

    @property
    def is_attachment(self) -> bool:
        """Tell whether the part asks to be shown as an attachment, not as the text."""
        if self.header.get_content_disposition() == "attachment":
            return True
        # Outlook and others list a named part as an attachment even without a
        # disposition, so the footer must not land in a text file sent along.
        return bool(self.header.get_filename() or self.header.get_param("name"))


def parse_tree(data: bytes) -> Entity:
    """Return the entity tree of *data*, a message with CRLF line ends; never raises."""
    return _entity(data, 0, len(data), "text/plain", 0)


def _entity(data: bytes, start: int, end: int, default: str, depth: int) -> Entity:
    fields, body_start = split_head(data, start, end)
    header = _HEADERS.parsebytes(b"".join(fields))
    if default != "text/plain":
        header.set_default_type(default)
    if header.get_content_maintype() != "multipart":
        return Entity(start, body_start, end, tuple(fields), header)
    raw_boundary = header.get_boundary()
    if raw_boundary is None:
        return Entity(start, body_start, end, tuple(fields), header, defect="no boundary")
    boundary = raw_boundary.encode("ascii", "surrogateescape")
    if depth >= _MAX_DEPTH:
        return Entity(start, body_start, end, tuple(fields), header, defect="nested too deep")
    children, close_at = _split(data, body_start, end, boundary, header, depth)
    if not children:
        return Entity(
            start,
            body_start,
            end,
            tuple(fields),
            header,
            boundary=boundary,
            defect="start boundary not found",
        )
    return Entity(
        start, body_start, end, tuple(fields), header, tuple(children), close_at, boundary
    )


def _split(
    data: bytes, body_start: int, end: int, boundary: bytes, header: Message, depth: int
) -> tuple[list[Entity], int | None]:
    """Return the parts between the delimiters of one multipart, and its close offset."""
    delimiter = re.compile(rb"^--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r\n|\Z)", re.M)
    child_default = (
        "message/rfc822" if header.get_content_type() == "multipart/digest" else ("text/plain")
    )
    children: list[Entity] = []
    part_start: int | None = None
    previous_end = -1
    for match in delimiter.finditer(data, body_start, end):
        if match.start() == previous_end and part_start is not None:
            # CPython swallows runs of delimiter lines (closing ones included):
            # they make no empty parts.
            part_start = previous_end = match.end()
            continue
        if part_start is None and match.group(1):
            return [], None  # a closing delimiter before any opening one: no parts
        if part_start is not None:
            part_end = match.start()
            if data[part_end - 2 : part_end] == CRLF and part_end - 2 >= part_start:
                part_end -= 2  # RFC 2046: this CRLF belongs to the delimiter
            children.append(_entity(data, part_start, part_end, child_default, depth + 1))
        if match.group(1):
            return children, match.start()
        part_start = previous_end = match.end()
    if part_start is not None:
        # CPython strips the last line end of a part even when no delimiter follows.
        part_end = end - 2 if data[end - 2 : end] == CRLF and end - 2 >= part_start else end
        children.append(_entity(data, part_start, part_end, child_default, depth + 1))
    return children, None


def decoded_leaves(data: bytes) -> list[bytes]:
    """Return the decoded content of every leaf part as CPython sees it.

    Line ends are normalised to LF, since wire form rewrites them as CRLF.
    """
    message = _PARSER.parsebytes(data)
    leaves: list[bytes] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        leaves.append(normalise_eol(payload if isinstance(payload, bytes) else b""))
    return leaves


def normalise_eol(content: bytes) -> bytes:
    """Return *content* with CRLF and bare CR written as LF, for comparisons."""
    return content.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def leaves_preserved(
    before: bytes,
    after: bytes,
    *,
    changed: Sequence[tuple[bytes, bytes]] = (),
    added: Sequence[bytes] = (),
) -> str:
    """Check that *after* holds the leaves of *before*, edited only as planned.

    *changed* lists (old, new) decoded contents of the leaves that were edited and
    *added* the decoded contents of the parts inserted; every other leaf must
    decode exactly as before, in the same order, and *after* may have no line over
    998 octets that *before* did not have. Returns "" when all holds, else why not.
    """
    try:
        old, new = decoded_leaves(before), decoded_leaves(after)
    except Exception as exc:  # a parser bug must not lose the post: report it
        return f"cannot re-parse: {exc!r}"
    pending = [(normalise_eol(a), normalise_eol(b)) for a, b in changed]
    extra = [normalise_eol(a) for a in added]
    i = 0
    for j, leaf in enumerate(new):
        if i < len(old) and leaf == old[i]:
            i += 1
        elif i < len(old) and (old[i], leaf) in pending:
            pending.remove((old[i], leaf))
            i += 1
        elif leaf in extra:
            extra.remove(leaf)
        else:
            return f"leaf {j} of the output does not match leaf {i} of the original"
    if i != len(old) or pending or extra:
        return "the output lost a part or misses a planned edit"
    long_lines = overlong_lines(after)
    if long_lines:
        allowed = set(overlong_lines(before))
        if any(line not in allowed for line in long_lines):
            return "a line longer than 998 octets appeared"
    return ""
