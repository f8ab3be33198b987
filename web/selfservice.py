"""Self-service by signed links: one-click unsubscribe, preferences, manage-by-email.

``/u/{token}``  RFC 8058 one-click unsubscribe.  POST with ``List-Unsubscribe=One-Click``
                (what mail clients send) leaves the list at once; GET only shows a page
                with a button, because link scanners follow every GET.
``/p/{token}``  a person's preferences (token signed for 30 days); the form carries an
                HMAC token bound to the link.
``/manage``     enter an address and we mail it a preferences link; the answer is the
                same whether or not we know the address, and it is rate-limited.

The token in the URL is the capability: nobody without the mail can build one.  Database
work runs in worker threads so that this loop (shared with the SMTP gateway) never blocks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from mailer import preferences as prefs
from mailer.db import reading, writing
from mailer.errors import InvalidInput
from mailer.notices import build_notice, queue_notice, render_notice
from mailer.people import normalise_email
from mailer.preferences import Person, SubscriptionView
from mailer.settings import Settings
from web.pages import Pages, read_form
from web.ratelimit import RateLimiter, client_ip
from web.security import form_token, form_token_ok, same_origin

__all__ = ["NOTICE_BOUNCES", "NOTICE_SENDER", "SelfService"]

log = logging.getLogger(__name__)

NOTICE_SENDER = "noreply"  # local part of the From of the manage-link notice
NOTICE_BOUNCES = "citymail-bounces"  # local part of its envelope sender
MAX_EMAIL = 320

# What a person may choose on the preferences page, and how it reads.
CHOICE_LABELS: dict[str, str] = {
    "regular": "Every message, as it is sent",
    "digest": "A digest: the messages collected into one email",
    "digest-plain": "A plain-text digest (RFC 1153): the messages as one text email",
    "nomail": "Pause: no mail for now, stay a member",
    prefs.LEAVE: "Leave",
    prefs.STAY_OUT: "Not subscribed",
}
NEWSLETTER_LABELS = {"regular": "Every issue"}
KIND_LABELS = {"list": "list", "newsletter": "newsletter"}
STATUS_NOTES = {
    "left": "You left this one. Choose a way to receive it to come back.",
    "removed": "Mail to you stopped because it could not be delivered. Choose a way to "
               "receive it to start again.",
}


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    checked: bool


@dataclass(frozen=True)
class Row:
    sub: SubscriptionView
    kind_label: str
    note: str
    choices: tuple[Choice, ...]


def preference_rows(subs: list[SubscriptionView]) -> list[Row]:
    """The radio groups of the preferences page, one per subscription."""
    rows = []
    for sub in subs:
        labels = {**CHOICE_LABELS, **(NEWSLETTER_LABELS if sub.kind == "newsletter" else {})}
        current = sub.mode if sub.active else prefs.STAY_OUT
        values = ((*prefs.modes_for(sub.kind), prefs.LEAVE) if sub.active
                  else (prefs.STAY_OUT, *prefs.modes_for(sub.kind)))
        choices = tuple(Choice(v, labels[v], v == current) for v in values)
        rows.append(Row(sub, KIND_LABELS.get(sub.kind, sub.kind),
                        STATUS_NOTES.get(sub.status, ""), choices))
    return rows


class SelfService:
    """The self-service pages; collaborators are passed in, nothing is looked up."""

    def __init__(self, settings: Settings, engine: Engine, pages: Pages,
                 limiter: RateLimiter) -> None:
        self.settings = settings
        self.engine = engine
        self.pages = pages
        self.limiter = limiter
        self.keys = [k.encode() for k in settings.secret_keys]

    def routes(self) -> list[Route]:
        return [
            Route("/u/{token}", self.unsubscribe_page, methods=["GET"]),
            Route("/u/{token}", self.unsubscribe_post, methods=["POST"]),
            Route("/p/{token}", self.preferences_page, methods=["GET"]),
            Route("/p/{token}", self.preferences_post, methods=["POST"]),
            Route("/manage", self.manage_page, methods=["GET"]),
            Route("/manage", self.manage_post, methods=["POST"]),
            Route("/lists/{name}/preferences", self.list_preferences, methods=["GET"]),
        ]

    @staticmethod
    async def _form(request: Request) -> FormData:
        return await read_form(request, max_fields=200)

    # -- /u/{token}: one-click unsubscribe ----------------------------------------------

    def _link(self, member_id: int, list_id: int) -> tuple[Person, SubscriptionView] | None:
        with reading(self.engine) as conn:
            person = prefs.find_person(conn, member_id)
            sub = prefs.subscription_of(conn, member_id, list_id)
        return (person, sub) if person and sub else None

    def _leave(self, member_id: int, list_id: int, source: str
               ) -> tuple[Person, SubscriptionView] | None:
        with writing(self.engine) as conn:
            person = prefs.find_person(conn, member_id)
            if person is None or prefs.subscription_of(conn, member_id, list_id) is None:
                return None
            if prefs.unsubscribe(conn, member_id, list_id, source=source):
                log.info("member %d left list %d (%s)", member_id, list_id, source)
            sub = prefs.subscription_of(conn, member_id, list_id)
        assert sub is not None
        return person, sub

    async def unsubscribe_page(self, request: Request) -> Response:
        """GET: a confirmation page with a button; never unsubscribes (scanners GET links)."""
        token = request.path_params["token"]
        ids = prefs.read_unsubscribe_token(self.settings, token)
        if ids is None:
            return self.pages.invalid_link(request)
        found = await run_in_threadpool(self._link, *ids)
        if found is None:
            return self.pages.invalid_link(request, status=404)
        person, sub = found
        return self.pages.render(request, "unsubscribe_confirm", private=True,
                                 title=f"Unsubscribe from {sub.display_name}",
                                 token=token, person=person, subscription=sub)

    async def unsubscribe_post(self, request: Request) -> Response:
        """POST ``List-Unsubscribe=One-Click`` (RFC 8058): leave now, answer 200."""
        token = request.path_params["token"]
        ids = prefs.read_unsubscribe_token(self.settings, token)
        if ids is None:
            return self.pages.invalid_link(request)
        form = await self._form(request)
        if form.get("List-Unsubscribe") != "One-Click":
            return await self.unsubscribe_page(request)
        source = "web" if form.get("via") == "page" else "one-click"
        found = await run_in_threadpool(self._leave, *ids, source)
        if found is None:
            return self.pages.invalid_link(request, status=404)
        person, sub = found
        return self.pages.render(request, "unsubscribe_done", private=True,
                                 title="You are unsubscribed", person=person, subscription=sub)

    # -- /p/{token}: preferences ----------------------------------------------------------

    def _preferences(self, member_id: int) -> tuple[Person, list[SubscriptionView]] | None:
        with reading(self.engine) as conn:
            person = prefs.find_person(conn, member_id)
            if person is None or person.status == "erased":
                return None
            return person, prefs.subscriptions_of(conn, member_id)

    def _apply(self, member_id: int, choices: dict[int, str]) -> list[str] | None:
        with writing(self.engine) as conn:
            person = prefs.find_person(conn, member_id)
            if person is None or person.status == "erased":
                return None
            changed = prefs.apply_choices(conn, member_id, choices)
        if changed:
            log.info("member %d changed preferences: %s", member_id, ", ".join(changed))
        return changed

    async def _preferences_response(self, request: Request, token: str, member_id: int, *,
                                    status: int = 200, error: str = "") -> Response:
        found = await run_in_threadpool(self._preferences, member_id)
        if found is None:
            return self.pages.invalid_link(request, status=404)
        person, subs = found
        return self.pages.render(
            request, "preferences", private=True, status=status, title="Your subscriptions",
            token=token, person=person, rows=preference_rows(subs),
            csrf=form_token(self.settings.secret_key, token),
            saved=request.query_params.get("saved") == "1" and not error, error=error)

    async def preferences_page(self, request: Request) -> Response:
        token = request.path_params["token"]
        member_id = prefs.read_preferences_token(self.settings, token)
        if member_id is None:
            return self.pages.invalid_link(request)
        return await self._preferences_response(request, token, member_id)

    async def preferences_post(self, request: Request) -> Response:
        token = request.path_params["token"]
        member_id = prefs.read_preferences_token(self.settings, token)
        if member_id is None:
            return self.pages.invalid_link(request)
        form = await self._form(request)
        if not (same_origin(request, self.settings.base_url)
                and form_token_ok(self.keys, token, str(form.get("csrf", "")))):
            return await self._preferences_response(
                request, token, member_id, status=403,
                error="This form is out of date and nothing was changed. "
                      "Please make your choices again.")
        choices = {int(key[5:]): str(value) for key, value in form.multi_items()
                   if key.startswith("list-") and key[5:].isdigit()}
        try:
            changed = await run_in_threadpool(self._apply, member_id, choices)
        except InvalidInput as exc:
            return await self._preferences_response(request, token, member_id, status=400,
                                                    error=f"Nothing was changed: {exc}")
        if changed is None:
            return self.pages.invalid_link(request, status=404)
        root = request.scope.get("root_path", "").rstrip("/")
        return RedirectResponse(f"{root}/p/{token}?saved=1", status_code=303,
                                headers={"Cache-Control": "no-store"})

    # -- /manage: a preferences link by email ---------------------------------------------

    def _manage_form(self, request: Request, *, email: str = "", error: str = "",
                     status: int = 200) -> Response:
        return self.pages.render(request, "manage", title="Manage your subscriptions",
                                 status=status, email=email, error=error)

    async def manage_page(self, request: Request) -> Response:
        return self._manage_form(request)

    def send_link(self, address: str) -> bool:
        """Queue a preferences link for ``address`` if we know it; True if one was queued."""
        s = self.settings
        with reading(self.engine) as conn:
            person = prefs.person_by_email(conn, address)
        if person is None or person.status == "erased":
            return False
        subject, text = render_notice("manage_link", {
            "site_name": self.pages.site_name, "name": person.name, "email": person.email,
            "url": prefs.preferences_url(s, person.id), "days": prefs.PREFERENCES_DAYS})
        data = build_notice(sender=f"{NOTICE_SENDER}@{s.list_domain}",
                            sender_name=self.pages.site_name, to=person.email,
                            subject=subject, text=text, domain=s.list_domain)
        with writing(self.engine) as conn:
            outbound_id = queue_notice(conn, data=data, recipients=[person.email],
                                       bounce_local=NOTICE_BOUNCES)
        log.info("queued a preferences link for member %d (outbound %d)", person.id,
                 outbound_id)
        return True

    def _send_link_safely(self, address: str) -> None:
        try:
            self.send_link(address)
        except Exception:  # after the answer: log, there is nobody to tell
            log.exception("could not queue a preferences link")

    async def manage_post(self, request: Request) -> Response:
        form = await self._form(request)
        typed = str(form.get("email", "")).strip()[:MAX_EMAIL]
        if not same_origin(request, self.settings.base_url):
            return self._manage_form(request, email=typed, status=403,
                                     error="Please send this form from our own page.")
        try:
            address = normalise_email(typed)
        except InvalidInput:
            return self._manage_form(request, email=typed, status=400,
                                     error="Please enter an email address such as "
                                           "name@city.gov.")
        wait = self.limiter.hit(ip=client_ip(request), address=address)
        if wait:
            return self.pages.too_many(
                request, wait=wait, title="Too many requests",
                first="We have sent several links in a short time, so we are not sending "
                      "another one yet.", after=" The links already sent still work.")
        response = self.pages.render(request, "manage_sent", title="Check your email",
                                     email=address, days=prefs.PREFERENCES_DAYS)
        # Looked up after the answer, so that known and unknown addresses take equally long.
        response.background = BackgroundTask(self._send_link_safely, address)
        return response

    async def list_preferences(self, request: Request) -> Response:
        """The list footer's link: preferences need a signed link, which /manage mails."""
        root = request.scope.get("root_path", "").rstrip("/")
        return RedirectResponse(f"{root}/manage", status_code=303)
