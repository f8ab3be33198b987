"""A person's own choices: leave a list, change how it arrives, come back.

These are the service functions behind the self-service web pages (one-click unsubscribe,
the preferences page) and any other channel that acts for the person themself.  Each takes
the caller's ``Connection`` (the unit of work; write through ``mailer.db.writing``) and
neither sends mail nor enqueues work.

Leaving sets the subscription to ``left``: imports and auto-subscription never re-add it
(see ``mailer.people``); only the person's own opt-in (``rejoin``) does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from mailer import webhooks
from mailer.db import utcnow
from mailer.errors import InvalidInput, NotFound
from mailer.models import MailingList, Member, Subscription
from mailer.models_digests import owe_last_digest
from mailer.people import normalise_email, subscribe
from mailer.settings import Settings
from mailer.tokens import sign, unsign

__all__ = [
    "LEAVE", "MODES", "PREFERENCES_DAYS", "STAY_OUT", "Person", "SubscriptionView",
    "apply_choices", "find_person", "modes_for",
    "person_by_email", "preferences_token", "preferences_url", "read_preferences_token",
    "read_unsubscribe_token", "rejoin", "set_mode", "subscription_of", "subscriptions_of",
    "unsubscribe",
]

PREFERENCES_DAYS = 30
# Delivery modes a person may choose, by kind of list (a newsletter has no digest).
MODES: dict[str, tuple[str, ...]] = {
    "list": ("regular", "digest", "digest-plain", "nomail"),
    "newsletter": ("regular", "nomail"),
}
LEAVE = "leave"  # a choice on the preferences page: leave this list
STAY_OUT = "off"  # a choice for a list already left: stay out


@dataclass(frozen=True)
class Person:
    id: int
    email: str
    name: str
    status: str  # active | disabled | erased


@dataclass(frozen=True)
class SubscriptionView:
    """One of a person's subscriptions, active or not, as the person sees it."""

    list_id: int
    name: str
    kind: str  # list | newsletter
    display_name: str
    description: str
    mode: str  # regular | digest | nomail
    status: str  # active | left | removed

    @property
    def active(self) -> bool:
        return self.status == "active"


def modes_for(kind: str) -> tuple[str, ...]:
    return MODES.get(kind, MODES["list"])


# -- signed links --------------------------------------------------------------------------

def preferences_token(settings: Settings, member_id: int, *, days: int = PREFERENCES_DAYS,
                      now: float | None = None) -> str:
    """A token for the preferences page of ``member_id``, valid for ``days``."""
    expires = int((time.time() if now is None else now) + days * 86400)
    return sign(settings.secret_key, "preferences", member_id, expires=expires)


def preferences_url(settings: Settings, member_id: int, *, days: int = PREFERENCES_DAYS,
                    now: float | None = None) -> str:
    """The link to a person's preferences page (mailed to them; expires after ``days``)."""
    return f"{settings.base_url}/p/{preferences_token(settings, member_id, days=days, now=now)}"


def _keys(settings: Settings) -> list[bytes]:
    return [k.encode() for k in settings.secret_keys]


def _ints(fields: list[str] | None, count: int) -> tuple[int, ...] | None:
    if fields is None or len(fields) != count or not all(f.isdigit() for f in fields):
        return None
    return tuple(int(f) for f in fields)


def read_unsubscribe_token(settings: Settings, token: str) -> tuple[int, int] | None:
    """(member_id, list_id) of a valid unsubscribe token (any current key), else None."""
    ids = _ints(unsign(_keys(settings), "unsubscribe", token), 2)
    return (ids[0], ids[1]) if ids else None


def read_preferences_token(settings: Settings, token: str, *,
                           now: float | None = None) -> int | None:
    """The member id of a valid, unexpired preferences token, else None."""
    fields = unsign(_keys(settings), "preferences", token, now=now)
    ids = _ints(fields, 1)
    return ids[0] if ids else None


# -- reading -------------------------------------------------------------------------------

_PERSON = select(Member.id, Member.email, Member.name, Member.status)


def find_person(conn: Connection, member_id: int) -> Person | None:
    row = conn.execute(_PERSON.where(Member.id == member_id)).first()
    return Person(row.id, row.email, row.name or "", row.status) if row else None


def person_by_email(conn: Connection, email: str) -> Person | None:
    """The person with this address (any case), else None; InvalidInput if malformed."""
    row = conn.execute(_PERSON.where(Member.email == normalise_email(email))).first()
    return Person(row.id, row.email, row.name or "", row.status) if row else None


_VIEW = (
    select(MailingList.id, MailingList.name, MailingList.kind, MailingList.display_name,
           MailingList.description, Subscription.mode, Subscription.status)
    .join(MailingList, MailingList.id == Subscription.list_id)
)


def _view(row) -> SubscriptionView:
    return SubscriptionView(row.id, row.name, row.kind, row.display_name,
                            row.description or "", row.mode, row.status)


