"""Rendering a digest: a MIME digest (RFC 2046 multipart/digest) and an RFC 1153 plain one.

Pure: posts in (the bytes each was sent to the list with), message bytes out.

MIME digest::

    multipart/mixed
      text/plain        masthead and "Today's Topics:"
      multipart/digest  one message/rfc822 part per post, its bytes copied unchanged
      text/plain        the list's footer

Plain digest (RFC 1153, in Mailman's wording): the masthead, ``Today's Topics:`` with
``   N. Subject (Author)`` lines, 70 hyphens, then each message as ``Message: N`` and its
Date/From/Subject/Message-ID headers and text (other parts replaced by a note), each
followed by 30 hyphens; then the footer and ``End of LIST Digest, Vol N, Issue M`` over a
line of asterisks as long.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage, MIMEPart
from email.utils import getaddresses

from listservs.mailtext import html_to_text, part_text
from mailer.wire import CRLF, to_crlf

__all__ = ["DigestPost", "Masthead", "mime_digest", "plain_digest", "plain_message",
           "plain_text_of", "post_from_bytes", "topics"]

TOPICS_RULE = "-" * 70  # RFC 1153: after the table of contents
MESSAGE_RULE = "-" * 30  # RFC 1153: after each message
_WIRE = policy.SMTP.clone(linesep="\r\n", max_line_length=78)


@dataclass(frozen=True)
class DigestPost:
    """One post as a digest shows it."""

    number: int
    subject: str
    topic: str  # the subject without the list's prefix, for the table of contents
    author: str  # display name, else address
    sender: str  # the From field as written (decoded)
    date: str
    message_id: str
    raw: bytes  # the post as it went to the list (decorated, no per-member bits)


@dataclass(frozen=True)
class Masthead:
    """What a digest says about itself."""

    display_name: str  # "City Clerks"
    volume: int
    issue: int
    intro: str  # the masthead text (from templates/notices/digest_masthead.txt)
    footer: str

    @property
    def title(self) -> str:
        return f"{self.display_name} Digest, Vol {self.volume}, Issue {self.issue}"


def post_from_bytes(number: int, raw: bytes, *, prefix: str = "") -> DigestPost:
    """A DigestPost from a post's bytes (headers read once, decoded).

    ``prefix`` (e.g. ``[City Clerks]``) is taken out of the topic: the digest's own
    Subject already names the list, as Mailman's tables of contents do."""
    msg = message_from_bytes(raw, policy=policy.default)

    def header(name: str) -> str:
        try:
            return " ".join(str(msg.get(name, "") or "").split())
        except Exception:  # a malformed header must not stop the digest
            return ""

    sender = header("From")
    pairs = getaddresses([sender]) if sender else []
    name, address = pairs[0] if pairs else ("", "")
    subject = header("Subject") or "(no subject)"
    topic = " ".join(subject.replace(prefix, "", 1).split()) if prefix else subject
    return DigestPost(number=number, subject=subject, topic=topic or subject,
                      author=name or address or "unknown sender", sender=sender,
                      date=header("Date"), message_id=header("Message-ID"), raw=raw)


def topics(posts: Sequence[DigestPost]) -> str:
    """The table of contents: ``Today's Topics:`` and one numbered line per post."""
    lines = ["Today's Topics:", ""]
    width = len(str(len(posts)))
    lines += [f"  {p.number:>{max(2, width)}}. {p.topic} ({p.author})" for p in posts]
    return "\n".join(lines) + "\n"


def _note(part: EmailMessage) -> str:
    name = part.get_filename() or ""
    size = len(part.get_payload(decode=True) or b"")
    label = f" ({name})" if name else ""
    return (f"[An attachment of type {part.get_content_type()}{label}, {size} bytes, is not "
            "included in the plain-text digest.]")


