"""The header fields a list adds: RFC 2919 List-Id, RFC 2369 List-*, RFC 5064, RFC 8058.

`list_headers` gives the fields decoration adds once per post; `personal_headers`
gives the RFC 8058 one-click pair that the delivery engine splices into each
recipient's copy (the URL carries that member's token, so it cannot be part of
the message built once).
"""

from __future__ import annotations

from email.header import Header
from typing import TYPE_CHECKING

from mailer.wire import field, fold_items

if TYPE_CHECKING:
    from mailer.decorate import ListIdentity

__all__ = ["REPLACED_FIELDS", "list_headers", "mailbox", "personal_headers", "phrase"]

REPLACED_FIELDS = ("list-", "precedence")
"""Names (or name prefixes) of fields another list may have set; ours replace them.

Other lists' X-BeenThere are kept (as Mailman does): they are what stops a loop through
two lists subscribed to each other."""

_UNSAFE = set('\r\n<> \t"')


def phrase(text: str) -> str:
    """Return *text* as an RFC 5322 display-name: a quoted string, or RFC 2047 if non-ASCII."""
    if text.isascii():
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    # Encoded words may hold 75 characters (RFC 2047 2): long names fold between words.
    return Header(text, "utf-8", maxlinelen=76).encode(linesep="\r\n")


def mailbox(name: str, address: str) -> str:
    """Return ``"Name" <address>`` (RFC 2047 for a non-ASCII name), or the bare address."""
    return f"{phrase(name)} <{address}>" if name else address


def _uri(value: str, what: str) -> str:
    """Return ``<value>``, refusing what would break out of the angle brackets."""
    if not value or _UNSAFE & set(value):
        raise ValueError(
            f"{what} must be a URI without spaces, quotes or angle brackets, got {value!r}"
        )
    return f"<{value}>"


def _mailto(address: str, subject: str = "") -> str:
    """Return ``<mailto:address>``, with ``?subject=`` when a command word is needed."""
    return _uri(f"mailto:{address}" + (f"?subject={subject}" if subject else ""), "address")


def list_headers(
    lst: ListIdentity, *, archived_at: str | None = None, personal: bool = False
) -> list[bytes]:
    """Return the list's header fields for one post, CRLF-terminated and folded.

    With *personal* the list-level List-Unsubscribe is left out: the delivery engine
    adds each recipient's own one-click pair (`personal_headers`), which must be
    the only List-Unsubscribe a recipient sees.
    """
    fields = [fold_items("List-Id", [phrase(lst.display_name), f"<{lst.list_id}>"], sep=" ")]
    if not personal:
        pages = [lst.unsubscribe_url or lst.subscribe_url]
        fields.append(_listed("List-Unsubscribe", pages, _mailto(lst.leave_address)))
    if lst.archive_url:
        fields.append(fold_items("List-Archive", [_uri(lst.archive_url, "archive_url")]))
    post = "NO" if lst.announce_only else _mailto(lst.address)  # RFC 2369 3.4: "NO"
    fields.append(field("List-Post", post))
    fields.append(_listed("List-Help", [lst.help_url], _mailto(lst.request_address, "help")))
    fields.append(_listed("List-Subscribe", [lst.subscribe_url], _mailto(lst.join_address)))
    fields.append(fold_items("List-Owner", [_mailto(lst.owner_address)]))
    if archived_at:
        fields.append(fold_items("Archived-At", [_uri(archived_at, "archived_at")]))
    fields.append(field("X-BeenThere", lst.address))
    fields.append(field("Precedence", "list"))
    return fields


def _listed(name: str, urls: list[str], mailto: str) -> bytes:
    """Return a List-* field with the web pages first (what most clients offer), then mail."""
    items = [_uri(url, name) for url in urls if url]
    return fold_items(name, [*items, mailto])


def personal_headers(unsubscribe_url: str, mailto: str) -> bytes:
    """Return one recipient's RFC 8058 one-click unsubscribe fields, CRLF-terminated.

    ``List-Unsubscribe: <https://...>, <mailto:...>`` and
    ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``. RFC 8058 asks for an HTTPS
    URI; http is accepted for local development only. *mailto* may be an address or
    a ``mailto:`` URI, or "" to leave it out.
    """
    if not unsubscribe_url.startswith(("https://", "http://")):
        raise ValueError(f"unsubscribe_url must be an https:// URL, got {unsubscribe_url!r}")
    items = [_uri(unsubscribe_url, "unsubscribe_url")]
    if mailto:
        target = mailto if mailto.startswith("mailto:") else f"mailto:{mailto}"
        items.append(_uri(target, "mailto"))
    return fold_items("List-Unsubscribe", items) + field(
        "List-Unsubscribe-Post", "List-Unsubscribe=One-Click"
    )
