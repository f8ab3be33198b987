"""Addresses at the list domain: parsed once, at RCPT, into a ``Target``.

``city-clerks@`` posts; ``city-clerks-request@`` takes commands; ``-join``, ``-leave``,
``-owner``; ``-bounces+TOKEN`` receives VERP bounces; ``-confirm+TOKEN`` confirmations.
Newsletters have only the bounce and request addresses.

Two site addresses belong to no list: ``citymail-owner@`` (the From of every notice,
forwarded to the site administrators) and ``citymail-bounces[+TOKEN]@`` (the envelope
sender of notices, to bounce intake). They resolve to ``Target(SITE, "owner")`` and
``Target(SITE, "bounces", token)``; a list may not be called ``citymail``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["SITE", "SITE_ROLES", "AddressTable", "Rejection", "Target"]

# suffix -> role; the longest suffix wins ("-bounces" before "-s" style clashes).
SUFFIXES: dict[str, str] = {
    "-request": "request",
    "-join": "join",
    "-subscribe": "join",
    "-leave": "leave",
    "-unsubscribe": "leave",
    "-owner": "owner",
    "-bounces": "bounces",
    "-confirm": "confirm",
}
TOKEN_ROLES = frozenset({"bounces", "confirm"})
LIST_ROLES = frozenset({"post", *SUFFIXES.values()})
NEWSLETTER_ROLES = frozenset({"request", "join", "leave", "owner", "bounces", "confirm"})
SITE = "citymail"  # the site's own addresses: SITE-owner@, SITE-bounces[+TOKEN]@
SITE_ROLES = frozenset({"owner", "bounces"})


@dataclass(frozen=True)
class Target:
    """What an envelope recipient means to citymail."""

    list_name: str
    role: str  # post | request | join | leave | owner | bounces | confirm
    token: str | None = None

    def to_json(self) -> list[str | None]:
        return [self.list_name, self.role, self.token]

    @classmethod
    def from_json(cls, value: list[str | None]) -> Target:
        name, role, token = value
        return cls(str(name), str(role), token)

    def address(self, domain: str) -> str:
        suffix = "" if self.role == "post" else f"-{self.role}"
        plus = f"+{self.token}" if self.token else ""
        return f"{self.list_name}{suffix}{plus}@{domain}"


@dataclass(frozen=True)
class Rejection:
    """Why a recipient is refused, as an SMTP reply."""

    code: int
    text: str

    @property
    def reply(self) -> str:
        return f"{self.code} {self.text}"


UNKNOWN = Rejection(550, "5.1.1 No such list or address here")
RELAY_DENIED = Rejection(550, "5.7.1 Relaying denied: this server only accepts mail for its lists")
BAD_SYNTAX = Rejection(553, "5.1.3 Malformed address")


class AddressTable:
    """In-memory map of the addresses the gateway accepts; no database query per RCPT."""

    def __init__(self, domain: str, lists: Iterable[tuple[str, str]]) -> None:
        """``lists``: (name, kind) pairs, kind being "list" or "newsletter"."""
        self.domain = domain.lower()
        self._kinds: dict[str, str] = {name.lower(): kind for name, kind in lists}

    def __len__(self) -> int:
        return len(self._kinds)

    def resolve(self, address: str) -> Target | Rejection:
        """Map an envelope recipient to a ``Target`` or the reason to refuse it."""
        address = address.strip().strip("<>")
        local, sep, domain = address.rpartition("@")
        if not sep or not local or not domain:
            return BAD_SYNTAX
        if domain.lower().rstrip(".") != self.domain:
            return RELAY_DENIED
        local = local.lower()
        base, plus, token = local.partition("+")
        site = _site_target(base, plus, token)
        if site is not None:
            return site
        if base in self._kinds and not plus:
            return Target(base, "post") if self._kinds[base] == "list" else UNKNOWN
        for suffix, role in SUFFIXES.items():
            if base.endswith(suffix):
                name = base[: -len(suffix)]
                kind = self._kinds.get(name)
                if kind is None:
                    continue
                allowed = LIST_ROLES if kind == "list" else NEWSLETTER_ROLES
                if role not in allowed:
                    return UNKNOWN
                if plus and role not in TOKEN_ROLES:
                    return UNKNOWN
                if role == "confirm" and not token:
                    return UNKNOWN
                return Target(name, role, token or None)
        return UNKNOWN


def _site_target(base: str, plus: str, token: str) -> Target | Rejection | None:
    """``citymail-owner`` / ``citymail-bounces[+TOKEN]``, else None (not a site address)."""
    name, dash, role = base.rpartition("-")
    if name != SITE or not dash or role not in SITE_ROLES:
        return None
    if plus and role not in TOKEN_ROLES:
        return UNKNOWN
    return Target(SITE, role, token or None)
