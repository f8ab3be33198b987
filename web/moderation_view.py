"""A held message as a moderator may safely see it: bytes in, escaped-ready values out.

* headers and the text/plain part are plain strings (the template escapes them);
* an HTML part goes through nh3 (no script, no event handlers, no ``javascript:``, no
  forms, frames or styles); remote images are dropped unless asked for (``images=True``),
  so opening a held message never tells a sender that it was read;
* attachments are listed by name, type and size only, never opened.

Malformed mail (bad charsets, broken MIME) gives what could be read, never an exception.
"""

from __future__ import annotations

import contextlib
import email.policy
from dataclasses import dataclass
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message

import nh3

from listservs.mailtext import part_text

__all__ = ["Attachment", "HeldView", "clean_html", "view_message"]

SHOWN_HEADERS = ("From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID")
MAX_TEXT = 200_000  # characters of one part shown; the rest is cut with a note
MAX_HEADER = 2_000

# Tags kept from an HTML part: text structure only.
TAGS = {"a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "div",
        "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "li",
        "ol", "p", "pre", "q", "s", "small", "span", "strong", "sub", "sup", "table",
        "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul"}
ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height", "title"},
              "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan"}}


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    size: int


@dataclass(frozen=True)
class HeldView:
    headers: tuple[tuple[str, str], ...]
    text: str | None
    html: str | None  # sanitised markup, safe to insert as-is
    remote_images: int  # images held back (0 when shown or there are none)
    attachments: tuple[Attachment, ...]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "\n[... cut: the part is longer]"


def clean_html(html: str, *, images: bool = False) -> tuple[str, int]:
    """Sanitised HTML and the number of images whose source was removed."""
    dropped = 0

    def keep(tag: str, attribute: str, value: str) -> str | None:
        nonlocal dropped
        if tag == "img" and attribute == "src" and not (
                images and value.lower().startswith("https://")):
            dropped += 1
            return None
        return value

    cleaned = nh3.clean(html, tags=TAGS, attributes=ATTRIBUTES, attribute_filter=keep,
                        url_schemes={"http", "https", "mailto"},
                        link_rel="noopener noreferrer nofollow", strip_comments=True)
    return cleaned, dropped


def _words(value: object) -> str:
    """A header value with its RFC 2047 encoded words decoded, on one line."""
    text = str(value)
    with contextlib.suppress(Exception):  # bad encoded words or charsets: the raw text
        text = str(make_header(decode_header(text)))
    return " ".join(text.split())


def _header(msg: Message, name: str) -> str | None:
    value = msg.get(name)
    return None if value is None else _clip(_words(value), MAX_HEADER)


def _is_attachment(part: Message) -> bool:
    disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
    return disposition == "attachment" or bool(part.get_filename()) or (
        part.get_content_maintype() not in ("text", "multipart", "message"))


def view_message(raw: bytes, *, images: bool = False) -> HeldView:
    """What the moderation page shows of a held message."""
    msg = message_from_bytes(raw, policy=email.policy.compat32)
    headers = tuple((n, v) for n in SHOWN_HEADERS if (v := _header(msg, n)) is not None)
    text = html = None
    attachments: list[Attachment] = []
    dropped = 0
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if _is_attachment(part):
            payload = part.get_payload(decode=True)
            name = _words(part.get_filename() or "(no name)")
            attachments.append(Attachment(_clip(name, 200), ctype,
                                          len(payload) if isinstance(payload, bytes) else 0))
        elif ctype == "text/plain" and text is None:
            text = _clip(part_text(part), MAX_TEXT)
        elif ctype == "text/html" and html is None:
            html, dropped = clean_html(_clip(part_text(part), MAX_TEXT), images=images)
    return HeldView(headers, text, html, dropped, tuple(attachments))
