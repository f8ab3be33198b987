"""What the archive shows and searches of one message: pure functions over its bytes.

``archive_entry`` gives the index row (date, subject, author, thread keys, searchable
text); ``message_view`` what the message page shows (headers, the text part, or an
HTML-only part sanitised with nh3 without remote images, and the attachments);
``attachment`` one attachment's bytes with the type it may be served as.

Broken mail never raises here: an undecodable part is shown with replacement
characters, a bad date falls back to when the message arrived, an unparseable header
is treated as absent.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.header import Header, decode_header, make_header
from email.message import Message
from email.utils import format_datetime, getaddresses, parsedate_to_datetime

import nh3

from listservs.mailtext import part_text
from mailer.subject import decode_subject

__all__ = [
    "ArchiveEntry",
    "Attachment",
    "MessageView",
    "archive_entry",
    "attachment",
    "erased_copy",
    "message_view",
    "parse",
    "safe_html",
    "sender_address",
    "thread_keys",
]

MAX_BODY = 200_000  # characters of text kept for search; enough for any real post
_MSGID = re.compile(r"<[^<>\s]+>")
# Types a browser would run or render as a page: always sent as a download of bytes.
_ACTIVE_TYPES = ("text/html", "image/svg+xml", "application/xhtml+xml", "text/xml",
                 "application/xml", "text/javascript", "application/javascript")
_HTML_TAGS = set(nh3.ALLOWED_TAGS) - {"img", "map", "area"}  # no remote images (web bugs)
_MARKS = {2: None, 3: None}  # search snippets use these to mark matches


@dataclass(frozen=True)
class ArchiveEntry:
    """The archive's index row for one message."""

    sent_at: dt.datetime
    subject: str
    author: str
    refs: tuple[str, ...]
    body: str


@dataclass(frozen=True)
class Attachment:
    index: int  # position among the message's leaf parts: stable for a given message
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True)
class MessageView:
    """What the message page shows; ``text`` is plain text (escaped by the template)."""

    sender_name: str
    sender_address: str
    date: dt.datetime | None
    subject: str
    text: str
    html: str  # sanitised; only when the message has no text part
    attachments: tuple[Attachment, ...]


def parse(raw: bytes) -> Message:
    """The message as ``email`` reads it, leniently (compat32 never raises on headers)."""
    return message_from_bytes(raw, policy=policy.compat32)


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
        if value is None:
            return ""
        return " ".join(str(make_header(decode_header(str(value)))).split())
    except Exception:  # a malformed encoded word: show it as written
        return " ".join(str(msg.get(name, "")).split())


def _subject(msg: Message) -> str:
    value = msg.get("Subject")
    if value is None:
        return ""
    text = decode_subject(str(value).encode("utf-8", "surrogateescape"))
    return " ".join(text.split())


def _sender(msg: Message) -> tuple[str, str]:
    try:
        pairs = getaddresses([str(msg.get("From", ""))])
    except Exception:
        return "", ""
    name, address = pairs[0] if pairs else ("", "")
    if name:
        with contextlib.suppress(Exception):  # a broken encoded word stays as written
            name = str(make_header(decode_header(name)))
    return " ".join(name.split()), address.strip().lower()


def sender_address(msg: Message) -> str:
    """The From address, lower case ("" when there is none)."""
    return _sender(msg)[1]


def message_date(msg: Message) -> dt.datetime | None:
    """The Date header in UTC, or None when absent or unreadable."""
    value = msg.get("Date")
    if not value:
        return None
    try:
        when = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # "-0000" or no zone: RFC 5322 says UTC is as good as any
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def thread_keys(msg: Message) -> tuple[str, ...]:
    """References then In-Reply-To ids, oldest ancestor first, without repeats."""
    ids = _MSGID.findall(str(msg.get("References", "") or ""))
    ids += _MSGID.findall(str(msg.get("In-Reply-To", "") or ""))
    return tuple(dict.fromkeys(ids))


def _filename(part: Message) -> str:
    try:
        name = part.get_filename() or ""
    except Exception:
        name = ""
    if name:
        with contextlib.suppress(Exception):  # a broken encoded word stays as written
            name = str(make_header(decode_header(name)))
    # Only the last path component, and nothing that could break a header.
    return re.sub(r"[\x00-\x1f\"\\]", "_", name.replace("\\", "/").rsplit("/", 1)[-1])


