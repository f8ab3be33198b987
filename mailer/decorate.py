"""Decoration of a list post: list headers, subject prefix, Reply-To, footer.

``decorate(raw, lst)`` turns a post as received into the message the list sends,
in wire form (CRLF). It edits bytes instead of re-serialising with `email`: the
header block is rebuilt field by field (fields it does not change are copied as
received), and in the body only the text part(s) that take the footer are
rewritten; every other byte is copied. Then it proves the result: `email`
re-parses both messages and every leaf part that was not meant to change must
decode exactly as before, with no new line over 998 octets. If that proof fails,
or the MIME structure is damaged, the body is left exactly as received and only
the headers are decorated ("headers-only", logged at warning and reported by
`decorate_report`).

Where the footer goes, by the shape of the message (text appended, HTML before
``</body>``, both branches of an alternative, signed or encrypted content wrapped
intact in a new multipart/mixed, ...): the table in `mailer.footer`. What was done
is a `Body` value in `Decoration.body`.

Errors: `ValueError` for a bad `ListIdentity` or argument (a caller's bug). A
message, however broken, never raises.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email.utils import getaddresses

from mailer.dmarc_rewrite import author_of, rewrite_from_fields
from mailer.footer import Body, Edits, place_footer
from mailer.listheaders import REPLACED_FIELDS, list_headers, mailbox, personal_headers
from mailer.mimetree import Entity, leaves_preserved, parse_tree
from mailer.subject import subject_field
from mailer.wire import CRLF, field_name, field_value, fold_items, split_head, to_wire_form

__all__ = [
    "Body",
    "Decoration",
    "ListIdentity",
    "been_there",
    "decorate",
    "decorate_report",
    "personal_headers",
]

log = logging.getLogger(__name__)

_LIST_ID = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_ADDRESS = re.compile(r"[^\s@<>\"(),;]+@[^\s@<>\"(),;]+")


@dataclass(frozen=True, slots=True)
class ListIdentity:
    """How a list names itself in the mail it sends.

    Empty ``list_id``, ``request_address`` and ``owner_address`` default to
    ``local.domain``, ``local-request@domain`` and ``local-owner@domain``; a List-Id
    kept from a migrated server may be given with or without its angle brackets.
    ``reply_to`` is "poster" (Reply-To untouched), "list" or "explicit:ADDR".
    ``subject_prefix`` None means "[short_name]"; "" disables the prefix. Empty URLs
    leave their header (or header entry) out; ``unsubscribe_url`` (the list-level
    page) falls back to ``subscribe_url``. ``announce_only`` lists say
    ``List-Post: NO``. ``description`` is for pages and digests; mail shows
    ``display_name``.
    """

    address: str
    display_name: str
    short_name: str
    list_id: str = ""
    description: str = ""
    request_address: str = ""
    owner_address: str = ""
    help_url: str = ""
    subscribe_url: str = ""
    unsubscribe_url: str = ""
    archive_url: str = ""
    footer_text: str = ""
    reply_to: str = "poster"
    subject_prefix: str | None = None
    announce_only: bool = False

    def __post_init__(self) -> None:
        """Fill the defaults and refuse what would break a header."""
        if not _ADDRESS.fullmatch(self.address):
            raise ValueError(f"address must be local@domain, got {self.address!r}")
        defaults = {
            "list_id": f"{self.local_part}.{self.domain}",
            "request_address": f"{self.local_part}-request@{self.domain}",
            "owner_address": f"{self.local_part}-owner@{self.domain}",
        }
        for name, value in defaults.items():
            if not getattr(self, name):
                object.__setattr__(self, name, value)
        if self.subject_prefix is None:  # "" is kept: it turns the prefix off
            object.__setattr__(self, "subject_prefix", f"[{self.short_name}]")
        object.__setattr__(self, "list_id", self.list_id.strip().strip("<>"))
        for name in (
            "display_name",
            "short_name",
            "subject_prefix",
            "help_url",
            "subscribe_url",
            "unsubscribe_url",
            "archive_url",
            "reply_to",
        ):
            if "\r" in (getattr(self, name) or "") or "\n" in (getattr(self, name) or ""):
                raise ValueError(f"{name} must be a single line, got {getattr(self, name)!r}")
        if not _LIST_ID.fullmatch(self.list_id):
            raise ValueError(
                f"list_id must be a dot-atom like 'city-clerks.lists.cacities.org' "
                f"(RFC 2919), got {self.list_id!r}"
            )
        for name in ("request_address", "owner_address"):
            if not _ADDRESS.fullmatch(getattr(self, name)):
                raise ValueError(f"{name} must be local@domain, got {getattr(self, name)!r}")
        target = self.reply_to.removeprefix("explicit:")
        if self.reply_to not in ("list", "poster") and not (
            self.reply_to.startswith("explicit:") and _ADDRESS.fullmatch(target)
        ):
            raise ValueError(
                f"reply_to must be 'list', 'poster' or 'explicit:ADDR', got {self.reply_to!r}"
            )

    @property
    def local_part(self) -> str:
        """Return the part of the address before the @."""
        return self.address.rpartition("@")[0]

    @property
    def domain(self) -> str:
        """Return the list's mail domain."""
        return self.address.rpartition("@")[2]

    @property
    def leave_address(self) -> str:
        """Return the address that unsubscribes whoever writes to it (LIST-leave@)."""
        return f"{self.local_part}-leave@{self.domain}"

    @property
    def join_address(self) -> str:
        """Return the address that subscribes whoever writes to it (LIST-join@)."""
        return f"{self.local_part}-join@{self.domain}"

    @property
    def prefix(self) -> str:
        """Return the subject prefix in force ("" when disabled)."""
        return self.subject_prefix or ""

    @property
    def reply_to_mailbox(self) -> str | None:
        """Return the mailbox replies should go to, None to leave Reply-To alone."""
        if self.reply_to == "list":
            return mailbox(self.display_name, self.address)
        if self.reply_to.startswith("explicit:"):
            return self.reply_to.removeprefix("explicit:")
        return None


