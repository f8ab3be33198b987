"""Public newsletter sign-up pages (double opt-in; the service is ``mailer.signups``).

``/newsletters/{name}/subscribe``  GET a small form; POST mails a confirmation link and
                                   answers "check your email" whatever the address.
``/s/{token}``                     GET shows a confirm button (link scanners follow GETs);
                                   POST subscribes.

Sign-ups are rate-limited per address and per client IP.  The address is looked up after
the answer is sent, so a known address takes no longer than an unknown one.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailer import signups
from mailer.db import reading, writing
from mailer.errors import InvalidInput, NotFound
from mailer.people import normalise_email
from mailer.settings import Settings
from web.pages import Pages, read_form
from web.ratelimit import Limit, RateLimiter, client_ip
from web.security import same_origin

__all__ = ["SIGNUP_LIMITS", "SignupPages", "queue_signup_safely"]

log = logging.getLogger(__name__)

# Confirmation mails per address and per client IP (in memory, like /manage).
SIGNUP_LIMITS = {"address": Limit(3, 3600.0), "ip": Limit(20, 3600.0)}
MAX_EMAIL = 320


def queue_signup_safely(engine: Engine, settings: Settings, name: str, address: str, *,
                        person_name: str, site_name: str) -> None:
    """Queue the confirmation after the answer was sent: log failures, tell nobody."""
    try:
        with writing(engine) as conn:
            signups.request_signup(conn, settings, name, address, person_name=person_name,
                                   site_name=site_name)
    except Exception:
        log.exception("could not queue a sign-up confirmation for %s", name)


class SignupPages:
    """The sign-up form and the confirmation link; collaborators are passed in."""

    def __init__(self, settings: Settings, engine: Engine, pages: Pages,
                 limiter: RateLimiter) -> None:
        self.settings = settings
        self.engine = engine
        self.pages = pages
        self.limiter = limiter

    def routes(self) -> list[Route]:
        return [
            Route("/newsletters/{name}/subscribe", self.form_page, methods=["GET"]),
            Route("/newsletters/{name}/subscribe", self.form_post, methods=["POST"]),
            Route("/s/{token}", self.confirm_page, methods=["GET"]),
            Route("/s/{token}", self.confirm_post, methods=["POST"]),
        ]

    def _newsletter(self, name: str) -> signups.Newsletter | None:
        with reading(self.engine) as conn:
            try:
                return signups.newsletter(conn, name)
            except NotFound:
                return None

    def _not_found(self, request: Request) -> Response:
        return self.pages.message(request, title="Page not found", status=404,
                                  paragraphs=["There is no newsletter at this address."])

    def _form(self, request: Request, info: signups.Newsletter, *, email: str = "",
              person_name: str = "", error: str = "", status: int = 200) -> Response:
        return self.pages.render(request, "signup_form", status=status,
                                 title=f"Subscribe to {info.display_name}", newsletter=info,
                                 email=email, person_name=person_name, error=error)

    async def form_page(self, request: Request) -> Response:
        info = await run_in_threadpool(self._newsletter, request.path_params["name"])
        return self._not_found(request) if info is None else self._form(request, info)

    @staticmethod
    async def _read_form(request: Request) -> FormData:
        return await read_form(request, max_fields=20)

    async def form_post(self, request: Request) -> Response:
        info = await run_in_threadpool(self._newsletter, request.path_params["name"])
        if info is None:
            return self._not_found(request)
        form = await self._read_form(request)
        typed = str(form.get("email", "")).strip()[:MAX_EMAIL]
        person_name = " ".join(str(form.get("name", "")).split())[:signups.MAX_NAME]
        if not same_origin(request, self.settings.base_url):
            return self._form(request, info, email=typed, person_name=person_name, status=403,
                              error="Please send this form from our own page.")
        try:
            address = normalise_email(typed)
        except InvalidInput:
            return self._form(request, info, email=typed, person_name=person_name, status=400,
                              error="Please enter an email address such as name@example.org.")
        wait = self.limiter.hit(ip=client_ip(request), address=address)
        if wait:
            return self.pages.too_many(
                request, wait=wait, title="Too many requests",
                first="We have sent several confirmation links in a short time, so we are "
                      "not sending another one yet.",
                after=" The links already sent still work.")
        response = self.pages.render(request, "signup_sent", title="Check your email",
                                     email=address, newsletter=info, days=signups.SIGNUP_DAYS)
        response.background = BackgroundTask(
            queue_signup_safely, self.engine, self.settings, info.name, address,
            person_name=person_name, site_name=self.pages.site_name)
        return response

    # -- /s/{token} ---------------------------------------------------------------------------
    def _peek(self, token: str) -> tuple[str, signups.Newsletter] | None:
        with reading(self.engine) as conn:
            return signups.peek(conn, self.settings, token)

    def _confirm(self, token: str) -> signups.Confirmed | None:
        with writing(self.engine) as conn:
            return signups.confirm_signup(conn, self.settings, token)

    async def confirm_page(self, request: Request) -> Response:
        token = request.path_params["token"]
        found = await run_in_threadpool(self._peek, token)
        if found is None:
            return self.pages.invalid_link(request)
        email, info = found
        return self.pages.render(request, "signup_confirm", private=True,
                                 title=f"Confirm: {info.display_name}", token=token,
                                 email=email, newsletter=info)

    async def confirm_post(self, request: Request) -> Response:
        done = await run_in_threadpool(self._confirm, request.path_params["token"])
        if done is None:
            return self.pages.invalid_link(request)
        if done.added:
            log.info("newsletter sign-up confirmed for %s", done.newsletter.name)
        return self.pages.render(request, "signup_done", private=True,
                                 title="You are subscribed", email=done.email,
                                 newsletter=done.newsletter, added=done.added)
