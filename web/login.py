"""Signing in and out: staff by password (``/login``), members by emailed link (``/signin``).

``/login``        GET the form, POST ``email`` + ``password``; rate-limited per address and
                  per client; the same answer for a wrong password and an unknown address.
``/logout``       POST (a form with the CSRF token) ends the session.
``/signin``       GET the form, POST ``email``: if the address is a member's we mail a
                  link valid for 30 minutes; the answer is the same either way.
``/signin/{tok}`` GET shows a button (mail scanners follow links), POST signs the member
                  in and goes on to ``next`` (e.g. a list archive).  A link works once:
                  the POST records it in ``used_signin_links`` (``claim_link``), and a
                  used link gets the "ask for a new one" form instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import time

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from mailer import preferences as prefs
from mailer.db import reading, utcnow, writing
from mailer.errors import InvalidInput
from mailer.models_web import UsedSigninLink
from mailer.notices import build_notice, queue_notice, render_notice
from mailer.people import normalise_email
from mailer.settings import Settings
from mailer.tokens import sign, unsign
from web.auth import Principal, current_principal, safe_next
from web.pages import Pages, read_form
from web.ratelimit import Limit, RateLimiter, client_ip
from web.sessions import session_state
from web.users import authenticate

__all__ = ["LOGIN_LIMITS", "SIGNIN_MINUTES", "Login", "claim_link", "landing", "link_used"]

log = logging.getLogger(__name__)

SIGNIN_MINUTES = 30
SIGNIN_PURPOSE = "member-signin"
MAX_FIELD = 1024
# Attempts per address and per client IP; sign-in links share the manage-link limits' shape.
LOGIN_LIMITS = {"login_address": Limit(10, 900.0), "login_ip": Limit(50, 900.0),
                "signin_address": Limit(3, 3600.0), "signin_ip": Limit(20, 3600.0)}
NO_STORE = {"Cache-Control": "no-store"}
EXPIRED_LINK = "This sign-in link has expired or is not complete. Ask for a new one below."
USED_LINK = ("This sign-in link has been used already and is not valid any more. "
             "Ask for a new one below.")
USED = UsedSigninLink.__table__


def _digest(token: str) -> str:
    # A valid token has one spelling (its MAC is compared as text), so its hash names it.
    return hashlib.sha256(token.encode()).hexdigest()


def claim_link(engine: Engine, token: str, *, now: dt.datetime | None = None) -> bool:
    """Record ``token`` as used; False if it was used before (then nobody may sign in).

    A conditional INSERT on the primary key, so of two concurrent POSTs only one wins.
    The row is kept for ``SIGNIN_MINUTES`` (a link never lives longer than that from now);
    rows past that are pruned here, so the table holds at most half an hour of sign-ins.
    """
    now = now or utcnow()
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    with writing(engine) as conn:
        conn.execute(delete(USED).where(USED.c.expires_at < now))
        stmt = dialect.insert(USED).values(
            digest=_digest(token), expires_at=now + dt.timedelta(minutes=SIGNIN_MINUTES))
        return bool(conn.execute(stmt.on_conflict_do_nothing(index_elements=["digest"])
                                 ).rowcount)


def link_used(engine: Engine, token: str) -> bool:
    with reading(engine) as conn:
        return conn.execute(select(USED.c.digest).where(USED.c.digest == _digest(token))
                            ).first() is not None


def landing(principal: Principal) -> str:
    """Where a staff user starts: admins the admin pages, moderators their queue."""
    if principal.is_admin:
        return "/admin/"
    if principal.moderates:
        return "/moderation/"
    if principal.is_editor:
        return "/admin/newsletters"
    return "/moderation/"  # no role yet: the page says to ask an administrator


def _retry_page(pages: Pages, request: Request, wait: float, what: str) -> Response:
    return pages.too_many(request, wait=wait, title="Too many attempts",
                          first=f"There were too many {what} in a short time.")


class Login:
    """The sign-in pages; collaborators are passed in."""

    def __init__(self, settings: Settings, engine: Engine, pages: Pages,
                 limiter: RateLimiter) -> None:
        self.settings = settings
        self.engine = engine
        self.pages = pages
        self.limiter = limiter
        self.keys = [k.encode() for k in settings.secret_keys]

    def routes(self) -> list[Route]:
        return [
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login_post, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/signin", self.signin_page, methods=["GET"]),
            Route("/signin", self.signin_post, methods=["POST"]),
            Route("/signin/{token}", self.link_page, methods=["GET"]),
            Route("/signin/{token}", self.link_post, methods=["POST"]),
        ]

    @staticmethod
    async def _form(request: Request) -> FormData:
        return await read_form(request, max_fields=20)

    def _root(self, request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    # -- staff: /login, /logout -----------------------------------------------------------

    def _login_form(self, request: Request, *, email: str = "", error: str = "",
                    next_path: str = "", status: int = 200, notice: str = "") -> Response:
        return self.pages.render(request, "login", title="Staff sign-in", status=status,
                                 headers=NO_STORE, email=email, error=error, notice=notice,
                                 next=next_path)

    async def login_page(self, request: Request) -> Response:
        next_path = safe_next(request.query_params.get("next"), "")
        principal = await current_principal(request)
        if principal is not None and principal.kind == "staff":
            return RedirectResponse(self._root(request) + (next_path or landing(principal)),
                                    status_code=303)
        notice = "You are signed out." if request.query_params.get("out") == "1" else ""
        return self._login_form(request, next_path=next_path, notice=notice)

    async def login_post(self, request: Request) -> Response:
        form = await self._form(request)
        email = str(form.get("email", "")).strip()[:MAX_FIELD]
        password = str(form.get("password", ""))
        next_path = safe_next(str(form.get("next", "")), "")
        if not email or not password:
            return self._login_form(request, email=email, next_path=next_path, status=400,
                                    error="Please enter your email address and password.")
        wait = self.limiter.hit(login_address=email.lower(), login_ip=client_ip(request))
        if wait:
            return _retry_page(self.pages, request, wait, "sign-in attempts")
        user = await run_in_threadpool(authenticate, self.engine, email, password)
        if user is None:
            log.info("failed staff sign-in for %r from %s", email, client_ip(request))
            return self._login_form(request, email=email, next_path=next_path, status=401,
                                    error="That email address and password do not match "
                                          "an account.")
        session_state(request.scope).sign_in("staff", str(user.id), stamp=user.stamp)
        principal = Principal("staff", user.email, user.id, user.is_admin, user.is_editor,
                              user.moderates)
        log.info("staff user %d signed in", user.id)
        return RedirectResponse(self._root(request) + (next_path or landing(principal)),
                                status_code=303, headers=NO_STORE)

    async def logout(self, request: Request) -> Response:
        state = session_state(request.scope)
        was_staff = state.data is not None and state.data.kind == "staff"
        state.sign_out()
        target = "/login?out=1" if was_staff else "/signin?out=1"
        return RedirectResponse(self._root(request) + target, status_code=303,
                                headers=NO_STORE)

    # -- members: /signin and the emailed link ----------------------------------------------

    def _signin_form(self, request: Request, *, email: str = "", error: str = "",
                     next_path: str = "", status: int = 200, notice: str = "") -> Response:
        return self.pages.render(request, "signin_form", title="Member sign-in",
                                 status=status, headers=NO_STORE, email=email, error=error,
                                 next=next_path, notice=notice, minutes=SIGNIN_MINUTES)

    async def signin_page(self, request: Request) -> Response:
        notice = "You are signed out." if request.query_params.get("out") == "1" else ""
        return self._signin_form(request, notice=notice,
                                 next_path=safe_next(request.query_params.get("next"), ""))

    def link_url(self, email: str, next_path: str, *, now: float | None = None) -> str:
        expires = int((now or time.time()) + SIGNIN_MINUTES * 60)
        # The nonce makes every link distinct, so two asked for in one second are each
        # good once on their own.
        token = sign(self.settings.secret_key, SIGNIN_PURPOSE, email, next_path,
                     secrets.token_urlsafe(6), expires=expires)
        return f"{self.settings.base_url}/signin/{token}"

    def send_link(self, address: str, next_path: str) -> bool:
        """Queue a sign-in link if ``address`` is a member's; True if one was queued."""
        s = self.settings
        with reading(self.engine) as conn:
            person = prefs.person_by_email(conn, address)
        if person is None or person.status != "active":
            return False
        subject, text = render_notice("signin_link", {
            "site_name": self.pages.site_name, "name": person.name, "email": person.email,
            "url": self.link_url(person.email, next_path), "minutes": SIGNIN_MINUTES})
        data = build_notice(sender=f"noreply@{s.list_domain}", sender_name=self.pages.site_name,
                            to=person.email, subject=subject, text=text, domain=s.list_domain)
        with writing(self.engine) as conn:
            outbound_id = queue_notice(conn, data=data, recipients=[person.email],
                                       bounce_local="citymail-bounces")
        log.info("queued a sign-in link for member %d (outbound %d)", person.id, outbound_id)
        return True

    def _send_link_safely(self, address: str, next_path: str) -> None:
        try:
            self.send_link(address, next_path)
        except Exception:  # after the answer: log, there is nobody to tell
            log.exception("could not queue a sign-in link")

    async def signin_post(self, request: Request) -> Response:
        form = await self._form(request)
        typed = str(form.get("email", "")).strip()[:MAX_FIELD]
        next_path = safe_next(str(form.get("next", "")), "")
        try:
            address = normalise_email(typed)
        except InvalidInput:
            return self._signin_form(request, email=typed, next_path=next_path, status=400,
                                     error="Please enter an email address such as "
                                           "name@city.gov.")
        wait = self.limiter.hit(signin_address=address, signin_ip=client_ip(request))
        if wait:
            return _retry_page(self.pages, request, wait, "sign-in links requested")
        response = self.pages.render(request, "signin_sent", title="Check your email",
                                     headers=NO_STORE, email=address, minutes=SIGNIN_MINUTES)
        # Looked up after the answer, so that known and unknown addresses take equally long.
        response.background = BackgroundTask(self._send_link_safely, address, next_path)
        return response

    def _read_link(self, token: str) -> tuple[str, str] | None:
        fields = unsign(self.keys, SIGNIN_PURPOSE, token)
        # Three fields (with the nonce); two from links mailed before there was one.
        if fields is None or len(fields) not in (2, 3):
            return None
        return fields[0], safe_next(fields[1], "")

    def _refused(self, request: Request, message: str) -> Response:
        return self._signin_form(request, status=400, error=message)

    async def link_page(self, request: Request) -> Response:
        token = request.path_params["token"]
        found = self._read_link(token)
        if found is None:
            return self._refused(request, EXPIRED_LINK)
        if await run_in_threadpool(link_used, self.engine, token):
            return self._refused(request, USED_LINK)
        return self.pages.render(request, "signin_confirm", title="Sign in", private=True,
                                 email=found[0], token=token)

    async def link_post(self, request: Request) -> Response:
        token = request.path_params["token"]
        found = self._read_link(token)
        if found is None:
            return self._refused(request, EXPIRED_LINK)
        if not await run_in_threadpool(claim_link, self.engine, token):
            log.info("refused a sign-in link used before")
            return self._refused(request, USED_LINK)
        email, next_path = found
        session_state(request.scope).sign_in("member", email)
        log.info("member signed in by link")
        target = next_path or "/manage"
        return RedirectResponse(self._root(request) + target, status_code=303,
                                headers=NO_STORE)