@dataclass(frozen=True, slots=True)
class Decoration:
    """The decorated message, what happened to its body, and why (for the logs)."""

    raw: bytes
    body: Body
    reason: str = ""


def decorate(
    raw: bytes,
    lst: ListIdentity,
    *,
    archived_at: str | None = None,
    message_id: str | None = None,
    personal: bool = False,
    munge_from: bool = False,
) -> bytes:
    """Return the post *raw* (as received) decorated for *lst*, as wire bytes.

    *archived_at* adds RFC 5064 Archived-At; *message_id* is added when the post
    has none; *personal* leaves out List-Unsubscribe for the delivery engine to
    splice in each recipient's (`personal_headers`); *munge_from* applies the DMARC
    From rewrite (`mailer.dmarc_rewrite`) for an author domain with p=reject or
    p=quarantine. See `decorate_report` to learn what happened to the body.
    """
    return decorate_report(
        raw,
        lst,
        archived_at=archived_at,
        message_id=message_id,
        personal=personal,
        munge_from=munge_from,
    ).raw


def decorate_report(
    raw: bytes,
    lst: ListIdentity,
    *,
    archived_at: str | None = None,
    message_id: str | None = None,
    personal: bool = False,
    munge_from: bool = False,
) -> Decoration:
    """Return the decorated post with what was done to its body; see `decorate`."""
    data = to_wire_form(raw)
    top = parse_tree(data)

    def headers(fields: list[bytes]) -> list[bytes]:
        return _edit_headers(
            fields,
            lst,
            archived_at=archived_at,
            message_id=message_id,
            personal=personal,
            munge_from=munge_from,
        )

    edits, body, reason = place_footer(data, top, lst.footer_text)
    out = _assemble(data, top, edits, headers(edits.top_fields or list(top.fields)))
    if body in (Body.FOOTER, Body.FOOTER_PART, Body.WRAPPED):
        problem = leaves_preserved(data, out, changed=edits.changed, added=edits.added)
        if problem:
            body, reason = Body.HEADERS_ONLY, f"self-check failed: {problem}"
            out = _assemble(data, top, Edits(), headers(list(top.fields)))
    if body is Body.HEADERS_ONLY:
        log.warning(
            "list %s: footer not added to %s, body sent as received: %s",
            lst.address,
            _message_id(top.fields),
            reason,
        )
    elif body is Body.WRAPPED:
        log.info(
            "list %s: %s wrapped to add the footer: %s",
            lst.address,
            _message_id(top.fields),
            reason,
        )
    return Decoration(out, body, reason)


