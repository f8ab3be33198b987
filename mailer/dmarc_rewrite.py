"""DMARC From rewriting: "Jane Doe via City Clerks department" <city-clerks@...>.

When the author's domain publishes DMARC p=reject or p=quarantine, a list post
that keeps the author's From fails DMARC at every receiver (the list changed the
body and subject, so the author's DKIM signature no longer verifies, and the
list's server is not in the author's SPF). The list therefore sends it From its
own address, names the author in the display name, and keeps the author
reachable: in Reply-To when the message has none, or in Cc when Reply-To points
elsewhere (at the list, say), so that "reply" and "reply all" still reach them.

Pure functions: deciding whether a domain needs this (the DNS lookup) is the
caller's job.
"""

from __future__ import annotations

from email import policy
from email.utils import getaddresses
from typing import TYPE_CHECKING

from mailer.listheaders import mailbox
from mailer.wire import CRLF, field_name, field_value, fold_items, split_head, to_wire_form

if TYPE_CHECKING:
    from mailer.decorate import ListIdentity

__all__ = ["author_of", "rewrite_from", "rewrite_from_fields"]


def rewrite_from(raw: bytes, lst: ListIdentity, *, author_name: str, author_address: str) -> bytes:
    """Return the message with From set to the list, the author kept reachable.

    *raw* may be the message as received or as decorated; the result is in wire
    form (CRLF). The body is not touched.
    """
    data = to_wire_form(raw)
    fields, body_start = split_head(data)
    fields = rewrite_from_fields(
        fields, lst, author_name=author_name, author_address=author_address
    )
    return b"".join(fields) + CRLF + data[body_start:]


def rewrite_from_fields(
    fields: list[bytes], lst: ListIdentity, *, author_name: str, author_address: str
) -> list[bytes]:
    """Return the header *fields* rewritten as `rewrite_from` does."""
    fields = [f if f.endswith(CRLF) else f + CRLF for f in fields]
    current = _addresses(fields, "from")
    if current == [lst.address.lower()]:
        return fields  # already rewritten: doing it twice would say "via ... via ..."
    name = f"{author_name or author_address} via {lst.display_name}"
    new_from = fold_items("From", [mailbox(name, lst.address)], sep=" ")
    fields = _replace(fields, "from", new_from)
    author = author_address.lower()
    reply_to = _addresses(fields, "reply-to")
    if not reply_to:
        return _replace(
            fields, "reply-to", fold_items("Reply-To", [mailbox(author_name, author_address)])
        )
    if author in reply_to:
        return fields
    if author in _addresses(fields, "to") + _addresses(fields, "cc"):
        return fields  # reply-all already reaches them
    return _add_to(fields, "cc", "Cc", mailbox(author_name, author_address))


def author_of(raw: bytes) -> tuple[str, str]:
    """Return the (display name, address) of the message's first From mailbox.

    ("", "") when there is none. RFC 2047 names are decoded.
    """
    fields, _ = split_head(to_wire_form(raw))
    for raw_field in fields:
        if field_name(raw_field) != "from":
            continue
        value = field_value(raw_field).decode("utf-8", "replace")
        try:
            header = policy.default.header_factory("from", value)
            first = header.addresses[0]
            return first.display_name, first.addr_spec
        except Exception:  # malformed From: fall back to the lenient classic parser
            pairs = getaddresses([value])
            return pairs[0] if pairs else ("", "")
    return "", ""


def _addresses(fields: list[bytes], name: str) -> list[str]:
    """Return the lower-cased addresses in every field called *name*."""
    values = [field_value(f).decode("utf-8", "replace") for f in fields if field_name(f) == name]
    return [addr.lower() for _, addr in getaddresses(values) if addr]


def _replace(fields: list[bytes], name: str, new: bytes) -> list[bytes]:
    """Return *fields* with every field *name* replaced by *new*, at the first one's place."""
    out: list[bytes] = []
    for raw_field in fields:
        if field_name(raw_field) != name:
            out.append(raw_field)
        elif new:
            out.append(new)
            new = b""
    return [*out, new] if new else out


def _add_to(fields: list[bytes], name: str, title: str, item: str) -> list[bytes]:
    """Return *fields* with *item* added to the address field *name* (kept as written)."""
    for index, raw_field in enumerate(fields):
        if field_name(raw_field) == name:
            value = raw_field[raw_field.find(b":") + 1 :].strip()
            if not value:
                return [*fields[:index], fold_items(title, [item]), *fields[index + 1 :]]
            merged = title.encode("ascii") + b": " + value + b"," + CRLF + b" "
            return [*fields[:index], merged + item.encode("utf-8") + CRLF, *fields[index + 1 :]]
    return [*fields, fold_items(title, [item])]
