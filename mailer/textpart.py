"""Adding a block of text to one text/plain or text/html part, in its own encodings.

`add_to_part` edits a single part: plain text is appended, HTML goes before
``</body>`` (else ``</html>``, else at the end). It keeps the part's charset (HTML
uses character references for what the charset lacks; plain text is upgraded to
UTF-8 only when it must) and its Content-Transfer-Encoding, unless the result
would have lines over 998 octets or 8-bit bytes in a 7bit part: then it is
re-encoded quoted-printable (mostly ASCII) or base64. A part that cannot be
edited without guessing (unknown transfer encoding, damaged base64, a charset
that is not ASCII-compatible, text that does not decode in its charset) raises
`FooterError`; the caller then puts the footer in a part of its own.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from dataclasses import dataclass
from email import charset as email_charset
from email import errors, policy
from email.parser import BytesParser

from mailer.mimetree import Entity
from mailer.wire import CRLF, MAX_LINE, field_name

__all__ = ["FooterError", "LeafEdit", "add_to_part"]

_PARSER = BytesParser(policy=policy.compat32)
_BASE64_DEFECTS = (
    errors.InvalidBase64CharactersDefect,
    errors.InvalidBase64PaddingDefect,
    errors.InvalidBase64LengthDefect,
)
_RAW_CTES = ("7bit", "8bit", "binary")
_ASCII_BYTES = bytes(range(128))
_ASCII_PROBE = "Az09 <>/=_-.:;\"'\r\n"
_CHARSET_PARAM = re.compile(rb"(;\s*charset\s*=\s*)(\"[^\"]*\"|[^;\s]*)", re.IGNORECASE)


class FooterError(Exception):
    """This part cannot take the footer in place without risking its content."""


@dataclass(frozen=True, slots=True)
class LeafEdit:
    """A text part with the footer: new header fields and body, and the decoded contents."""

    fields: tuple[bytes, ...]
    body: bytes
    old_content: bytes
    new_content: bytes

    def entity_bytes(self) -> bytes:
        """Return the whole edited part: header fields, blank line, body."""
        return b"".join(self.fields) + CRLF + self.body


def add_to_part(data: bytes, part: Entity, *, text: str, html: str) -> LeafEdit:
    """Return *part* (text/plain or text/html) of *data* with *text* or *html* added.

    *text* (for text/plain) and *html* (for text/html) use LF line ends; they are
    written with the line ends the part already uses.
    """
    cte = str(part.header.get("content-transfer-encoding", "7bit")).strip().lower() or "7bit"
    old = _decoded(data, part, cte)
    charset = part.header.get_content_charset("us-ascii")
    codec = _codec(charset)
    if part.content_type == "text/html":
        new, new_charset = _insert_html(old, html, codec), None
    else:
        new, new_charset = _append_text(old, text, codec, charset)
    eight_bit_added = (not new.isascii() and old.isascii()) or new_charset is not None
    body, new_cte = _encode(new, cte, eight_bit_added)
    fields = [f if f.endswith(CRLF) else f + CRLF for f in part.fields]
    if new_cte != cte:
        fields = _set_field(
            fields,
            "content-transfer-encoding",
            b"Content-Transfer-Encoding: " + new_cte.encode() + CRLF,
        )
    if new_charset:
        fields = _set_charset(fields, new_charset)
    return LeafEdit(tuple(fields), body, old, new)


def _decoded(data: bytes, part: Entity, cte: str) -> bytes:
    """Return the part's content with its transfer encoding undone."""
    if cte in _RAW_CTES:
        return data[part.body_start : part.end]
    if cte not in ("quoted-printable", "base64"):
        raise FooterError(f"unknown Content-Transfer-Encoding {cte!r}")
    leaf = _PARSER.parsebytes(data[part.start : part.end])
    content = leaf.get_payload(decode=True)
    if not isinstance(content, bytes) or any(isinstance(d, _BASE64_DEFECTS) for d in leaf.defects):
        raise FooterError(f"{cte} content is damaged")
    return content


def _codec(charset: str) -> codecs.CodecInfo | None:
    """Return the codec of a MIME charset name, None if Python does not know it."""
    try:
        info = codecs.lookup(email_charset.ALIASES.get(charset, charset))
    except LookupError:
        return None
    if info.name.startswith(("utf-16", "utf-32", "utf-7")) or not _probe(info):
        raise FooterError(f"charset {charset!r} is not ASCII-compatible")
    return info


