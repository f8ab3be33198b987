"""Subject prefix: "[City Clerks] Re: x", never "Re: [City Clerks] Re: [City Clerks] x".

`prefixed` works on decoded text: it takes off the leading chain of reply and
forward markers in the languages members write in (Re, AW, SV, Antw, Fwd, WG,
...) together with any copy of the list's prefix, and writes back the prefix,
then the markers with repeats collapsed ("Re: Re: AW:" becomes one "Re:").
`subject_field` does the header part: it decodes RFC 2047 words and raw 8-bit
text, and re-encodes only when it must. When the new subject is just the prefix
put in front of the old one, the old encoded words are kept as they were (in
their own charset), so a subject in an unknown charset is never damaged.
"""

from __future__ import annotations

import re
from email import policy
from email.header import Header, decode_header, make_header

from mailer.wire import CRLF, field_value

__all__ = ["NO_SUBJECT", "decode_subject", "encode_subject", "prefixed", "subject_field"]

NO_SUBJECT = "(no subject)"

# Marker words, by what they mean. Words that also start real subjects in a city's
# mail ("Res:" resolution, "Ref:", "TR:") are left out on purpose.
_REPLY_WORDS = ("re", "aw", "sv", "antw", "vs", "odp", "rif", "ynt", "回复", "答复", "回覆")
_FORWARD_WORDS = ("fwd", "fw", "wg", "rv", "转发", "轉寄")
_MARKER = re.compile(
    r"\s*(?P<word>" + "|".join(_REPLY_WORDS + _FORWARD_WORDS) + r")"
    r"\s*(?:\[\d+\]|\(\d+\)|\^\d+)?\s*[:：]\s*",
    re.IGNORECASE,
)
_RENDER = {"re": "Re:", "fwd": "Fwd:"}
_FOLD_WIDTH = 78
_LONG_SUBJECT = 8192


def prefixed(subject: str, prefix: str) -> str:
    """Return *subject* with the list *prefix* in front, once, and one marker per kind.

    >>> prefixed("Re: [City Clerks] Re: x", "[City Clerks]")
    '[City Clerks] Re: x'
    """
    text = " ".join(subject.split())
    if not prefix:
        return text
    own = re.compile(
        r"\s*" + r"\s*".join(re.escape(token) for token in prefix.split()) + r"\s*",
        re.IGNORECASE,
    )
    markers: list[str] = []
    while True:
        if match := own.match(text):
            text = text[match.end() :]
        elif match := _MARKER.match(text):
            kind = "re" if match["word"].lower() in _REPLY_WORDS else "fwd"
            if not markers or markers[-1] != kind:
                markers.append(kind)
            text = text[match.end() :]
        else:
            break
    words = [prefix, *(_RENDER[kind] for kind in markers)]
    if text or not markers:
        words.append(text or NO_SUBJECT)
    return " ".join(words)


def decode_subject(raw_value: bytes) -> str:
    """Return the text of a raw Subject value: RFC 2047 words and raw 8-bit decoded."""
    try:
        value = raw_value.decode("utf-8")
    except UnicodeDecodeError:
        value = raw_value.decode("latin-1")  # raw 8-bit of unknown charset: keep every byte
    value = value.replace("\r\n", "")
    # The modern parser is the more lenient one, but slow on huge values (0.8 s for a
    # 200 KB subject in the corpus): past a size, the classic decoder goes first.
    decoders = [_modern, _classic] if len(value) < _LONG_SUBJECT else [_classic, _modern]
    text = value  # undecodable words stay as written
    for decoder in decoders:
        try:
            text = decoder(value)
            break
        except Exception:  # malformed words: try the other decoder
            continue
    # Words in an unknown charset come back with surrogates; show them, don't crash.
    return text.encode("utf-8", "replace").decode("utf-8")


def _modern(value: str) -> str:
    """Decode with the RFC 5322 parser of policy.default (lenient, slow on huge values)."""
    return str(policy.default.header_factory("subject", value))


def _classic(value: str) -> str:
    """Decode with email.header (fast, strict about charsets)."""
    return str(make_header(decode_header(value)))


def encode_subject(text: str) -> bytes:
    """Return a ``Subject:`` field for *text*: plain if ASCII, else RFC 2047 UTF-8 words.

    Plain text is folded at spaces; a word too long for a line, or text that looks
    like an encoded word, is written as encoded words too, which fold anywhere.
    """
    words = text.split(" ")
    if text.isascii() and "=?" not in text and max(map(len, words)) < _FOLD_WIDTH - 10:
        lines: list[str] = []
        current = "Subject:"
        for word in words:
            if len(current) + 1 + len(word) > _FOLD_WIDTH and current != "Subject:":
                lines.append(current)
                current = " " + word
            else:
                current += " " + word
        lines.append(current)
        return ("\r\n".join(lines)).encode("ascii") + CRLF
    encoded = Header(text, "utf-8", header_name="Subject", maxlinelen=_FOLD_WIDTH)
    return b"Subject: " + encoded.encode(linesep="\r\n").encode("ascii") + CRLF


def subject_field(raw_field: bytes | None, prefix: str) -> bytes | None:
    """Return the new raw ``Subject:`` field for the list, or None to keep *raw_field*.

    *raw_field* is the original field with its CRLFs (None when the message has no
    Subject: it then gets "[prefix] (no subject)").
    """
    if not prefix:
        return None
    if raw_field is None:
        return encode_subject(prefixed("", prefix))
    old = decode_subject(field_value(raw_field))
    new = prefixed(old, prefix)
    if new == " ".join(old.split()):
        return None  # already right: keep the sender's bytes
    if new == f"{prefix} {' '.join(old.split())}" and prefix.isascii():
        return _prepend(raw_field, prefix)
    return encode_subject(new)


def _prepend(raw_field: bytes, prefix: str) -> bytes | None:
    """Return the field with *prefix* put before its value, which is kept as written."""
    colon = raw_field.find(b":")
    value = raw_field[colon + 1 :].lstrip(b" \t")
    if any(len(line) > 900 for line in value.split(CRLF)):
        return encode_subject(f"{prefix} {decode_subject(field_value(raw_field))}")
    if not value.endswith(CRLF):
        value += CRLF
    head = b"Subject: " + prefix.encode("ascii")
    first_line = value.split(CRLF, 1)[0]
    # Fold before the old value when the first line would get long: unfolding puts
    # back exactly one space between prefix and value.
    joint = b" " if len(head) + 1 + len(first_line) <= _FOLD_WIDTH else CRLF + b" "
    return head + joint + value
