"""The list footer: how it reads (text, HTML, a part of its own) and where it goes.

`place_footer` walks the MIME tree of a post and returns the byte edits that add
the footer, by the shape of the message:

=====================================  =============================================
text/plain                              appended, in the part's charset           FOOTER
text/html                               block before ``</body>``                  FOOTER
multipart/alternative                   every text/plain and text/html branch     FOOTER
multipart/related                       its root part                             FOOTER
multipart/mixed (and unknown multipart) first part if text, else a new inline
                                        text/plain part at the end           FOOTER_PART
multipart/signed, encrypted, report,    kept byte for byte as the first part of a
digest, any non-text body, a text part  new multipart/mixed whose second part is
that cannot be edited safely            the footer                            WRAPPED
no footer configured                    body untouched                         UNCHANGED
damaged MIME structure                  body untouched                      HEADERS_ONLY
=====================================  =============================================

A post is never turned into an attachment: text stays the first, inline part.
"""

from __future__ import annotations

import binascii
import hashlib
import html
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from mailer.mimetree import Entity
from mailer.textpart import FooterError, add_to_part
from mailer.wire import CRLF, field_name

__all__ = ["Body", "Edits", "footer_part", "html_footer", "place_footer", "text_footer"]

log = logging.getLogger(__name__)

_RULE = "_" * 47  # the separator line list members know from Mailman
_URL = re.compile(r"(https?://[^\s<>&\"']+)")
_TEXT = ("text/plain", "text/html")
_OPAQUE = ("multipart/signed", "multipart/encrypted", "multipart/report", "multipart/digest")


class Body(StrEnum):
    """What decoration did to the body (see the table in the module docstring)."""

    FOOTER = "footer"
    FOOTER_PART = "footer-part"
    WRAPPED = "wrapped"
    UNCHANGED = "unchanged"
    HEADERS_ONLY = "headers-only"


class _Broken(Exception):
    """The MIME structure on the way to the text part is damaged."""


@dataclass
class Edits:
    """Byte ranges to replace in the message, and what they change (for the proof).

    ``splices`` are (start, end, new bytes) in the body; ``changed`` the (old, new)
    decoded contents of edited parts; ``added`` the decoded contents of new parts;
    ``top_fields`` a new top header block when the body needs one (new
    Content-Type or Content-Transfer-Encoding), else None.
    """

    splices: list[tuple[int, int, bytes]] = field(default_factory=list)
    changed: list[tuple[bytes, bytes]] = field(default_factory=list)
    added: list[bytes] = field(default_factory=list)
    top_fields: list[bytes] | None = None

    def extend(self, other: Edits) -> None:
        """Take in the edits of a sub-part."""
        self.splices += other.splices
        self.changed += other.changed
        self.added += other.added
        self.top_fields = other.top_fields or self.top_fields


def text_footer(footer_text: str) -> str:
    """Return the footer as plain text lines (LF), after a separator rule."""
    lines = [line.rstrip() for line in footer_text.strip("\r\n").splitlines()]
    return "\n".join([_RULE, *lines]) + "\n"


def html_footer(footer_text: str) -> str:
    """Return the footer as a small HTML block: escaped text, web links made clickable."""
    lines = footer_text.strip("\r\n").splitlines()
    escaped = "<br>\n".join(_URL.sub(r'<a href="\1">\1</a>', html.escape(line)) for line in lines)
    return (
        '\n<div class="list-footer" style="margin-top:1em;padding-top:0.5em;'
        'border-top:1px solid #ccc;font-size:small;color:#555">\n' + escaped + "\n</div>\n"
    )


def footer_part(footer_text: str) -> tuple[bytes, bytes]:
    """Return a separate inline text/plain part holding the footer, and its content.

    Used where no text part can take the footer: after a signed message, or after
    the attachments of a multipart/mixed whose first part is not text.
    """
    content = "\r\n".join(footer_text.strip("\r\n").splitlines()) + "\r\n"
    raw = content.encode("utf-8")
    if content.isascii():
        head = b'Content-Type: text/plain; charset="us-ascii"\r\n'
        head += b"Content-Transfer-Encoding: 7bit\r\n"
        body = raw
    else:
        head = b'Content-Type: text/plain; charset="utf-8"\r\n'
        head += b"Content-Transfer-Encoding: quoted-printable\r\n"
        body = binascii.b2a_qp(raw, istext=True)
    return head + b"Content-Disposition: inline\r\n" + CRLF + body, raw


def place_footer(data: bytes, top: Entity, footer_text: str) -> tuple[Edits, Body, str]:
    """Return the edits that add the footer to the post *data*, the outcome and why.

    *top* is ``parse_tree(data)``. Never raises for a malformed message.
    """
    if not footer_text.strip():
        return Edits(), Body.UNCHANGED, "the list has no footer"
    try:
        edits = _Placer(data, top, footer_text).into(top)
    except _Broken as exc:
        return Edits(), Body.HEADERS_ONLY, str(exc)
    except FooterError as exc:
        return _wrap(data, top, footer_text), Body.WRAPPED, str(exc)
    return edits, Body.FOOTER_PART if edits.added else Body.FOOTER, ""


