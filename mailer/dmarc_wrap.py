"""DMARC mitigation by wrapping: the post, untouched, as message/rfc822 inside one from the list.

The list setting ``dmarc_mitigation = wrap_message`` (Mailman 3's ``wrap_message``): the
original travels byte for byte as an inline ``message/rfc822`` part, so its DKIM signature
still verifies for anyone who opens it, and the outer message is the list's own. The outer
header keeps what readers and threading need (Subject, Date, To, Cc, In-Reply-To,
References, Message-ID) and the author's From and Reply-To, which decoration then rewrites
with ``munge_from`` exactly as for a munged post ("Name via List", the author kept in
Reply-To or Cc), so both mitigations follow the list's reply-to rules in one place.

Pure: ``wrap_message(raw, note=...)`` returns the wrapper in wire form.
"""

from __future__ import annotations

import hashlib

from mailer.wire import CRLF, field_name, split_head, to_wire_form

__all__ = ["KEPT_FIELDS", "wrap_message"]

KEPT_FIELDS = frozenset({
    "from", "reply-to", "to", "cc", "subject", "date", "message-id", "in-reply-to",
    "references", "x-beenthere",
})
"""Top fields copied to the wrapper; everything else stays inside, with the original."""

NOTE = ("The message below comes from a domain whose DMARC policy asks receivers to refuse "
        "mail that was changed on the way, so the list sends it unchanged as an attachment.")


def _boundary(data: bytes) -> bytes:
    digest = hashlib.sha256(data).hexdigest().encode("ascii")
    for salt in range(len(digest) - 24):
        boundary = b"=_citymail_wrap_" + digest[salt:salt + 24]
        if boundary not in data:
            return boundary
    return b"=_citymail_wrap_" + digest


def wrap_message(raw: bytes, *, note: str = NOTE) -> bytes:
    """Return a multipart/mixed message: a short text note, then *raw* as message/rfc822."""
    data = to_wire_form(raw)
    fields, _ = split_head(data)
    kept = [f if f.endswith(CRLF) else f + CRLF for f in fields if field_name(f) in KEPT_FIELDS]
    boundary = _boundary(data)
    delimiter = b"--" + boundary
    text = note.encode("utf-8") + CRLF
    encoding = b"7bit" if text.isascii() else b"8bit"
    inner = data if data.endswith(CRLF) else data + CRLF
    body = b"".join([
        delimiter, CRLF,
        b'Content-Type: text/plain; charset="utf-8"', CRLF,
        b"Content-Transfer-Encoding: ", encoding, CRLF,
        b"Content-Disposition: inline", CRLF, CRLF, text, CRLF,
        delimiter, CRLF,
        b"Content-Type: message/rfc822", CRLF,
        b"Content-Disposition: inline", CRLF, CRLF, inner, CRLF,
        delimiter, b"--", CRLF,
    ])
    head = [*kept, b"MIME-Version: 1.0" + CRLF,
            b'Content-Type: multipart/mixed; boundary="' + boundary + b'"' + CRLF]
    return b"".join(head) + CRLF + body