def been_there(raw: bytes, lst: ListIdentity) -> bool:
    """Tell whether *raw* already went through *lst* (its X-BeenThere): a mail loop."""
    fields, _ = split_head(to_wire_form(raw))
    return lst.address.lower() in _addresses(fields, "x-beenthere")


def _assemble(data: bytes, top: Entity, edits: Edits, fields: list[bytes]) -> bytes:
    """Return the new header block, the blank line, and the body with the splices made."""
    out = [*fields, CRLF]
    pos = top.body_start
    for start, end, new in sorted(edits.splices, key=lambda s: s[0]):
        out += [data[pos:start], new]
        pos = end
    out.append(data[pos:])
    return b"".join(out)


# -- the header -----------------------------------------------------------------------


def _edit_headers(
    fields: list[bytes],
    lst: ListIdentity,
    *,
    archived_at: str | None,
    message_id: str | None,
    personal: bool,
    munge_from: bool,
) -> list[bytes]:
    """Return the top header fields decorated for *lst*."""
    fields = [f if f.endswith(CRLF) else f + CRLF for f in fields]
    replaced = REPLACED_FIELDS + (("archived-at",) if archived_at else ())
    out = [f for f in fields if not field_name(f).startswith(replaced)]
    out = _with_subject(out, lst.prefix)
    out = _with_reply_to(out, lst.reply_to_mailbox)
    has_id = any(field_name(f) == "message-id" and field_value(f) for f in out)
    if message_id and not has_id:
        mid = message_id.strip()
        mid = mid if mid.startswith("<") else f"<{mid}>"
        if not _ADDRESS.fullmatch(mid[1:-1]) or not mid.endswith(">"):
            raise ValueError(f"message_id must look like <id@domain>, got {message_id!r}")
        out = [f for f in out if field_name(f) != "message-id"]
        out.append(b"Message-ID: " + mid.encode("ascii") + CRLF)
    if any(field_name(f).startswith("content-") for f in out) and not any(
        field_name(f) == "mime-version" for f in out
    ):
        out.append(b"MIME-Version: 1.0" + CRLF)
    out += list_headers(lst, archived_at=archived_at, personal=personal)
    if munge_from:
        name, address = author_of(b"".join(fields) + CRLF)
        if address:
            out = rewrite_from_fields(out, lst, author_name=name, author_address=address)
    return out


def _with_subject(fields: list[bytes], prefix: str) -> list[bytes]:
    """Return *fields* with the Subject prefixed (one Subject field, where it was)."""
    at = next((i for i, f in enumerate(fields) if field_name(f) == "subject"), None)
    new = subject_field(None if at is None else fields[at], prefix)
    if new is None:
        return fields
    if at is None:
        return [*fields, new]
    rest = [f for f in fields[at + 1 :] if field_name(f) != "subject"]
    return [*fields[:at], new, *rest]


def _with_reply_to(fields: list[bytes], target: str | None) -> list[bytes]:
    """Return *fields* with *target* in Reply-To, keeping addresses the author put there."""
    if target is None:
        return fields
    at = next((i for i, f in enumerate(fields) if field_name(f) == "reply-to"), None)
    if at is None or not field_value(fields[at]):
        return [f for f in fields if field_name(f) != "reply-to"] + [
            fold_items("Reply-To", [target])
        ]
    old = fields[at]
    if getaddresses([target])[0][1].lower() in _addresses([old], "reply-to"):
        return fields
    value = old[old.find(b":") + 1 :].strip()
    merged = b"Reply-To: " + target.encode("utf-8") + b"," + CRLF + b" " + value + CRLF
    rest = [f for f in fields[at + 1 :] if field_name(f) != "reply-to"]
    return [*fields[:at], merged, *rest]


def _addresses(fields: list[bytes], name: str) -> list[str]:
    """Return the lower-cased addresses in the fields called *name*."""
    values = [field_value(f).decode("utf-8", "replace") for f in fields if field_name(f) == name]
    return [address.lower() for _, address in getaddresses(values) if address]


def _message_id(fields: tuple[bytes, ...]) -> str:
    """Return the Message-ID for log lines ("<no Message-ID>" when missing)."""
    for raw_field in fields:
        if field_name(raw_field) == "message-id":
            return field_value(raw_field).decode("ascii", "replace")
    return "<no Message-ID>"