def _is_text(part: Entity) -> bool:
    """Tell whether *part* is message text (plain or HTML, not an attachment)."""
    return part.content_type in _TEXT and not part.is_attachment


def _is_container(part: Entity) -> bool:
    """Tell whether *part* is a multipart the footer may go inside."""
    return part.maintype == "multipart" and part.content_type not in _OPAQUE


class _Placer:
    """One walk of the tree; raises FooterError or _Broken where the footer can't go."""

    def __init__(self, data: bytes, top: Entity, footer_text: str) -> None:
        self.data, self.top, self.footer_text = data, top, footer_text
        self.text, self.html = text_footer(footer_text), html_footer(footer_text)

    def into(self, part: Entity) -> Edits:
        """Return the edits that put the footer into *part*."""
        kind = part.content_type
        if _is_text(part):
            edit = add_to_part(self.data, part, text=self.text, html=self.html)
            change = [(edit.old_content, edit.new_content)]
            if part is self.top:
                return Edits(
                    [(part.body_start, part.end, edit.body)], change, top_fields=list(edit.fields)
                )
            return Edits([(part.start, part.end, edit.entity_bytes())], change)
        if part.defect:  # checked first: a damaged multipart is not wrapped either
            raise _Broken(f"{kind}: {part.defect}")
        if not _is_container(part):
            raise FooterError(f"{kind} is kept intact")
        return self._containers.get(kind, _Placer.mixed)(self, part)

    def alternative(self, part: Entity) -> Edits:
        """Put the footer in every text branch: readers see whichever their client picks."""
        edits = Edits()
        for child in part.children:
            if _is_text(child) or _is_container(child):
                edits.extend(self.into(child))
        if not edits.changed:
            raise FooterError("multipart/alternative without a text branch")
        return edits

    def related(self, part: Entity) -> Edits:
        """Put the footer in the root part (RFC 2387: the ``start`` part, else the first)."""
        start = str(part.header.get_param("start") or "").strip()
        for child in part.children:
            if start and str(child.header.get("content-id", "")).strip() == start:
                return self.into(child)
        return self.into(part.children[0])

    def mixed(self, part: Entity) -> Edits:
        """Put the footer in the first part if it is text, else in a new last part."""
        first = part.children[0]
        if _is_text(first) or _is_container(first):
            try:
                return self.into(first)
            except (FooterError, _Broken) as exc:
                log.debug("footer goes in a part of its own: %s", exc)
        new_part, content = footer_part(self.footer_text)
        delimiter = b"--" + part.boundary
        if part.close_at is not None:
            at, insert = part.close_at, delimiter + CRLF + new_part + CRLF
        else:  # no closing delimiter: add the footer part, then close the multipart
            at = part.children[-1].end
            insert = CRLF + delimiter + CRLF + new_part + CRLF + delimiter + b"--"
            insert += CRLF if at == len(self.data) else b""
        return Edits([(at, at, insert)], added=[content])

    _containers: ClassVar[dict[str, Callable[[_Placer, Entity], Edits]]] = {
        "multipart/alternative": alternative,
        "multipart/related": related,
    }


def _wrap(data: bytes, top: Entity, footer_text: str) -> Edits:
    """Return the edits that make the whole body the first part of a multipart/mixed.

    The body and its Content-* fields move, byte for byte, into the first part, so
    a multipart/signed keeps its signature valid.
    """
    fields = [f if f.endswith(CRLF) else f + CRLF for f in top.fields]
    content = [f for f in fields if field_name(f).startswith("content-")]
    others = [f for f in fields if not field_name(f).startswith("content-")]
    boundary = _boundary(data)
    delimiter = b"--" + boundary
    new_part, footer_content = footer_part(footer_text)
    first = b"".join(content) + CRLF + data[top.body_start :]
    # Each part is followed by the CRLF that belongs to the next delimiter (RFC 2046).
    body = b"".join(
        [delimiter, CRLF, first, CRLF, delimiter, CRLF, new_part, CRLF, delimiter, b"--", CRLF]
    )
    others.append(b'Content-Type: multipart/mixed; boundary="' + boundary + b'"' + CRLF)
    return Edits([(top.body_start, len(data), body)], added=[footer_content], top_fields=others)


def _boundary(data: bytes) -> bytes:
    """Return a boundary that does not occur in *data*, the same for the same message."""
    digest = hashlib.sha256(data).hexdigest().encode("ascii")
    for salt in range(len(digest) - 24):
        boundary = b"=_citymail_" + digest[salt : salt + 24]
        if b"--" + boundary not in data:
            return boundary
    raise AssertionError("no free boundary")  # needs a SHA-256 collision with the content
