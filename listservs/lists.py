"""Reading a list's settings and people: frozen values for the pure parts to use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from mailer.errors import NotFound
from mailer.models import ListRole, MailingList, Member, Subscription
from mailer.settings import Settings

__all__ = ["ListInfo", "get_list", "list_roles", "subscriber_status"]


@dataclass(frozen=True)
class ListInfo:
    id: int
    name: str
    kind: str
    display_name: str
    short_name: str
    description: str
    list_id: str | None
    announce_only: bool
    delivery: str
    footer: str
    config: dict[str, Any]

    def address(self, settings: Settings, suffix: str = "") -> str:
        return f"{self.name}{suffix}@{settings.list_domain}"

    def list_id_value(self, settings: Settings) -> str:
        """RFC 2919 List-Id: kept from a migrated server when set, else NAME.DOMAIN."""
        return self.list_id or f"{self.name}.{settings.list_domain}"


def get_list(conn: Connection, name: str) -> ListInfo:
    table = MailingList.__table__
    m = conn.execute(select(table).where(table.c.name == name)).first()
    if m is None:
        raise NotFound(f"no list named {name!r} (see: citymail lists show)")
    return ListInfo(
        id=m.id, name=m.name, kind=m.kind, display_name=m.display_name,
        short_name=m.short_name, description=m.description, list_id=m.list_id,
        announce_only=bool(m.announce_only), delivery=m.delivery, footer=m.footer or "",
        config=dict(m.config or {}),
    )


def list_roles(conn: Connection, list_id: int, role: str) -> list[str]:
    return list(conn.scalars(select(ListRole.email).where(ListRole.list_id == list_id,
                                                           ListRole.role == role)))


def subscriber_status(conn: Connection, list_id: int, email: str) -> str | None:
    """The subscription status of ``email`` on the list, or None for a non-member."""
    return conn.execute(
        select(Subscription.status)
        .join(Member, Member.id == Subscription.member_id)
        .where(Subscription.list_id == list_id, Member.email == email.lower(),
               Member.status == "active")).scalar_one_or_none()
