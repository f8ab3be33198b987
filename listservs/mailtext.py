"""The readable text of a message: subject, body lines, a safe excerpt.  Pure and total.

Whatever the mail is (base64 or quoted-printable, any charset or a wrong one, HTML only,
broken MIME), these functions return text and never raise.  HTML becomes plain text with
the standard library's parser; text inside ``<blockquote>`` comes out as ``> `` lines, so
HTML replies are read like plain-text ones.
"""

from __future__ import annotations

import re
import unicodedata
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from html.parser import HTMLParser

__all__ = ["body_text", "html_to_text", "parse", "part_text", "safe_excerpt", "subject_text"]

_BLOCK = frozenset({
    "p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table", "ul",
    "ol", "hr", "section", "article", "header", "footer", "dd", "dt",
})
_SKIP = frozenset({"script", "style", "head", "title", "template"})
# Controls and invisible or direction-changing characters that could disguise text.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]")


def parse(raw: bytes) -> EmailMessage:
    return message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.quote = 0
        self.skip = 0

    def _break(self) -> None:
        text = " ".join("".join(self.current).split())
        self.current = []
        if text or (self.lines and self.lines[-1]):
            self.lines.append(("> " * self.quote + text) if text else "")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag == "blockquote":
            self._break()
            self.quote += 1
        elif tag in _BLOCK:
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "blockquote":
            self._break()
            self.quote = max(0, self.quote - 1)
        elif tag in _BLOCK:
            self._break()

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.current.append(data)


def html_to_text(html: str) -> str:
    """Plain text of an HTML body: one line per block, ``> `` for quoted blocks."""
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient, but this must never fail a message
        return re.sub(r"<[^>]*>", " ", html)
    parser._break()
    return "\n".join(parser.lines).strip("\n")


def part_text(part: Message) -> str:
    """A text part as a string, whatever its charset or transfer encoding claims: an
    unknown charset or damaged encoding falls back to the bytes read as UTF-8."""
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, str):
            return content
    except Exception:  # unknown charset, damaged base64: fall back to the raw payload
        pass
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return str(part.get_payload())
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def body_text(msg: Message) -> str:
    """The first readable text of a message: text/plain preferred, else HTML made plain."""
    try:
        part = msg.get_body(preferencelist=("plain", "html"))  # type: ignore[attr-defined]
    except Exception:
        part = None
    if part is None:
        if msg.is_multipart() or msg.get_content_maintype() != "text":
            return ""
        part = msg
    text = part_text(part)
    if part.get_content_type() == "text/html":
        text = html_to_text(text)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def subject_text(msg: Message) -> str:
    """The decoded Subject on one line ('' when absent or unreadable)."""
    try:
        value = msg.get("Subject")
    except Exception:
        return ""
    return " ".join(str(value).split()) if value is not None else ""


def clean_line(line: str) -> str:
    """A line made safe to show: normalised, without controls or invisible characters."""
    return _UNSAFE.sub("", unicodedata.normalize("NFC", line)).rstrip()


def safe_excerpt(raw: bytes, *, max_lines: int = 25, max_chars: int = 2000,
                 width: int = 160) -> str:
    """Plain-text start of a message for a moderator: no HTML, no attachments, no tricks."""
    try:
        text = body_text(parse(raw))
    except Exception:
        text = ""
    lines: list[str] = []
    size = 0
    for line in text.split("\n"):
        line = clean_line(line)[:width]
        if not line and (not lines or not lines[-1]):
            continue
        lines.append(line)
        size += len(line) + 1
        if len(lines) >= max_lines or size >= max_chars:
            lines.append("[...]")
            break
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) or "(no readable text)"
