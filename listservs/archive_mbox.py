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
import io
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

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


class _Capped(io.RawIOBase):
    """A decompressing stream that refuses to give more than ``MAX_UNCOMPRESSED`` bytes."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        try:
            n = self.inner.readinto(buffer)  # type: ignore[attr-defined]
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"the file looks gzip-compressed but is damaged: {exc}") from None
        self.total += n
        if self.total > MAX_UNCOMPRESSED:
            raise ValueError("the file uncompresses to more than 4 GiB; split it by month")
        return n


def _lines(source: bytes | BinaryIO) -> Iterator[bytes]:
    """The file's lines (LF-terminated, CR removed), decompressed when it is gzip."""
    stream: BinaryIO = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    head = stream.read(2)
    rest: BinaryIO = _Joined(head, stream)
    if head == b"\x1f\x8b":
        rest = io.BufferedReader(_Capped(gzip.GzipFile(fileobj=rest, mode="rb")))  # type: ignore[arg-type]
    for line in rest:
        yield line.replace(b"\r\n", b"\n")


class _Joined(io.RawIOBase):
    """``head`` (bytes already read to sniff the format) followed by the rest of ``stream``."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self.head = head
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.stream.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def __iter__(self) -> Iterator[bytes]:  # line by line, through a buffer
        return iter(io.BufferedReader(self))


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


def read_mbox(source: bytes | BinaryIO) -> Iterator[MboxMessage]:
    """The messages of an mbox file (bytes or a binary file, read as a stream: an archive
    of any size takes the memory of one message), in file order; raises ValueError if it
    is not one."""
    current: list[bytes] = []
    start: tuple[int, dt.datetime | None] | None = None
    count = 0
    previous_blank = True
    number = 0
    for number, line in enumerate(_lines(source), 1):
        match = _FROM_LINE.match(line) if previous_blank and line.startswith(b"From ") else None
        if match:
            if start is not None:
                count += 1
                yield _message(count, start, current)
            start, current = (number, _envelope_date(match.group("date"))), []
        elif start is None:
            if line.strip():
                raise ValueError("not an mbox file: it must start with a 'From sender date' "
                                 "line (plain mbox, a Mailman 2 LIST.mbox or a Mailman 3 "
                                 "export)")
        else:
            current.append(line)
        previous_blank = not line.strip()
    if start is None:
        raise ValueError("not an mbox file: it must start with a 'From sender date' line "
                         "(plain mbox, a Mailman 2 LIST.mbox or a Mailman 3 export)")
    yield _message(count + 1, start, current)


def _message(count: int, start: tuple[int, dt.datetime | None],
             lines: list[bytes]) -> MboxMessage:
    if lines and not lines[-1].strip(b"\n"):
        lines = lines[:-1]  # the blank line before the next From_ is not the message's
    body = b"".join(lines)
    if not body.endswith(b"\n"):
        body += b"\n"
    raw = unobfuscate(to_crlf(_UNQUOTE.sub(rb"\1", body)))
    return MboxMessage(count, start[0], raw, start[1])
