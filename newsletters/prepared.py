"""An issue encoded once, personalised per recipient by splicing a few bytes.

``prepare`` turns the rendered issue (HTML and text holding personal-field markers, see
``marker``) into *prepared bytes*: the shared header block and the multipart/alternative
body, both parts quoted-printable, cut at the markers.  Each static piece is encoded once
and ends with a QP soft line break, so every piece starts a fresh line and a recipient's
own values (name, city, links) are encoded on their own with ``binascii.b2a_qp`` (C) and
put between them.  No line is ever longer than 76 octets.

``personalise(prepared, recipient)`` returns ``(head, body)``: ``head`` holds the
recipient's own header lines (To, RFC 8058 List-Unsubscribe and List-Unsubscribe-Post),
``body`` the rest of the message.  The parse of the prepared bytes is cached, so a chunk
of recipients costs one parse and a few microseconds each.

Layout of the prepared bytes (the outbound row's body)::

    MAGIC  JSON-meta  NUL  static0  NUL  field1  NUL  static1  NUL ...  staticN

where a field is ``h:NAME:FALLBACK`` (HTML-escaped) or ``t:NAME:FALLBACK`` (plain).
"""

from __future__ import annotations

import binascii
import functools
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from mailer.listheaders import mailbox, personal_headers
from mailer.wire import field

__all__ = ["FIELDS", "MAGIC", "RecipientInfo", "fill", "is_prepared", "marker", "personalise",
           "prepare"]

MAGIC = b"CITYMAIL-ISSUE/1\n"
FIELDS = ("name", "city", "email", "unsubscribe_url", "preferences_url")
_OPEN, _SEP, _CLOSE = "\ue000", "\ue002", "\ue001"
_MARKER = re.compile(f"{_OPEN}([a-z_]+)(?:{_SEP}([^{_CLOSE}]*))?{_CLOSE}")
_SOFT = b"=\r\n"
_NOT_ONE_LINE = re.compile(r"[\s\x00]+")
# Values that need neither HTML escaping nor QP encoding: ASCII, at most 75 octets (one QP
# line with its soft break), no leading dot.
_PLAIN = re.compile(r"[A-Za-z0-9,/:@_+~?#%;!()*-][A-Za-z0-9 .,/:@_+~?#%;!()*-]{0,73}"
                    r"[A-Za-z0-9.,/:@_+~?#%;!()*-]")


@dataclass(frozen=True)
class RecipientInfo:
    """What one copy is personalised with (member_id None: a test address)."""

    member_id: int | None
    email: str
    name: str
    city: str
    list_id: int | None
    unsubscribe_url: str
    preferences_url: str


def marker(name: str, fallback: str = "") -> str:
    """The placeholder a template writes for a personal field (fallback when empty)."""
    if name not in FIELDS:
        raise ValueError(f"unknown personal field {name!r}; known: {', '.join(FIELDS)}")
    if any(c in fallback for c in (_OPEN, _SEP, _CLOSE, "<", ">", "&", "\x00")):
        raise ValueError(f"a fallback must be plain text, got {fallback!r}")
    return f"{_OPEN}{name}{_SEP}{fallback}{_CLOSE}" if fallback else f"{_OPEN}{name}{_CLOSE}"


def fill(text: str, values: Mapping[str, str], *, escape: bool) -> str:
    """Replace the markers of ``text`` (for previews and the web archive)."""
    def one(match: re.Match[str]) -> str:
        value = _one_line(values.get(match.group(1), "")) or (match.group(2) or "")
        return html.escape(value) if escape else value
    return _MARKER.sub(one, text)


def _one_line(value: str) -> str:
    return _NOT_ONE_LINE.sub(" ", value).strip()


def _dot_safe(qp: bytes) -> bytes:
    """QP with no line starting with a dot: SMTP needs no dot-stuffing for it."""
    if qp.startswith(b"."):
        qp = b"=2E" + qp[1:]
    return qp.replace(b"\n.", b"\n=2E") if b"\n." in qp else qp


