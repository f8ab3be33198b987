"""What is known about one post, gathered once, for the posting rules to judge.

``facts_from_message`` is pure and total: it reads the parsed message (any ``email`` policy)
and what the caller looked up in the database, and returns a frozen :class:`PostFacts`. It
never raises on broken, hostile or undecodable headers; what cannot be read is absent.

The caller looks things up with the same helpers the facts use, so that both agree on who
the poster is and which Message-ID counts: :func:`poster_address` for the membership row and
:func:`message_id_of` for the duplicate check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from email.utils import parsedate_to_datetime

from mailer.authorship import (
    MAX_FIELDS,
    addresses,
    author_addresses,
    clean_header,
    domain_of,
    header_values,
    normalise_domain,
)
from mailer.authresults import AuthVerdict

__all__ = [
    "Membership",
    "PostFacts",
    "facts_from_message",
    "message_id_of",
    "poster_address",
]

# Markers of mail that a program sent on its own (RFC 3834 and common practice):
# header name → the values that do NOT mark it.
_AUTO_HEADERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("auto-submitted", frozenset({"no"})),
    ("x-autoreply", frozenset({"no", "false"})),
    ("x-autorespond", frozenset({"no", "false"})),
)
_BULK_PRECEDENCE = frozenset({"bulk", "junk", "list"})
_REPORT_TYPES = frozenset({"multipart/report", "message/delivery-status"})
_ANGLE = re.compile(r"<([^<>]*)>")
_MAX_MARKERS = 5  # evidence enough for a moderator; a hostile message may carry thousands


@dataclass(frozen=True)
class Membership:
    """What the database says about the poster on this list (filled by the caller)."""

    is_member: bool = False
    moderated: bool = False  # the member's own moderation flag
    banned: bool = False
    named_poster: bool = False  # pre-approved; may post to an announce-only list


@dataclass(frozen=True)
class PostFacts:
    """Everything the posting rules look at, for one message to one list."""

    sender: str | None  # the poster: From, else Sender, else the envelope sender
    from_addresses: tuple[str, ...]
    from_problem: str | None  # why From names no single clear author, if it does not
    envelope_sender: str  # '' for the null reverse-path <>
    list_address: str
    recipients: tuple[str, ...]  # valid To and Cc addresses, each once
    loop_markers: tuple[str, ...]  # our own List-Id / X-BeenThere found in the message
    auto_markers: tuple[str, ...]  # why it looks machine-sent (RFC 3834 and friends)
    message_id: str | None
    duplicate: bool  # the caller saw this Message-ID on this list within the window
    headers: tuple[tuple[str, str], ...]  # (lower-cased name, unfolded value), top first
    size: int
    received_at: datetime
    date: datetime | None  # the Date header, when it parses
    membership: Membership
    auth: AuthVerdict

    @property
    def authenticated(self) -> bool:
        """An aligned DKIM or SPF pass, or a DMARC pass, vouches for the single From address.

        A verdict about another author domain (or a From naming no single author) proves
        nothing about this post.
        """
        if self.from_problem is not None or not self.from_addresses:
            return False
        return self.auth.authenticated and self.auth.from_domain == domain_of(
            self.from_addresses[0]
        )

    def header(self, name: str) -> tuple[str, ...]:
        """All values of one header."""
        wanted = name.lower()
        return tuple(v for k, v in self.headers if k == wanted)


def _first_address(msg: Message, name: str) -> str | None:
    for value in header_values(msg, name)[:MAX_FIELDS]:
        found, ambiguous = addresses(name, value)
        if found and not ambiguous:
            return found[0]
    return None


def _envelope(envelope_sender: str) -> str:
    value = clean_header(envelope_sender).strip().strip("<>").strip().lower()
    local, at, domain = value.rpartition("@")
    host = normalise_domain(domain)
    return f"{local}@{host}" if at and local and host else ""


def poster_address(msg: Message, *, envelope_sender: str) -> str | None:
    """Whom a post is from, for membership: From, else Sender, else the envelope sender.

    An ambiguous or unreadable From is skipped rather than guessed at.
    """
    return _poster(msg, author_addresses(msg)[0], envelope_sender)


def _poster(msg: Message, from_addresses: tuple[str, ...], envelope_sender: str) -> str | None:
    if from_addresses:
        return from_addresses[0]
    return _first_address(msg, "Sender") or _envelope(envelope_sender) or None


def message_id_of(msg: Message) -> str | None:
    """The Message-ID as used for duplicate checks: the text inside <>, or None."""
    for value in header_values(msg, "Message-ID"):
        inside = _ANGLE.search(value)
        candidate = (inside.group(1) if inside else value).strip()
        if candidate and " " not in candidate:
            return candidate[:998]
    return None


def _recipients(msg: Message) -> tuple[str, ...]:
    fields = [(name, v) for name in ("To", "Cc") for v in header_values(msg, name)]
    strict = len(fields) <= MAX_FIELDS  # beyond, the quadratic strict parser is a liability
    found = (a for name, v in fields for a in addresses(name, v, strict=strict)[0])
    return tuple(dict.fromkeys(found))


def _list_id(value: str) -> str:
    inside = _ANGLE.search(value)
    return (inside.group(1) if inside else value).strip().lower()


def _loop_markers(msg: Message, list_ids: frozenset[str], list_address: str) -> tuple[str, ...]:
    ours = {_list_id(i) for i in list_ids} - {""}
    markers = [f"List-Id: {v}" for v in header_values(msg, "List-Id") if _list_id(v) in ours]
    for value in header_values(msg, "X-BeenThere"):
        found, _ = addresses("To", value, strict=False)
        if list_address in found or _list_id(value) in ours:
            markers.append(f"X-BeenThere: {value}")
    return tuple(m[:200] for m in markers[:_MAX_MARKERS])


def _token(value: str) -> str:
    return re.split(r"[\s;(]", value.strip(), maxsplit=1)[0].lower()


def _content_type(msg: Message) -> str:
    values = header_values(msg, "Content-Type")
    return _token(values[0]) if values else "text/plain"


def _auto_markers(msg: Message, envelope_sender: str) -> tuple[str, ...]:
    markers: list[str] = []
    for name, harmless in _AUTO_HEADERS:
        for value in header_values(msg, name):
            if _token(value) not in harmless:
                markers.append(f"{name.title()}: {value}")
    markers.extend(
        f"Precedence: {v}"
        for v in header_values(msg, "Precedence")
        if _token(v) in _BULK_PRECEDENCE
    )
    if _content_type(msg) in _REPORT_TYPES:
        markers.append(f"Content-Type: {_content_type(msg)} (a delivery or read report)")
    if envelope_sender.strip() in ("", "<>"):
        markers.append("null envelope sender <> (a bounce or notification)")
    return tuple(m[:200] for m in markers[:_MAX_MARKERS])


def _date(msg: Message) -> datetime | None:
    for value in header_values(msg, "Date"):
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            continue
        if parsed.tzinfo is not None:
            return parsed
    return None


def _headers(msg: Message) -> tuple[tuple[str, str], ...]:
    try:
        items = list(msg.raw_items())
    except Exception:  # a foreign Message subclass; treat as headerless
        return ()
    return tuple((clean_header(k).lower(), clean_header(v)) for k, v in items)


def facts_from_message(
    msg: Message,
    *,
    envelope_sender: str,
    list_address: str,
    list_ids: frozenset[str],
    membership: Membership,
    auth: AuthVerdict,
    size: int,
    now: datetime,
    seen_message_id: bool,
) -> PostFacts:
    """Gather the facts about *msg* posted to *list_address*.

    ``envelope_sender`` is the SMTP MAIL FROM ('' or '<>' for the null sender); ``list_ids``
    are the List-Id values this list (or this whole server) stamps, for loop detection;
    ``size`` is the length of the raw message in bytes; ``seen_message_id`` is the caller's
    answer to "did this list receive this :func:`message_id_of` within the duplicate window".
    """
    from_addresses, from_problem = author_addresses(msg)
    list_address = list_address.strip().lower()
    return PostFacts(
        sender=_poster(msg, from_addresses, envelope_sender),
        from_addresses=from_addresses,
        from_problem=from_problem,
        envelope_sender=_envelope(envelope_sender),
        list_address=list_address,
        recipients=_recipients(msg),
        loop_markers=_loop_markers(msg, list_ids, list_address),
        auto_markers=_auto_markers(msg, envelope_sender),
        message_id=message_id_of(msg),
        duplicate=seen_message_id,
        headers=_headers(msg),
        size=max(size, 0),
        received_at=now,
        date=_date(msg),
        membership=membership,
        auth=auth,
    )