def _is_attachment(part: Message) -> bool:
    disposition = str(part.get("Content-Disposition", "")).split(";")[0].strip().lower()
    return disposition == "attachment" or bool(_filename(part)) or (
        part.get_content_maintype() != "text")


def _leaves(msg: Message) -> list[Message]:
    return [p for p in msg.walk() if not p.is_multipart()
            and p.get_content_type() != "message/rfc822"]


def _body_parts(leaves: list[Message]) -> tuple[list[Message], Message | None]:
    """The inline text/plain parts, and the first inline HTML part (shown only alone)."""
    texts = [p for p in leaves if p.get_content_type() == "text/plain" and not _is_attachment(p)]
    htmls = [p for p in leaves if p.get_content_type() == "text/html" and not _is_attachment(p)]
    return texts, (htmls[0] if htmls else None)


def html_text(markup: str) -> str:
    """Text of an HTML part for search: tags (and script/style content) removed."""
    stripped = nh3.clean(markup, tags=set(), clean_content_tags={"script", "style"})
    return " ".join(html.unescape(stripped).split())


def safe_html(markup: str) -> str:
    """An HTML-only post made safe to show: nh3's allow-list, no images, links rel=noopener."""
    return nh3.clean(markup, tags=_HTML_TAGS, clean_content_tags={"script", "style"},
                     url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer")


def archive_entry(raw: bytes | Message, *, received_at: dt.datetime) -> ArchiveEntry:
    """The index row of a message (bytes, or already parsed); its date falls back to
    ``received_at``."""
    msg = parse(raw) if isinstance(raw, bytes) else raw
    texts, html_part = _body_parts(_leaves(msg))
    if texts:
        body = "\n\n".join(part_text(p) for p in texts)
    else:
        body = html_text(part_text(html_part)) if html_part is not None else ""
    name, address = _sender(msg)
    return ArchiveEntry(sent_at=message_date(msg) or received_at, subject=_subject(msg),
                        author=name or address, refs=thread_keys(msg),
                        body=body.replace("\r\n", "\n").translate(_MARKS)[:MAX_BODY])


def message_view(raw: bytes) -> MessageView:
    """The message page's content (text unescaped: the template escapes it)."""
    msg = parse(raw)
    leaves = _leaves(msg)
    texts, html_part = _body_parts(leaves)
    shown = set(map(id, texts))
    text = "\n\n".join(part_text(p).replace("\r\n", "\n") for p in texts)
    markup = ""
    if not texts and html_part is not None:
        markup = safe_html(part_text(html_part))
        shown.add(id(html_part))
    attachments = tuple(
        Attachment(i, _filename(p) or f"part-{i}", p.get_content_type(),
                   len(p.get_payload(decode=True) or b""))
        for i, p in enumerate(leaves) if id(p) not in shown and _is_attachment(p))
    name, address = _sender(msg)
    return MessageView(name, address, message_date(msg), _subject(msg), text, markup,
                       attachments)


def erased_copy(message_id: str, subject: str, sent_at: dt.datetime, body: str) -> bytes:
    """A plain message holding only what the archive keeps of an erased author's post."""
    head = (f"From: (author erased)\r\nSubject: {Header(subject, 'utf-8').encode()}\r\n"
            f"Date: {format_datetime(sent_at)}\r\nMessage-ID: {message_id}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n")
    return head.encode() + body.replace("\n", "\r\n").encode("utf-8")


def served_type(content_type: str) -> str:
    """What an attachment is served as: active types become opaque bytes."""
    if content_type in _ACTIVE_TYPES or not re.fullmatch(r"[\w.+-]+/[\w.+-]+", content_type):
        return "application/octet-stream"
    return content_type


def attachment(raw: bytes, index: int) -> tuple[str, str, bytes] | None:
    """(filename, type to serve it as, bytes) of attachment ``index``, or None."""
    leaves = _leaves(parse(raw))
    if not 0 <= index < len(leaves) or not _is_attachment(leaves[index]):
        return None
    part = leaves[index]
    data = part.get_payload(decode=True)
    return (_filename(part) or f"part-{index}", served_type(part.get_content_type()),
            data if isinstance(data, bytes) else b"")