def _qp(text: str) -> bytes:
    """Quoted-printable of ``text`` with CRLF line ends (lines of at most 76 octets)."""
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return _dot_safe(binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n"))


def _pieces(text: str, kind: bytes) -> list[bytes]:
    """Alternating encoded static pieces and field references of one body part."""
    out: list[bytes] = []
    pos = 0
    for match in _MARKER.finditer(text):
        out.append(_qp(text[pos:match.start()]) + _SOFT)
        out.append(kind + b":" + match.group(1).encode() + b":"
                   + (match.group(2) or "").encode("utf-8"))
        pos = match.end()
    out.append(_qp(text[pos:]))
    return out


def _part(boundary: str, subtype: str) -> bytes:
    return (f"--{boundary}\r\nContent-Type: text/{subtype}; charset=\"utf-8\"\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n").encode("ascii")


def prepare(*, headers: list[bytes], text: str, html_text: str, boundary: str,
            mailto: str) -> bytes:
    """Encode an issue once.  ``headers`` are the shared CRLF-terminated fields.

    ``mailto`` is the address of the List-Unsubscribe mailto: (``NAME-leave@domain``).
    """
    head = b"".join(headers) + field("MIME-Version", "1.0") + field(
        "Content-Type", f'multipart/alternative; boundary="{boundary}"') + b"\r\n"
    text_pieces = _pieces(text, b"t")
    html_pieces = _pieces(html_text, b"h")
    # Join the structure onto the static pieces: [static, field, static, ..., static].
    pieces = [head + _part(boundary, "plain") + text_pieces[0], *text_pieces[1:]]
    pieces[-1] += b"\r\n" + _part(boundary, "html") + html_pieces[0]
    pieces.extend(html_pieces[1:])
    pieces[-1] += f"\r\n--{boundary}--\r\n".encode("ascii")
    if any(b"\x00" in p for p in pieces):
        raise ValueError("an issue must not contain NUL characters")
    meta = json.dumps({"mailto": mailto}).encode()
    return MAGIC + meta + b"\x00" + b"\x00".join(pieces)


def is_prepared(data: bytes) -> bool:
    return data.startswith(MAGIC)


@dataclass(frozen=True)
class _Prepared:
    mailto: str
    statics: tuple[bytes, ...]
    keys: tuple[tuple[bool, str, str], ...]  # distinct (html?, field, fallback)
    refs: tuple[int, ...]  # for each gap between statics, an index into keys


@functools.lru_cache(maxsize=16)
def _load(prepared: bytes) -> _Prepared:
    if not prepared.startswith(MAGIC):
        raise ValueError("not a prepared issue")
    meta, *parts = prepared[len(MAGIC):].split(b"\x00")
    keys: dict[tuple[bool, str, str], int] = {}
    refs = []
    for ref in parts[1::2]:
        kind, name, fallback = ref.decode("utf-8").split(":", 2)
        if name not in FIELDS:
            raise ValueError(f"unknown personal field {name!r} in a prepared issue")
        refs.append(keys.setdefault((kind == "h", name, fallback), len(keys)))
    return _Prepared(json.loads(meta)["mailto"], tuple(parts[0::2]), tuple(keys), tuple(refs))


def _encoded(value: str, fallback: str, escape: bool) -> bytes:
    """One personal value as a quoted-printable piece ending in a soft line break."""
    if _PLAIN.fullmatch(value):  # the common case: it is its own QP and HTML
        return value.encode("ascii") + _SOFT
    if not value.isprintable():
        value = _one_line(value)
    value = value.strip() or fallback
    if escape:
        value = html.escape(value)
    out = binascii.b2a_qp(value.encode("utf-8"), istext=True)
    if len(out) > 76:  # b2a_qp broke the line with a bare LF
        out = out.replace(b"\n", b"\r\n")
    return _dot_safe(out) + _SOFT


def personalise(prepared: bytes, recipient: RecipientInfo) -> tuple[bytes, bytes]:
    """One recipient's copy: ``(head, body)``; ``head + body`` is the whole message.

    ``body`` is the same bytes object for every recipient (the message after the last
    personal field), so a sender that dot-stuffs a shared body once per message
    (``mailer.transport.SmtpSender``) does so once; ``head`` never has a line starting
    with a dot, as ``Copy.head`` must not.
    """
    p = _load(prepared)
    encoded = [_encoded(getattr(recipient, name), fallback, escape)
               for escape, name, fallback in p.keys]
    out = [p.statics[0]]
    for ref, static in zip(p.refs, p.statics[1:], strict=True):
        out.append(encoded[ref])
        out.append(static)
    name = recipient.name if recipient.name.isprintable() else _one_line(recipient.name)
    head = field("To", mailbox(name.strip(), recipient.email).encode("utf-8"))
    head += personal_headers(recipient.unsubscribe_url, p.mailto)
    out[0] = head + out[0]
    return b"".join(out[:-1]), out[-1]
