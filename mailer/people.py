"""Members and subscriptions: adding people and the auto-subscription promise.

A new member joins both newsletters and the lists their role and city call for.  What a
person left is never re-added for them by an import or an auto-subscription: only their
own opt-in (``source="self"``) brings it back.
"""

from __future__ import annotations

from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Connection, insert, select, update

from mailer import webhooks
from mailer.db import utcnow
from mailer.errors import InvalidInput, NotFound
from mailer.league import League
from mailer.models import City, MailingList, Member, Subscription

__all__ = ["AddResult", "add_member", "normalise_email", "subscribe"]


def normalise_email(address: str) -> str:
    """A valid address in its normal, lower-case form, else InvalidInput."""
    try:
        info = validate_email(address.strip(), check_deliverability=False,
                              allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidInput(f"{address!r} is not a valid email address: {exc}") from None
    # Compared case-insensitively everywhere, as every mail system in practice does.
    return info.normalized.lower()


@dataclass(frozen=True)
class AddResult:
    member_id: int
    created: bool
    subscribed: tuple[str, ...]  # names newly subscribed
    kept_out: tuple[str, ...]  # names the person had left: not re-added


def _city(conn: Connection, name: str | None) -> tuple[int | None, bool, bool]:
    if not name:
        return None, False, False
    row = conn.execute(select(City.id, City.coastal, City.rural).where(City.name == name)).first()
    if row is None:
        ident = conn.execute(insert(City).values(name=name).returning(City.id)).scalar_one()
        return ident, False, False
    return row.id, bool(row.coastal), bool(row.rural)


def subscribe(conn: Connection, member_id: int, names: list[str], *, source: str,
              mode: str = "regular") -> tuple[list[str], list[str]]:
    """Subscribe to ``names``; returns (newly subscribed, kept out because they had left)."""
    if not names:
        return [], []
    lists: dict[str, int] = {row.name: row.id for row in conn.execute(
        select(MailingList.name, MailingList.id).where(MailingList.name.in_(names)))}
    missing = [n for n in names if n not in lists]
    if missing:
        raise NotFound(f"no such list or newsletter: {', '.join(missing)} "
                       "(see: citymail lists show)")
    current: dict[int, str] = dict(conn.execute(  # type: ignore[arg-type]
        select(Subscription.list_id, Subscription.status)
        .where(Subscription.member_id == member_id,
               Subscription.list_id.in_(lists.values()))).all())
    added, kept_out = [], []
    now = utcnow()
    for name in names:
        list_id = lists[name]
        status = current.get(list_id)
        if status == "active":
            continue
        if status is None:
            conn.execute(insert(Subscription).values(
                member_id=member_id, list_id=list_id, mode=mode, status="active",
                source=source, created_at=now, updated_at=now))
            added.append(name)
        elif source == "self":  # their own opt-in is the only way back
            conn.execute(update(Subscription)
                         .where(Subscription.member_id == member_id,
                                Subscription.list_id == list_id)
                         .values(status="active", mode=mode, source=source, updated_at=now))
            added.append(name)
        else:
            kept_out.append(name)
    webhooks.subscription_changed(conn, member_id, added, status="active", source=source,
                                  mode=mode)  # outbox: sent by the clock, after commit
    return added, kept_out


def add_member(conn: Connection, league: League, *, email: str, name: str = "",
               city: str | None = None, role: str | None = None, title: str | None = None,
               extra_lists: list[str] | None = None, source: str = "cli") -> AddResult:
    """Add (or update) a league member and subscribe them as the league promises."""
    address = normalise_email(email)
    city_id, coastal, rural = _city(conn, city)
    row = conn.execute(select(Member.id, Member.status).where(Member.email == address)).first()
    created = row is None
    if row is None:
        member_id = conn.execute(insert(Member).values(
            email=address, name=name, role=role, title=title, city_id=city_id,
            is_league_member=True, status="active").returning(Member.id)).scalar_one()
        webhooks.emit(conn, "member.added", {"email": address, "name": name, "city": city,
                                             "role": role, "league_member": True,
                                             "source": source})
    else:
        member_id = row.id
        values = {k: v for k, v in (("name", name), ("role", role), ("title", title),
                                    ("city_id", city_id)) if v}
        if values:
            conn.execute(update(Member).where(Member.id == member_id).values(**values))
    wanted = league.newsletter_names + league.lists_for(role=role, coastal=coastal, rural=rural)
    wanted += [n for n in (extra_lists or []) if n not in wanted]
    added, kept_out = subscribe(conn, member_id, wanted, source=source)
    return AddResult(member_id, created, tuple(added), tuple(kept_out))
