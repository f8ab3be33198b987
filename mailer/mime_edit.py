"""Byte edits of a MIME tree: replace or remove entities, copy every other byte.

The content filter and the HTML alternative change a post's structure, yet what they do
not touch must reach members exactly as sent (the same promise decoration keeps). So
instead of re-serialising with ``email`` they splice bytes at the offsets
``mailer.mimetree`` found: an entity is replaced by new header fields and a new body, or
removed with its delimiter line. Pure functions over ``(data, tree)``; ``data`` must be
in wire form (``mailer.wire.to_wire_form``).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser

from mailer.mimetree import Entity
from mailer.wire import CRLF, field_name

__all__ = ["Splice", "apply", "decoded_text", "qp_text_part", "remove", "replace"]

_PARSER = BytesParser(policy=policy.compat32)


@dataclass(frozen=True)
class Splice:
    """Replace ``data[start:end]`` by ``new``; ``top_fields`` replaces the top header."""

    start: int
    end: int
    new: bytes
    top_fields: tuple[bytes, ...] | None = None


def replace(data: bytes, top: Entity, part: Entity, content_fields: list[bytes],
            body: bytes) -> Splice:
    """Replace *part* by an entity with *content_fields* (Content-* lines) and *body*.

    For the top entity its other header fields (From, Subject, ...) are kept.
    """
    if part is top:
        keep = [f if f.endswith(CRLF) else f + CRLF for f in top.fields
                if not field_name(f).startswith("content-")]
        return Splice(top.body_start, len(data), body, tuple(keep + content_fields))
    return Splice(part.start, part.end, b"".join(content_fields) + CRLF + body)


def remove(data: bytes, parent: Entity, index: int) -> Splice:
    """Remove child *index* of the multipart *parent*, with its delimiter line."""
    child = parent.children[index]
    delimiter = b"--" + parent.boundary
    at = data.rfind(delimiter, parent.body_start, child.start)
    if index + 1 < len(parent.children):
        following = parent.children[index + 1].start
        stop = data.rfind(delimiter, child.end, following)
    else:
        stop = parent.close_at if parent.close_at is not None else child.end
    return Splice(at, stop if stop >= at else child.end, b"")


def apply(data: bytes, top: Entity, splices: list[Splice]) -> bytes:
    """Return *data* with the (non-overlapping) *splices* made."""
    fields = list(top.fields)
    out: list[bytes] = []
    pos = 0
    for s in sorted(splices, key=lambda s: s.start):
        if s.top_fields is not None:
            fields = list(s.top_fields)
        out += [data[pos:s.start], s.new]
        pos = s.end
    out.append(data[pos:])
    body = b"".join(out)[top.body_start:]
    head = b"".join(f if f.endswith(CRLF) else f + CRLF for f in fields)
    return head + CRLF + body


def decoded_text(data: bytes, part: Entity) -> str:
    """The text of a leaf part, decoded with its transfer encoding and charset."""
    message = _PARSER.parsebytes(data[part.start:part.end])
    payload = message.get_payload(decode=True)
    raw = payload if isinstance(payload, bytes) else b""
    charset = message.get_content_charset() or "utf-8"
    try:
        return raw.decode(charset, "replace")
    except LookupError:  # an unknown charset name
        return raw.decode("utf-8", "replace")


def qp_text_part(text: str, subtype: str = "plain") -> tuple[list[bytes], bytes]:
    """Content fields and quoted-printable UTF-8 body of a new text part."""
    content = "\r\n".join(text.splitlines()) + "\r\n"
    body = binascii.b2a_qp(content.encode("utf-8"), istext=True)
    body = body.replace(b"\r\n", b"\n").replace(b"\n", CRLF)
    fields = [f'Content-Type: text/{subtype}; charset="utf-8"\r\n'.encode(),
              b"Content-Transfer-Encoding: quoted-printable\r\n"]
    return fields, body