def _probe(info: codecs.CodecInfo) -> bool:
    """Tell whether ASCII text is written as ASCII bytes in this codec."""
    try:
        return info.encode(_ASCII_PROBE)[0] == _ASCII_PROBE.encode("ascii")
    except UnicodeError:
        return False


def _eol(content: bytes) -> str:
    """Return the line end the content already uses (CRLF when it has none)."""
    return "\n" if b"\n" in content and b"\r\n" not in content else "\r\n"


def _append_text(
    old: bytes, footer: str, codec: codecs.CodecInfo | None, charset: str
) -> tuple[bytes, str | None]:
    """Return old + footer in the part's charset, and the new charset if it had to change."""
    eol = _eol(old)
    lead = eol if old and not old.endswith((b"\n", b"\r")) else ""
    addition = lead + footer.replace("\n", eol)
    if codec is None:
        if not addition.isascii():
            raise FooterError(f"unknown charset {charset!r} and a non-ASCII footer")
        return old + addition.encode("ascii"), None
    try:
        encoded = addition.encode(codec.name)
    except UnicodeEncodeError:
        try:
            text = old.decode(codec.name)
        except UnicodeDecodeError as exc:
            raise FooterError(f"text is not valid {charset!r}") from exc
        return (text + addition).encode("utf-8"), "utf-8"
    if codec.name.startswith("iso2022"):
        # Stateful charsets: make sure the footer starts in ASCII mode.
        escape = old.rfind(b"\x1b")
        if escape >= 0 and old[escape : escape + 3] not in (b"\x1b(B", b"\x1b(J"):
            encoded = b"\x1b(B" + encoded
    return old + encoded, None


def _insert_html(old: bytes, block: str, codec: codecs.CodecInfo | None) -> bytes:
    """Return the HTML with *block* before ``</body>`` (or ``</html>``, or at the end)."""
    block = block.replace("\n", _eol(old))
    encoded = block.encode(codec.name if codec else "ascii", "xmlcharrefreplace")
    lower = old.lower()
    at = lower.rfind(b"</body")
    if at < 0:
        at = lower.rfind(b"</html")
    if at < 0:
        at = len(old)
    return old[:at] + encoded + old[at:]


def _encode(content: bytes, cte: str, eight_bit_added: bool) -> tuple[bytes, str]:
    """Return the content encoded for the wire, keeping *cte* where that is safe."""
    too_long = max(len(line.rstrip(b"\r")) for line in content.split(b"\n")) > MAX_LINE
    if cte == "base64":
        return base64.encodebytes(content).replace(b"\n", CRLF), cte
    if cte == "quoted-printable":
        return _qp(content), cte
    if not too_long and (cte in ("8bit", "binary") or not eight_bit_added):
        return content.replace(b"\r\n", b"\n").replace(b"\n", CRLF), cte
    non_ascii = len(content.translate(None, _ASCII_BYTES))
    if non_ascii * 3 > len(content):  # mostly 8-bit text: base64 is a third smaller
        return base64.encodebytes(content).replace(b"\n", CRLF), "base64"
    return _qp(content), "quoted-printable"


def _qp(content: bytes) -> bytes:
    """Return quoted-printable with CRLF line ends and lines of at most 76 octets."""
    encoded = binascii.b2a_qp(content, istext=True)
    return encoded.replace(b"\r\n", b"\n").replace(b"\n", CRLF)


def _set_field(fields: list[bytes], name: str, new: bytes) -> list[bytes]:
    """Return *fields* with the first field *name* replaced by *new* (or *new* added)."""
    for index, raw in enumerate(fields):
        if field_name(raw) == name:
            return [
                *fields[:index],
                new,
                *(f for f in fields[index + 1 :] if field_name(f) != name),
            ]
    return [*fields, new]


def _set_charset(fields: list[bytes], charset: str) -> list[bytes]:
    """Return *fields* with the Content-Type charset parameter set to *charset*."""
    param = b'"' + charset.encode("ascii") + b'"'
    for index, raw in enumerate(fields):
        if field_name(raw) == "content-type":
            if _CHARSET_PARAM.search(raw):
                new = _CHARSET_PARAM.sub(lambda m: m.group(1) + param, raw, count=1)
            else:
                new = raw[:-2] + b"; charset=" + param + CRLF
            return [*fields[:index], new, *fields[index + 1 :]]
    return [*fields, b"Content-Type: text/plain; charset=" + param + CRLF]
