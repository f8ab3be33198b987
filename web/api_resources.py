"""The resources of /api/v1 about people: lists, members, subscriptions, sign-ups.

Each handler is a plain function of a ``web.api.Call`` that opens its own short
transaction and uses the service functions the CLI and the self-service pages use
(``mailer.welcome.join``, ``mailer.people``, ``mailer.preferences``, ``mailer.signups``).
``ENDPOINTS`` gathers these and ``web.api_publishing``'s into the table that both the
routes and the OpenAPI document are built from.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy import func, or_, select

from mailer import preferences as prefs
from mailer import signups
from mailer.db import reading, writing
from mailer.errors import InvalidInput, NotFound
from mailer.league import League, load_league
from mailer.models import City, MailingList, Member, Subscription
from mailer.people import normalise_email, subscribe
from mailer.welcome import join
from web.api import ApiError, Call, Endpoint, Param, Reply
from web.api_publishing import PUBLISHING
from web.api_schema import obj
from web.ratelimit import RateLimiter

__all__ = ["ENDPOINTS", "Services"]

MAX_PAGE = 200


@dataclass
class Services:
    """Long-lived collaborators of the handlers (one per app)."""

    site_name: str
    signup_limiter: RateLimiter | None = None
    _league: League | None = field(default=None, repr=False)

    @cached_property
    def league(self) -> League:
        return self._league or load_league()

    def signup_limit(self) -> RateLimiter:
        if self.signup_limiter is None:
            from web.signup import SIGNUP_LIMITS

            self.signup_limiter = RateLimiter(SIGNUP_LIMITS)
        return self.signup_limiter


# -- helpers -------------------------------------------------------------------------------------
def _int(query: dict[str, str] | Any, name: str, default: int, lo: int, hi: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not text.isdigit() or not lo <= int(text) <= hi:
        raise InvalidInput(f"?{name}= must be a whole number from {lo} to {hi}, got {text!r}")
    return int(text)


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"m{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not (text.startswith("m") and text[1:].isdigit()):
        raise InvalidInput("?cursor= is not one we gave out: use the next_cursor of a page")
    return int(text[1:])


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


# -- lists ---------------------------------------------------------------------------------------
def get_lists(call: Call) -> dict[str, Any]:
    counts = (select(Subscription.list_id, func.count().label("n"))
              .where(Subscription.status == "active").group_by(Subscription.list_id).subquery())
    with reading(call.engine) as conn:
        rows = conn.execute(
            select(MailingList.name, MailingList.kind, MailingList.display_name,
                   MailingList.description, MailingList.announce_only,
                   func.coalesce(counts.c.n, 0).label("subscribers"))
            .outerjoin(counts, counts.c.list_id == MailingList.id)
            .order_by(MailingList.kind, MailingList.name)).all()
    domain = call.settings.list_domain
    return {"lists": [{"name": r.name, "kind": r.kind, "address": f"{r.name}@{domain}",
                       "display_name": r.display_name, "description": r.description or "",
                       "announce_only": bool(r.announce_only),
                       "subscribers": int(r.subscribers)} for r in rows]}


# -- members -------------------------------------------------------------------------------------
def _member_json(r: Any) -> dict[str, Any]:
    return {"id": r.id, "email": r.email, "name": r.name, "title": r.title, "role": r.role,
            "city": r.city, "league_member": bool(r.is_league_member), "status": r.status,
            "created": _iso(r.created_at)}


def get_members(call: Call) -> dict[str, Any]:
    limit = _int(call.query, "limit", 50, 1, MAX_PAGE)
    after = decode_cursor(call.query.get("cursor"))
    stmt = (select(Member.id, Member.email, Member.name, Member.title, Member.role,
                   City.name.label("city"), Member.is_league_member, Member.status,
                   Member.created_at)
            .outerjoin(City, City.id == Member.city_id)
            .where(Member.id > after, Member.status != "erased")
            .order_by(Member.id).limit(limit + 1))
    q = " ".join(call.query.get("q", "").split()).lower()[:200]
    if q:
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(*(func.lower(col).like(like, escape="\\")
                                for col in (Member.email, Member.name, City.name))))
    with reading(call.engine) as conn:
        rows = conn.execute(stmt).all()
    page = rows[:limit]
    more = len(rows) > limit
    return {"members": [_member_json(r) for r in page],
            "next_cursor": encode_cursor(page[-1].id) if more else None}


def get_member(call: Call) -> dict[str, Any]:
    from mailer.privacy import member_summary

    with reading(call.engine) as conn:
        return member_summary(conn, call.settings, call.params["email"])


def post_member(call: Call) -> Reply:
    b = call.body
    welcome = b.get("welcome", True)
    with writing(call.engine) as conn:
        result = join(conn, call.settings, call.services.league, email=b["email"],
                      name=b["name"], city=b["city"], role=b.get("role"), title=b.get("title"),
                      extra_lists=b.get("lists", []), source="api", welcome=welcome)
    return Reply({"email": normalise_email(b["email"]), "created": result.created,
                  "subscribed": list(result.subscribed), "kept_out": list(result.kept_out),
                  "welcome": ("queued" if welcome else "not sent") if result.created else None},
                 201 if result.created else 200)


# -- subscriptions -------------------------------------------------------------------------------
def _person(conn: Any, email: str) -> prefs.Person:
    person = prefs.person_by_email(conn, email)
    if person is None or person.status == "erased":
        raise NotFound(f"no member with address {normalise_email(email)}")
    return person


def _sub_json(s: prefs.SubscriptionView) -> dict[str, Any]:
    return {"list": s.name, "kind": s.kind, "display_name": s.display_name, "mode": s.mode,
            "status": s.status}


def get_subscriptions(call: Call) -> dict[str, Any]:
    with reading(call.engine) as conn:
        person = _person(conn, call.params["email"])
        subs = prefs.subscriptions_of(conn, person.id)
    return {"email": person.email, "subscriptions": [_sub_json(s) for s in subs]}


def _subscribe(conn: Any, person: prefs.Person, list_id: int, name: str, *, mode: str | None,
               opt_in: bool) -> bool:
    current = prefs.subscription_of(conn, person.id, list_id)
    if current is not None and current.active:
        return bool(mode) and prefs.set_mode(conn, person.id, list_id, mode or current.mode)
    if opt_in:  # the person asked for it themselves: the only way back after leaving
        return prefs.rejoin(conn, person.id, list_id, mode or "regular")
    if current is not None:
        why = ("left it themselves" if current.status == "left"
               else "was removed after bounces")
        raise ApiError(409, f"{person.email} {why}; they are not re-added unless they opt in "
                            'themselves (send "opt_in": true only if they asked for it)')
    added, _ = subscribe(conn, person.id, [name], source="api", mode=mode or "regular")
    return bool(added)


def post_subscription(call: Call) -> dict[str, Any]:
    b = call.body
    with writing(call.engine) as conn:
        person = _person(conn, call.params["email"])
        row = conn.execute(select(MailingList.id, MailingList.kind)
                           .where(MailingList.name == b["list"])).first()
        if row is None:
            raise NotFound(f"no list or newsletter called {b['list']!r}")
        if b.get("mode") and b["mode"] not in prefs.modes_for(row.kind):
            raise InvalidInput(f"{b['list']} offers the modes "
                               f"{', '.join(prefs.modes_for(row.kind))}; got {b['mode']!r}")
        if b["action"] == "unsubscribe":
            changed = prefs.unsubscribe(conn, person.id, row.id, source="api")
        else:
            changed = _subscribe(conn, person, row.id, b["list"], mode=b.get("mode"),
                                 opt_in=b.get("opt_in", False))
        sub = prefs.subscription_of(conn, person.id, row.id)
    assert sub is not None
    return {"email": person.email, "changed": changed, "subscription": _sub_json(sub)}


# -- public sign-up ------------------------------------------------------------------------------
SIGNUP_ANSWER = ("If this address can receive mail, a confirmation link is on its way; the "
                 "subscription starts when the link is used.")


def post_subscriber(call: Call) -> Reply:
    with reading(call.engine) as conn:
        info = signups.newsletter(conn, call.params["name"])
    address = normalise_email(call.body["email"])
    wait = call.services.signup_limit().hit(address=address)
    if wait:
        raise ApiError(429, f"several links went to this address recently; try again in "
                            f"{math.ceil(wait / 60)} minutes",
                       headers={"Retry-After": str(math.ceil(wait))})
    with writing(call.engine) as conn:
        signups.request_signup(conn, call.settings, info.name, address,
                               person_name=call.body.get("name", ""),
                               site_name=call.services.site_name)
    # The same answer for new, pending, subscribed and suppressed addresses.
    return Reply({"email": address, "newsletter": info.name, "status": "confirmation_sent",
                  "message": SIGNUP_ANSWER}, 202)


# -- the table -----------------------------------------------------------------------------------
EMAIL = {"type": "string", "minLength": 3, "maxLength": 320}
TEXT = {"type": "string", "maxLength": 200}
MEMBER_BODY = obj({
    "email": EMAIL, "name": {**TEXT, "minLength": 1}, "city": {**TEXT, "minLength": 1},
    "role": TEXT, "title": TEXT,
    "lists": {"type": "array", "items": {"type": "string", "maxLength": 100}, "maxItems": 50},
    "welcome": {"type": "boolean"},
}, required=("email", "name", "city"))
SUBSCRIPTION_BODY = obj({
    "list": {"type": "string", "minLength": 1, "maxLength": 100},
    "action": {"type": "string", "enum": ["subscribe", "unsubscribe"]},
    "mode": {"type": "string", "maxLength": 20,
             "description": "regular, digest, nomail… (what the list offers)"},
    "opt_in": {"type": "boolean"},
}, required=("list", "action"))
SUBSCRIBER_BODY = obj({"email": EMAIL, "name": TEXT}, required=("email",))

PEOPLE: tuple[Endpoint, ...] = (
    Endpoint("GET", "/lists", get_lists, "lists:read", "Every list and newsletter"),
    Endpoint("GET", "/members", get_members, "members:read",
             "Members, oldest first, with search and cursor pagination",
             query=(Param("q", "search email, name and city (case-insensitive)"),
                    Param("limit", f"page size, 1-{MAX_PAGE} (default 50)",
                          {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
                    Param("cursor", "the next_cursor of the previous page"))),
    Endpoint("POST", "/members", post_member, "members:write",
             "Add a member as `citymail members add` does (both newsletters, their role's "
             "lists, a welcome unless \"welcome\": false); 201 if new, 200 if updated",
             body=MEMBER_BODY, status=201, errors=(400, 404, 409)),
    Endpoint("GET", "/members/{email}", get_member, "members:read",
             "One person, as `citymail members show --json` prints them", errors=(404,)),
    Endpoint("GET", "/members/{email}/subscriptions", get_subscriptions, "members:read",
             "A person's subscriptions, active, left or removed", errors=(404,)),
    Endpoint("POST", "/members/{email}/subscriptions", post_subscription, "members:write",
             "Subscribe or unsubscribe; someone who left is re-added only with "
             "\"opt_in\": true (they asked for it themselves)",
             body=SUBSCRIPTION_BODY, errors=(400, 404, 409)),
    Endpoint("POST", "/newsletters/{name}/subscribers", post_subscriber, "subscribers:write",
             "Start a double opt-in sign-up: the address is mailed a confirmation link; the "
             "answer is the same whatever the address", body=SUBSCRIBER_BODY, status=202,
             errors=(400, 404, 429)),
)


ENDPOINTS: tuple[Endpoint, ...] = PEOPLE + PUBLISHING
