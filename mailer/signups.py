"""Public newsletter sign-up with double opt-in.

Anyone may ask for a newsletter (the web form or ``POST /api/v1/newsletters/NAME/
subscribers``); we only mail the address a link signed for 7 days (``mailer.tokens``,
purpose ``signup``: newsletter id, address and name).  Nothing about an unconfirmed
address is stored: the link is the pending state.  Confirming creates the person if
needed (``is_league_member`` false, no city) and subscribes them with ``source="self"``:
it is their own opt-in, so it also brings back someone who had left.

The caller answers the same whatever the address (new, pending, subscribed, suppressed),
so the form tells nobody who is on our lists.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from mailer import webhooks
from mailer.db import utcnow
from mailer.errors import NotFound
from mailer.models import MailingList, Member
from mailer.notices import build_notice, queue_notice, render_notice
from mailer.people import normalise_email, subscribe
from mailer.privacy import is_suppressed
from mailer.settings import Settings
from mailer.tokens import sign, unsign

__all__ = [
    "SIGNUP_DAYS", "Confirmed", "Newsletter", "confirm_signup", "newsletter", "read_token",
    "request_signup", "signup_token",
]

log = logging.getLogger(__name__)

SIGNUP_DAYS = 7
PURPOSE = "signup"
SENDER_LOCAL = "noreply"
BOUNCE_LOCAL = "citymail-bounces"
MAX_NAME = 200


@dataclass(frozen=True)
class Newsletter:
    id: int
    name: str
    display_name: str
    description: str


@dataclass(frozen=True)
class Confirmed:
    email: str
    newsletter: Newsletter
    added: bool  # False: they were already subscribed


def newsletter(conn: Connection, name: str) -> Newsletter:
    """The newsletter called ``name``; NotFound for a list or an unknown name."""
    row = conn.execute(select(MailingList.id, MailingList.name, MailingList.display_name,
                              MailingList.description)
                       .where(MailingList.name == name, MailingList.kind == "newsletter")).first()
    if row is None:
        raise NotFound(f"no newsletter called {name!r}")
    return Newsletter(row.id, row.name, row.display_name, row.description or "")


def _newsletter_by_id(conn: Connection, list_id: int) -> Newsletter | None:
    name = conn.scalar(select(MailingList.name).where(MailingList.id == list_id,
                                                      MailingList.kind == "newsletter"))
    return newsletter(conn, name) if name else None


def signup_token(settings: Settings, list_id: int, email: str, name: str = "", *,
                 now: float | None = None) -> str:
    expires = int((time.time() if now is None else now) + SIGNUP_DAYS * 86400)
    return sign(settings.secret_key, PURPOSE, list_id, email, name[:MAX_NAME], expires=expires)


def read_token(settings: Settings, token: str, *,
               now: float | None = None) -> tuple[int, str, str] | None:
    """(newsletter id, address, name) of a valid, unexpired sign-up token, else None."""
    fields = unsign([k.encode() for k in settings.secret_keys], PURPOSE, token, now=now)
    if fields is None or len(fields) != 3 or not fields[0].isdigit():
        return None
    return int(fields[0]), fields[1], fields[2]


def request_signup(conn: Connection, settings: Settings, name: str, email: str, *,
                   person_name: str = "", site_name: str = "Cal Cities lists") -> bool:
    """Queue a confirmation link for ``email``; True if one was queued.

    NotFound for an unknown newsletter, InvalidInput for a malformed address.  A
    suppressed (forgotten) address gets nothing; callers answer the same either way.
    """
    info = newsletter(conn, name)
    address = normalise_email(email)
    if is_suppressed(conn, settings, address):
        return False
    person_name = " ".join(person_name.split())[:MAX_NAME]
    token = signup_token(settings, info.id, address, person_name)
    subject, text = render_notice("signup_confirm", {
        "site_name": site_name, "name": person_name, "email": address,
        "newsletter": info.display_name, "url": f"{settings.base_url}/s/{token}",
        "days": SIGNUP_DAYS})
    data = build_notice(sender=f"{SENDER_LOCAL}@{settings.list_domain}", sender_name=site_name,
                        to=address, subject=subject, text=text, domain=settings.list_domain)
    outbound_id = queue_notice(conn, data=data, recipients=[address], bounce_local=BOUNCE_LOCAL)
    log.info("queued a sign-up confirmation for %s (outbound %d)", info.name, outbound_id)
    return True


def peek(conn: Connection, settings: Settings, token: str) -> tuple[str, Newsletter] | None:
    """What a valid link would confirm (for the page with the button), else None."""
    fields = read_token(settings, token)
    if fields is None:
        return None
    info = _newsletter_by_id(conn, fields[0])
    return (fields[1], info) if info else None


def confirm_signup(conn: Connection, settings: Settings, token: str) -> Confirmed | None:
    """Subscribe the address a valid link names; None for a bad, expired or dead link."""
    fields = read_token(settings, token)
    if fields is None:
        return None
    list_id, address, person_name = fields
    info = _newsletter_by_id(conn, list_id)
    if info is None or is_suppressed(conn, settings, address):
        return None
    row = conn.execute(select(Member.id, Member.status).where(Member.email == address)).first()
    now = utcnow()
    if row is None:
        member_id = conn.execute(insert(Member).values(
            email=address, name=person_name, is_league_member=False, status="active",
            created_at=now, updated_at=now).returning(Member.id)).scalar_one()
        webhooks.emit(conn, "member.added", {"email": address, "name": person_name,
                                             "league_member": False, "source": "signup"})
    elif row.status != "active":
        return None  # disabled or erased: an admin decision a link does not undo
    else:
        member_id = row.id
    added, _ = subscribe(conn, member_id, [info.name], source="self")  # emits the event
    return Confirmed(address, info, bool(added))