def plain_text_of(raw: bytes) -> str:
    """A post's text for the plain digest: its text/plain parts (an HTML-only body made
    plain), every other part replaced by a one-line note."""
    msg = message_from_bytes(raw, policy=policy.default)
    pieces: list[str] = []

    def walk(part: EmailMessage) -> None:
        ctype = part.get_content_type()
        if part.is_multipart():
            subparts = list(part.iter_parts())
            if ctype == "multipart/alternative":
                plain = [p for p in subparts if p.get_content_type() == "text/plain"]
                subparts = plain[:1] or subparts[-1:]
            for sub in subparts:
                walk(sub)  # type: ignore[arg-type]
        elif part.get_content_disposition() == "attachment":
            pieces.append(_note(part))
        elif ctype == "text/plain":
            pieces.append(part_text(part).rstrip("\n"))
        elif ctype == "text/html":
            pieces.append(html_to_text(part_text(part)))
        else:
            pieces.append(_note(part))

    walk(msg)  # type: ignore[arg-type]
    text = "\n\n".join(p.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
                       for p in pieces if p.strip())
    # A body line of exactly 30 hyphens would end the message for an undigestifier.
    return "\n".join(" " + line if line == MESSAGE_RULE else line
                     for line in text.split("\n"))


def plain_digest(masthead: Masthead, posts: Sequence[DigestPost]) -> str:
    """The body of an RFC 1153 digest."""
    out = [masthead.intro.rstrip("\n"), "", topics(posts), "", TOPICS_RULE, ""]
    for p in posts:
        out += [f"Message: {p.number}", f"Date: {p.date}", f"From: {p.sender}",
                f"Subject: {p.subject}", f"Message-ID: {p.message_id}", "",
                plain_text_of(p.raw).rstrip("\n"), "", MESSAGE_RULE, ""]
    if masthead.footer.strip():
        out += ["Subject: Digest Footer", "", masthead.footer.strip("\n"), "", MESSAGE_RULE,
                ""]
    end = f"End of {masthead.title}"
    out += [end, "*" * len(end)]
    return "\n".join(out) + "\n"


def _text_part(text: str, description: str) -> bytes:
    part = MIMEPart(policy=_WIRE)
    part.set_content(text, cte="quoted-printable" if not text.isascii() else "7bit")
    part["Content-Description"] = description
    return part.as_bytes(policy=_WIRE)


def _boundary(chunks: Sequence[bytes]) -> bytes:
    while True:
        candidate = f"=_digest_{uuid.uuid4().hex}".encode()
        if not any(candidate in c for c in chunks):
            return candidate


def _multipart(ctype: str, parts: Sequence[bytes], *, head: Sequence[bytes] = ()) -> bytes:
    """A multipart entity built from finished part bytes (each header block included)."""
    boundary = _boundary(parts)
    eight = any(not p.isascii() for p in parts)
    lines = [*head, f'Content-Type: {ctype}; boundary="{boundary.decode()}"'.encode() + CRLF]
    if eight:
        lines.append(b"Content-Transfer-Encoding: 8bit" + CRLF)
    out = b"".join(lines) + CRLF
    for part in parts:
        out += b"--" + boundary + CRLF + part
        if not part.endswith(CRLF):
            out += CRLF
    return out + b"--" + boundary + b"--" + CRLF


def mime_digest(headers: Sequence[bytes], masthead: Masthead,
                posts: Sequence[DigestPost]) -> bytes:
    """The whole MIME digest message; ``headers`` are finished header fields (CRLF)."""
    intro = masthead.intro.rstrip("\n") + "\n\n" + topics(posts)
    first = _text_part(intro, f"{masthead.title}: Today's Topics")
    messages = []
    for p in posts:
        data = to_crlf(p.raw)
        cte = b"" if data.isascii() else b"Content-Transfer-Encoding: 8bit" + CRLF
        messages.append(b"Content-Type: message/rfc822" + CRLF + cte + CRLF + data)
    parts = [first, _multipart("multipart/digest", messages)]
    if masthead.footer.strip():
        parts.append(_text_part(masthead.footer, "Digest Footer"))
    return _multipart("multipart/mixed", parts,
                      head=[*headers, b"MIME-Version: 1.0" + CRLF])


def plain_message(headers: Sequence[bytes], masthead: Masthead,
                  posts: Sequence[DigestPost]) -> bytes:
    """The whole RFC 1153 digest message: one text/plain entity."""
    text = plain_digest(masthead, posts)
    long_lines = any(len(line) > 900 for line in text.split("\n"))
    part = MIMEPart(policy=_WIRE)
    part.set_content(text, cte="7bit" if text.isascii() and not long_lines
                     else "quoted-printable")
    return b"".join(headers) + b"MIME-Version: 1.0" + CRLF + part.as_bytes(policy=_WIRE)
