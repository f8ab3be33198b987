"""mbox in and out, pure: mboxrd for what we write, lenient reading of what others wrote.

Writing (``mbox_message``): each message gets a ``From sender asctime`` line, lines are
LF-terminated, and every body line matching ``>*From `` gains one ``>`` (mboxrd), so a
reader that removes one ``>`` gets the message back exactly; a blank line ends it.

Reading (``read_mbox``) takes plain mbox files (mboxo or mboxrd), a Mailman 2 pipermail
``LIST.mbox`` (and its monthly ``.txt``/``.txt.gz`` files, whose addresses read
"jdoe at example.org"), and a Mailman 3 HyperKitty export (``.mbox.gz``). gzip is
recognised by its magic bytes. A message starts at a ``From `` line that follows a blank
line (or starts the file) and carries a sender and an asctime date, as Mailman's
``cleanarch`` checks, so an unquoted "From here on..." in a body does not split a message.
One ``>`` is taken off ``>From `` lines (mboxrd).
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["MboxMessage", "from_line", "mbox_message", "read_mbox", "to_crlf", "unobfuscate"]

_QUOTED = re.compile(rb"^(>*From )", re.MULTILINE)
_UNQUOTE = re.compile(rb"^>(>*From )", re.MULTILINE)
_DAYS = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_MONTHS = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_FROM_LINE = re.compile(
    rb"^From (?P<sender>\S+(?: at \S+)?)\s+(?P<date>" + _DAYS.encode() + rb" "
    + _MONTHS.encode() + rb" +\d{1,2} \d{1,2}:\d{2}(?::\d{2})? (?:(?:[A-Z]{3,4}|[+-]\d{4}) )?"
    rb"\d{4})")  # a zone before the year: "PST" (old Unix), "+0000" (Gmail Takeout)
MAX_UNCOMPRESSED = 4 * 1024 ** 3  # a gzip bomb stops here
_OBFUSCATED = re.compile(rb"^From: ([^\s@]+) at ([^\s@()]+)(?: \(([^\r\n]*)\))?[ \t]*(?=\r?$)",
                         re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True)
class MboxMessage:
    """One message read from an mbox: where it started and its bytes (CRLF)."""

    number: int  # 1-based position in the file
    line: int  # 1-based line of its From_ line
    raw: bytes
    envelope_date: dt.datetime | None  # from the From_ line, UTC


def from_line(sender: str, when: dt.datetime) -> bytes:
    """``From sender Thu Nov 26 08:27:13 2026`` (asctime, UTC), no line end."""
    safe = re.sub(r"\s", "", sender) or "MAILER-DAEMON"
    u = when.astimezone(dt.UTC)
    return f"From {safe} {u:%a %b} {u.day:2d} {u:%H:%M:%S %Y}".encode("ascii", "replace")


def mbox_message(raw: bytes, *, sender: str, when: dt.datetime) -> bytes:
    """One mboxrd entry: From_ line, the message with LF line ends and quoting, a blank line."""
    text = raw.replace(b"\r\n", b"\n")
    if not text.endswith(b"\n"):
        text += b"\n"
    return from_line(sender, when) + b"\n" + _QUOTED.sub(rb">\1", text) + b"\n"


def unobfuscate(raw: bytes) -> bytes:
    """Pipermail's text archives write "From: jdoe at example.org (J Doe)"; make the From
    field an address again (only in the header block; anything else is left as it is)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    return _OBFUSCATED.sub(_address, head, count=1) + sep + body


def _address(m: re.Match[bytes]) -> bytes:
    name = m.group(3)
    address = m.group(1) + b"@" + m.group(2)
    return b"From: " + (b'"' + name.replace(b'"', b"") + b'" <' + address + b">"
                        if name else address)


def to_crlf(data: bytes) -> bytes:
    """Wire line ends, as the gateway stores messages."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _uncompressed(data: bytes) -> bytes:
    if not data.startswith(b"\x1f\x8b"):
        return data
    try:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = inflater.decompress(data, MAX_UNCOMPRESSED)
    except zlib.error as exc:
        raise ValueError(f"the file looks gzip-compressed but is damaged: {exc}") from None
    if inflater.unconsumed_tail:
        raise ValueError("the file uncompresses to more than 4 GiB; split it by month")
    return out if out else gzip.decompress(data)


def _envelope_date(text: bytes) -> dt.datetime | None:
    parts = text.decode("ascii", "replace").split()
    if len(parts) == 6:  # a zone name between time and year: leave it out (UTC assumed)
        del parts[4]
    for fmt in ("%a %b %d %H:%M:%S %Y", "%a %b %d %H:%M %Y"):
        try:
            return dt.datetime.strptime(" ".join(parts), fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    return None


def read_mbox(data: bytes) -> Iterator[MboxMessage]:
    """The messages of an mbox file, in file order; raises ValueError if it is not one."""
    text = _uncompressed(data).replace(b"\r\n", b"\n")
    lines = text.split(b"\n")
    starts: list[tuple[int, dt.datetime | None]] = []
    previous_blank = True
    for number, line in enumerate(lines):
        if previous_blank and line.startswith(b"From "):
            match = _FROM_LINE.match(line)
            if match:
                starts.append((number, _envelope_date(match.group("date"))))
        previous_blank = not line.strip()
    if not starts or any(line.strip() for line in lines[:starts[0][0]]):
        raise ValueError("not an mbox file: it must start with a 'From sender date' line "
                         "(plain mbox, a Mailman 2 LIST.mbox or a Mailman 3 export)")
    for position, (first, when) in enumerate(starts):
        end = starts[position + 1][0] if position + 1 < len(starts) else len(lines)
        segment = lines[first + 1:end]
        if end == len(lines) and segment and not segment[-1]:
            segment = segment[:-1]  # what split() leaves after the file's last line end
        if segment and not segment[-1]:
            segment = segment[:-1]  # the blank line before the next From_ is not the message's
        body = b"\n".join(segment) + b"\n"
        raw = unobfuscate(to_crlf(_UNQUOTE.sub(rb"\1", body)))
        yield MboxMessage(position + 1, first + 1, raw, when)
