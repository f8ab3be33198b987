"""Tolerant reading of bounce messages: load bytes, split the notice from the returned message.

Everything here works on ``email.message.Message`` trees built with the ``compat32`` policy,
which accepts broken MIME without raising.  Decoding never raises either: unknown charsets
fall back to Latin-1 and undecodable bytes become U+FFFD.
"""

from __future__ import annotations

import email
import email.header
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32

# Parts that carry the returned (original) message, not the notice about it.
ORIGINAL_TYPES = frozenset(
    {"message/rfc822", "text/rfc822-headers", "message/rfc822-headers", "message/partial"}
)
# Parts that carry machine-readable reports, parsed by dsn.py and arf.py instead.
REPORT_TYPES = frozenset(
    {"message/delivery-status", "message/global-delivery-status", "message/feedback-report"}
)

# Longest notice line kept (RFC 5322 allows 998 characters), and most notice text read.
MAX_LINE = 1000
MAX_NOTICE = 100_000
# A line that introduces the returned message inside a plain-text notice.
_ORIGINAL_MARKER = re.compile(
    r"""^[\s>*=_-]{0,40}(?:
        below\ this\ line\ is\ a\ copy\ of\ the\ message
      | enclosed\ are\ the\ original\ headers
      | this\ is\ a\ copy\ of\ the\ message
      | -{1,40}\s{0,10}original\ message\s{0,10}-+
      | original\ message\ (?:follows|below|headers|was\ attached)
      | below\ is\ a\ copy\ of\ the\ original
      | (?:a\ )?copy\ of\ the\ original\ message
      | (?:the\ )?original\ message\ is\ (?:attached|included)
      | -{1,40}\s{0,10}returned\ (?:message|mail)(?:\ follows)?\s{0,10}-+
      | -{0,40}\s{0,10}unsent\ message\ (?:follows|below)
      | -{0,40}\s{0,10}undelivered\ message\ (?:follows|below|headers)
      | -{0,40}\s{0,10}(?:the\ )?message\ (?:header|headers|text|body)\ (?:follows?|suppressed)
      | message\ headers\ follow
      | -{0,40}\s{0,10}header\ of\ the\ source\ mail
      | -{0,40}\s{0,10}(?:the\ )?header\ and\ top\ \d+\ lines\ of\ the\ message
      | your\ message\ reads
      | the\ text\ you\ sent\ follows
      | included\ is\ a\ copy\ of\ the\ message
      | original\ (?:text|headers?)\ follows?
      | -{1,40}\s{0,10}original\ message\s{0,10}$
      | original\ message:\s{0,10}$
      | -{1,40}\s{0,10}start\ of\ returned\ message
      | (?:the\ )?first\ \d+\ lines\ of\ (?:your\ |the\ )?original\ message
    )""",
    re.IGNORECASE | re.VERBOSE,
)
# Header lines that only start a returned message (a notice never begins a line with them).
_HEADER_BLOCK_START = re.compile(
    r"^(?:Received|Return-Path|DKIM-Signature|DomainKey-Signature|Message-ID|MIME-Version"
    r"|Delivered-To|X-Received|Authentication-Results|ARC-Seal|X-Original-To):",
    re.IGNORECASE,
)
# Headers any real message has at least one of.
_MAIL_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Received",
    "Return-Path",
    "Content-Type",
)
_TAG = re.compile(r"<[^<>]{0,4000}>")
_BLOCK_TAG = re.compile(r"<(?:br|/p|/div|/tr|/li|/h\d)\b[^>]*>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Notice:
    """The human-readable part of a bounce and what it says about the returned message."""

    text: str
    original: Message | None


def load_message(raw: bytes) -> Message | None:
    """Parse raw bytes into a message tree, or None when nothing message-like is there."""
    if not raw or not raw.strip():
        return None
    try:
        msg = email.message_from_bytes(raw, policy=compat32)
        for part in parts(msg, closed=frozenset()):
            _normalise_headers(part)
        return msg
    except Exception:  # the parser is lenient, but a pathological input must not escape
        return None


def clip(raw: bytes, *, line: int = 512, lines: int = 3000) -> bytes:
    """``raw`` cut to ``lines`` lines of at most ``line`` bytes, blank runs squeezed to one.

    For scanners whose patterns cost the square of a line's length (or run on every line)
    on hostile input.  Real notices are a few dozen lines; what is cut is returned content.
    """
    kept: list[bytes] = []
    blank = False
    for chunk in raw.split(b"\n", lines * 4)[: lines * 4]:
        is_blank = not chunk.strip()
        if not (is_blank and blank):
            kept.append(chunk[:line])
        blank = is_blank
        if len(kept) >= lines:
            break
    return b"\n".join(kept)


def _normalise_headers(part: Message) -> None:
    """Store raw 8-bit header values as decoded text.

    compat32 hands such values out as ``Header`` objects, which code expecting ``str``
    (flufl.bounce's detectors among it) trips over.
    """
    items = list(part.raw_items())
    if all(isinstance(v, str) and not _has_surrogates(v) for _, v in items):
        return
    for name in {name for name, _ in items}:
        del part[name]
    for name, value in items:
        text = str(value)
        if _has_surrogates(text):
            text = decode_bytes(text.encode("ascii", "surrogateescape"), None)
        part[name] = text


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def looks_like_mail(msg: Message) -> bool:
    """True when ``msg`` has at least one header every real message has."""
    try:
        return any(msg.get(name) is not None for name in _MAIL_HEADERS)
    except Exception:
        return False


def header(msg: Message, name: str) -> str:
    """Return one header as text, empty when absent or undecodable."""
    try:
        value = msg.get(name)
    except Exception:
        return ""
    if value is None:
        return ""
    if isinstance(value, str) and _has_surrogates(value):
        # Raw 8-bit bytes in a header, kept by the parser as surrogate escapes.
        return decode_bytes(value.encode("ascii", "surrogateescape"), None).strip()
    return decode_header_value(value)


def decode_header_value(value: object) -> str:
    """Decode RFC 2047 words in a header value, tolerating bad charsets."""
    try:
        source = value if isinstance(value, email.header.Header) else str(value)
        parts = email.header.decode_header(source)
    except Exception:
        return str(value)
    out: list[str] = []
    for chunk, charset in parts:
        if isinstance(chunk, bytes):
            out.append(decode_bytes(chunk, charset))
        else:
            out.append(chunk)
    return re.sub(r"\s+", " ", "".join(out)).strip()


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode bytes with the declared charset, falling back to UTF-8 then Latin-1."""
    for candidate in (charset, "utf-8"):
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError, ValueError):
            continue
    return data.decode("latin-1", errors="replace")


def part_text(part: Message) -> str:
    """Return the decoded text of a leaf part; HTML is reduced to plain text."""
    try:
        decoded = part.get_payload(decode=True)
    except Exception:
        decoded = None
    if isinstance(decoded, bytes):
        payload = decoded
    else:
        raw = part.get_payload()
        payload = raw.encode("utf-8", "replace") if isinstance(raw, str) else b""
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    text = decode_bytes(payload, charset)
    if part.get_content_subtype() == "html":
        text = html.unescape(_TAG.sub(" ", _BLOCK_TAG.sub("\n", text)))
    return re.sub(r"\r+\n", "\n", text).replace("\r", "\n")


def parts(msg: Message, *, closed: frozenset[str] = ORIGINAL_TYPES) -> Iterator[Message]:
    """Yield every part depth-first, containers included, not opening ``closed`` types.

    A part of a closed type is yielded itself but its contents are not visited.
    """
    stack = [msg]
    budget = 1000  # a bound against absurdly nested or huge trees
    while stack and budget:
        budget -= 1
        part = stack.pop()
        yield part
        if part.get_content_type() in closed:
            continue
        payload = part.get_payload()
        if part.is_multipart() and isinstance(payload, list):
            stack.extend(reversed([p for p in payload if isinstance(p, Message)]))


def leaves(msg: Message, *, closed: frozenset[str] = ORIGINAL_TYPES) -> Iterator[Message]:
    """Yield the leaf parts of ``msg``, skipping parts of ``closed`` types entirely."""
    for part in parts(msg, closed=closed):
        if part.get_content_type() in closed:
            continue
        if not (part.is_multipart() and isinstance(part.get_payload(), list)):
            yield part


def read_notice(msg: Message) -> Notice:
    """Collect the notice text of a bounce and locate the returned message, if any."""
    chunks: list[str] = []
    original: Message | None = None
    texts = [p for p in leaves(msg, closed=ORIGINAL_TYPES | REPORT_TYPES) if _is_readable(p)]
    plain_seen = any(p.get_content_subtype() == "plain" for p in texts)
    for part in texts:
        if part.get_content_subtype() == "html" and plain_seen:
            continue
        text = part_text(part)
        notice, rest = split_returned(text[:MAX_NOTICE])
        if notice.strip() and sum(map(len, chunks)) < MAX_NOTICE:
            chunks.append(notice)
        if original is None and rest:
            original = _parse_headers(rest)
    if original is None:
        original = _attached_original(msg)
    return Notice(text="\n".join(chunks), original=original)


def split_returned(text: str) -> tuple[str, str]:
    """Split a text part into (notice, returned message) at the first copy-of-message line.

    Notice lines are cut to MAX_LINE characters: nothing useful is that long, and it keeps
    every pattern run over them cheap whatever the input.
    """
    lines = [line[:MAX_LINE] for line in text.split("\n")]
    if lines and _HEADER_BLOCK_START.match(lines[0]):
        return "", text
    for index, line in enumerate(lines):
        if _ORIGINAL_MARKER.match(line):
            rest = "\n".join(lines[index + 1 :]).lstrip("\n")
            return "\n".join(lines[:index]), rest
        if index and not lines[index - 1].strip() and _HEADER_BLOCK_START.match(line):
            return "\n".join(lines[:index]), "\n".join(lines[index:])
    return "\n".join(lines), ""


def _attached_original(msg: Message) -> Message | None:
    for part in parts(msg):
        if part.get_content_type() not in ORIGINAL_TYPES:
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]
        return _parse_headers(part_text(part))
    return None


def _parse_headers(text: str) -> Message | None:
    stripped = text.lstrip()
    if not re.match(r"[\w-]+:", stripped):
        return None
    try:
        return HeaderParser(policy=compat32).parsestr(stripped, headersonly=True)
    except Exception:
        return None


def _is_readable(part: Message) -> bool:
    """Text parts worth reading, plus multiparts the parser could not split (broken MIME)."""
    maintype, subtype = part.get_content_maintype(), part.get_content_subtype()
    if maintype == "multipart":
        return isinstance(part.get_payload(), str)
    return maintype == "text" and subtype in {"plain", "html", "enriched", "x-aol", "x-notes"}
