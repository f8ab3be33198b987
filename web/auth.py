"""Who is asking: the signed-in ``Principal``, the staff guard, list access, form tokens.

    from web.auth import Principal, current_principal, require_staff, can_read_list, csrf_token

* ``current_principal(request)``: the staff user or member of this request's session, or
  None.  Staff are re-read from ``web_users`` on each request (cached for the request), so
  a disabled account or a new password takes effect at once.
* ``@require_staff(admin=…, editor=…, moderator_of="name")`` guards an endpoint: anonymous
  visitors are sent to ``/login?next=…`` (303), staff without the role get a 403 page, an
  admin passes every check.  The principal is left on ``request.state.principal``.
* ``can_read_list(principal, name, engine)``: admins, the list's moderators, and members
  with an active subscription to it.
* ``csrf_token(request)``: the value a form must send back as ``csrf_token``.

``AuthContext`` (built by ``web.app.create_app``) holds the engine, keys and the 403 page;
``SessionMiddleware`` puts it in the scope.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mailer.db import reading
from mailer.models import MailingList, Member, Subscription
from web.csrf import token_for
from web.sessions import session_state
from web.users import load_user

__all__ = ["AuthContext", "AuthScope", "Principal", "can_read_list", "csrf_token",
           "current_principal", "forbidden", "require_staff", "safe_next"]

SCOPE_KEY = "citymail.auth"
_UNKNOWN = object()


@dataclass(frozen=True)
class Principal:
    """Someone signed in: staff (password) or a member (emailed link)."""

    kind: str  # "staff" | "member"
    email: str
    user_id: int | None
    is_admin: bool
    is_editor: bool
    moderates: frozenset[str]

    def may(self, *, admin: bool = False, editor: bool = False,
            moderator_of: str | None = None) -> bool:
        """True when this principal holds every role asked for (admins hold them all)."""
        if self.kind != "staff":
            return False
        if self.is_admin:
            return True
        return (not admin and (not editor or self.is_editor)
                and (moderator_of is None or moderator_of in self.moderates))


@dataclass(frozen=True)
class AuthContext:
    engine: Engine
    keys: tuple[bytes, ...]
    forbidden: Callable[[Request], Response]


class AuthScope:
    """ASGI middleware that makes the ``AuthContext`` reachable from a request."""

    def __init__(self, app: ASGIApp, *, context: AuthContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[SCOPE_KEY] = self.context
        await self.app(scope, receive, send)


def _context(request: Request) -> AuthContext:
    try:
        return request.scope[SCOPE_KEY]
    except KeyError:
        raise RuntimeError("AuthScope is not installed (see web.app.create_app)") from None


def _load_staff(engine: Engine, user_id: int, stamp: str) -> Principal | None:
    with reading(engine) as conn:
        user = load_user(conn, user_id)
    if user is None or user.disabled or user.stamp != stamp:
        return None
    return Principal("staff", user.email, user.id, user.is_admin, user.is_editor,
                     user.moderates)


async def current_principal(request: Request) -> Principal | None:
    """The principal of this request's session, or None (anonymous or lapsed)."""
    cached = getattr(request.state, "principal", _UNKNOWN)
    if cached is not _UNKNOWN:
        return cached
    data = session_state(request.scope).data
    principal: Principal | None = None
    if data is not None and data.kind == "member" and data.subject:
        principal = Principal("member", data.subject, None, False, False, frozenset())
    elif data is not None and data.kind == "staff" and data.subject.isdigit():
        principal = await run_in_threadpool(_load_staff, _context(request).engine,
                                            int(data.subject), data.stamp)
    request.state.principal = principal
    return principal


def safe_next(value: str | None, default: str = "/") -> str:
    """A local path to go to after signing in; anything else (another site) is refused."""
    if (not value or not value.startswith("/") or value.startswith("//") or "\\" in value
            or any(ord(c) < 32 for c in value)):
        return default
    return value


def login_redirect(request: Request) -> Response:
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    root = request.scope.get("root_path", "").rstrip("/")
    return RedirectResponse(f"{root}/login?next={quote(path, safe='/')}", status_code=303,
                            headers={"Cache-Control": "no-store"})


Endpoint = Callable[..., Awaitable[Response]]


def require_staff(*, admin: bool = False, editor: bool = False,
                  moderator_of: str | None = None) -> Callable[[Endpoint], Endpoint]:
    """Guard a Starlette endpoint (a function or method whose last argument is the request).

    ``moderator_of`` names the path parameter that holds the list name.
    """
    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(*args: Any) -> Response:
            request: Request = args[-1]
            principal = await current_principal(request)
            if principal is None or principal.kind != "staff":
                return login_redirect(request)
            list_name = (request.path_params.get(moderator_of, "\0")
                         if moderator_of is not None else None)
            if not principal.may(admin=admin, editor=editor, moderator_of=list_name):
                return _context(request).forbidden(request)
            request.state.principal = principal
            return await endpoint(*args)

        return guarded

    return decorate


def can_read_list(principal: Principal | None, list_name: str, engine: Engine) -> bool:
    """May ``principal`` read the members-only archive of ``list_name``?  (Blocking.)"""
    if principal is None:
        return False
    if principal.kind == "staff":
        return principal.is_admin or list_name in principal.moderates
    with reading(engine) as conn:
        found = conn.execute(
            select(Subscription.id)
            .join(Member, Member.id == Subscription.member_id)
            .join(MailingList, MailingList.id == Subscription.list_id)
            .where(Member.email == principal.email.lower(), Member.status == "active",
                   MailingList.name == list_name, Subscription.status == "active")
            .limit(1)).first()
    return found is not None


def forbidden(request: Request) -> Response:
    """The 403 page, for endpoints that decide access themselves."""
    return _context(request).forbidden(request)


def csrf_token(request: Request) -> str:
    """The form token of this visitor's session (starting one if needed)."""
    data = session_state(request.scope).ensure()
    return token_for(_context(request).keys[0], data.sid)
