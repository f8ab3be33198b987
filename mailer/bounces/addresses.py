"""E-mail addresses as they appear in bounces: find, clean, and tell recipients from noise."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Permissive on purpose: bounces quote what the remote side had, not what RFC 5322 allows.
# The bounded repeats (RFC 5321 sizes) keep matching linear on long runs of junk.
ADDRESS = r"[\w.!#$%&'*+/=?^`{|}~-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}"
ADDRESS_RE = re.compile(ADDRESS)

# Local parts of mail-system addresses: never a bounced member.
SYSTEM_LOCAL_PARTS = frozenset(
    {
        "mailer-daemon",
        "mailer_daemon",
        "mailerdaemon",
        "noreply",
        "no-reply",
        "do-not-reply",
        "donotreply",
        "double-bounce",
    }
)
# Role mailboxes that bounce texts mention ("contact postmaster@..."); a member only when a
# line explicitly names them as the failed recipient.
ROLE_LOCAL_PARTS = frozenset({"postmaster", "abuse", "hostmaster", "webmaster", "root"})
_MESSAGE_ID_LIKE = re.compile(r"^[0-9a-f.$_=-]{16,}$|javamail", re.IGNORECASE)


def clean(candidate: str) -> str | None:
    """Normalise one address-ish string to ``local@domain`` lower case, or None if it isn't."""
    text = candidate.strip().strip("<>\"'()[],;:").strip()
    if ";" in text and text.split(";", 1)[0].lower() in {"rfc822", "smtp", "x400", "utf-8"}:
        text = text.split(";", 1)[1].strip().strip("<>\"' ")
    if text.lower().startswith(("smtp:", "mailto:")):
        text = text.split(":", 1)[1]
    match = ADDRESS_RE.search(text)
    if match is None:
        return None
    address = match.group(0).rstrip(".").lower()
    local, _, domain = address.rpartition("@")
    if not local or "." not in domain or domain.startswith(".") or ".." in domain:
        return None
    return address


def find_all(text: str) -> list[str]:
    """Every cleaned address in ``text``, in order, without duplicates."""
    return unique(a for a in (clean(m) for m in ADDRESS_RE.findall(text)) if a)


def unique(items: Iterable[str]) -> list[str]:
    """De-duplicate, keeping the first occurrence's position."""
    return list(dict.fromkeys(items))


def is_noise(address: str, *, roles: bool = True) -> bool:
    """True for mail-system addresses and message-id lookalikes, never a bounced member.

    With ``roles`` (the default), role mailboxes such as postmaster@ count as noise too.
    """
    local = address.rpartition("@")[0]
    if local in SYSTEM_LOCAL_PARTS or (roles and local in ROLE_LOCAL_PARTS):
        return True
    digits = sum(ch.isdigit() for ch in local)
    return bool(_MESSAGE_ID_LIKE.search(local)) and digits >= 8