def subscriptions_of(conn: Connection, member_id: int) -> list[SubscriptionView]:
    """Every subscription of the person, active or not: newsletters first, then lists."""
    rows = conn.execute(_VIEW.where(Subscription.member_id == member_id)
                        .order_by(MailingList.kind.desc(), MailingList.display_name))
    return [_view(r) for r in rows]


def subscription_of(conn: Connection, member_id: int, list_id: int) -> SubscriptionView | None:
    row = conn.execute(_VIEW.where(Subscription.member_id == member_id,
                                   Subscription.list_id == list_id)).first()
    return _view(row) if row else None


# -- changing ------------------------------------------------------------------------------

def unsubscribe(conn: Connection, member_id: int, list_id: int, *, source: str) -> bool:
    """Leave the list for good; True if this changed anything (idempotent).

    ``source`` says how (``one-click``, ``web``, ``preferences``, ``email``) and is kept on
    the subscription.  A person with no subscription row gets a ``left`` one, so that a
    later import or auto-subscription keeps them out too.
    """
    now = utcnow()
    result = conn.execute(
        update(Subscription)
        .where(Subscription.member_id == member_id, Subscription.list_id == list_id,
               Subscription.status != "left")
        .values(status="left", source=source, updated_at=now))
    if result.rowcount:
        webhooks.subscription_changed(conn, member_id, [list_id], status="left", source=source)
        return True
    if subscription_of(conn, member_id, list_id) is not None:
        return False  # already left
    if find_person(conn, member_id) is None or conn.execute(
            select(MailingList.id).where(MailingList.id == list_id)).first() is None:
        raise NotFound(f"no member {member_id} or no list {list_id}")
    conn.execute(insert(Subscription).values(
        member_id=member_id, list_id=list_id, status="left", source=source,
        created_at=now, updated_at=now))
    webhooks.subscription_changed(conn, member_id, [list_id], status="left", source=source)
    return True


def set_mode(conn: Connection, member_id: int, list_id: int, mode: str) -> bool:
    """Change how an active subscription arrives; True if it changed.

    InvalidInput for a mode the list does not offer; NotFound unless the subscription is
    active (use ``rejoin`` to come back to a list that was left).
    """
    current = subscription_of(conn, member_id, list_id)
    if current is None or not current.active:
        raise NotFound(f"member {member_id} has no active subscription to list {list_id}")
    if mode not in modes_for(current.kind):
        raise InvalidInput(f"{current.name} offers the modes {', '.join(modes_for(current.kind))};"
                           f" got {mode!r}")
    if mode == current.mode:
        return False
    conn.execute(update(Subscription)
                 .where(Subscription.member_id == member_id, Subscription.list_id == list_id)
                 .values(mode=mode, updated_at=utcnow()))
    # Leaving digest mode: the clock sends one last digest of the posts waiting now.
    owe_last_digest(conn, member_id=member_id, list_id=list_id, old_mode=current.mode,
                    new_mode=mode)
    webhooks.subscription_changed(conn, member_id, [list_id], status="active",
                                  source="preferences", mode=mode)
    return True


def rejoin(conn: Connection, member_id: int, list_id: int, mode: str = "regular") -> bool:
    """The person's own opt-in: (re)subscribe in ``mode``; True if it changed anything."""
    row = conn.execute(select(MailingList.name, MailingList.kind)
                       .where(MailingList.id == list_id)).first()
    if row is None:
        raise NotFound(f"no list {list_id}")
    if mode not in modes_for(row.kind):
        raise InvalidInput(f"{row.name} offers the modes {', '.join(modes_for(row.kind))}; "
                           f"got {mode!r}")
    added, _kept_out = subscribe(conn, member_id, [row.name], source="self", mode=mode)
    return bool(added)


def apply_choices(conn: Connection, member_id: int, choices: dict[int, str], *,
                  source: str = "preferences") -> list[str]:
    """Apply a preferences form: list id -> a mode, ``LEAVE`` or ``STAY_OUT``.

    Lists the person has no subscription row for are ignored (nobody opts in to a list
    from this page that they were never on).  Returns the names of the lists changed;
    raises InvalidInput, changing nothing, if any choice is not offered for its list.
    """
    changed = []
    for sub in subscriptions_of(conn, member_id):
        choice = choices.get(sub.list_id)
        if choice is None:
            continue
        offered = (*modes_for(sub.kind), LEAVE if sub.active else STAY_OUT)
        if choice not in offered:
            raise InvalidInput(f"{sub.display_name}: choose one of {', '.join(offered)}")
        if choice == STAY_OUT:
            continue
        if choice == LEAVE:
            done = unsubscribe(conn, member_id, sub.list_id, source=source)
        elif sub.active:
            done = set_mode(conn, member_id, sub.list_id, choice)
        else:
            done = rejoin(conn, member_id, sub.list_id, choice)
        if done:
            changed.append(sub.name)
    return changed
