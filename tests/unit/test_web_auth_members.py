"""Members sign in by an emailed link (no password), for pages such as list archives."""

from __future__ import annotations

import re
import threading
import time
from email import message_from_bytes, policy

import pytest
import web_staff_site
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from web_staff_site import ANN, Site, page_text

from mailer.db import reading
from mailer.models import Outbound
from web.auth import can_read_list, current_principal
from web.login import Login, claim_link

# The shared fixtures (tests/unit/web_staff_site.py).
fast_hashing, staff_template, site = (web_staff_site.fast_hashing,
                                       web_staff_site.staff_template, web_staff_site.site)


def mailed_links(site: Site) -> list[str]:
    with reading(site.engine) as conn:
        bodies = conn.execute(select(Outbound.body).order_by(Outbound.id)).scalars().all()
    links = []
    for body in bodies:
        text = message_from_bytes(bytes(body), policy=policy.default).get_body(
            ("plain",)).get_content()
        links += re.findall(r"http://testserver(/signin/\S+)", text)
    return links


def test_member_signs_in_with_an_emailed_link_and_may_read_their_lists(site: Site):
    sent = site.submit("/signin?next=/archives/city-clerks/", "/signin", email="ANN@example.org")
    assert sent.status_code == 200 and "Check your email" in page_text(sent.text)
    (link,) = mailed_links(site)

    confirm = site.client.get(link)  # a mail scanner's GET signs nobody in
    assert confirm.status_code == 200 and "Sign in as ann@example.org" in page_text(confirm.text)
    assert site.client.get("/whoami").text == "nobody"

    signed_in = site.client.post(link, data=site.form(confirm.text, "/signin/")["fields"],
                                 follow_redirects=False)
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/archives/city-clerks/"
    assert site.client.get("/whoami").text == "member ann@example.org city-clerks=True " \
                                              "fire-chiefs=False"
    # A member is no staff user.
    assert site.client.get("/admin/", follow_redirects=False).status_code == 303


def test_unknown_address_gets_the_same_answer_and_no_mail(site: Site):
    known = site.submit("/signin", email=ANN)
    unknown = site.submit("/signin", email="stranger@example.org")
    assert page_text(known.text).replace(ANN, "X") == page_text(unknown.text).replace(
        "stranger@example.org", "X")
    assert len(mailed_links(site)) == 1


def test_expired_or_altered_links_sign_nobody_in(site: Site):
    login = Login(site.settings, site.engine, None, None)  # type: ignore[arg-type]
    old = login.link_url(ANN, "", now=time.time() - 31 * 60).removeprefix("http://testserver")
    good = login.link_url(ANN, "").removeprefix("http://testserver")
    for link in (old, good[:-3] + "abc"):
        page = site.client.get(link)
        assert page.status_code == 400 and "expired" in page_text(page.text)
    assert site.client.get(good).status_code == 200


def sign_in_by_link(site: Site, link: str):
    """Open the link and press its button, as a member would."""
    confirm = site.client.get(link)
    assert confirm.status_code == 200, page_text(confirm.text)
    return site.client.post(link, data=site.form(confirm.text, "/signin/")["fields"],
                            follow_redirects=False)


def sign_out(site: Site) -> None:
    page = site.client.get("/signin")
    site.client.post("/logout", data=site.form(page.text, "/logout")["fields"])


def test_a_sign_in_link_works_once_and_a_fresh_one_still_works(site: Site):
    site.submit("/signin", email=ANN)
    (link,) = mailed_links(site)
    assert sign_in_by_link(site, link).status_code == 303
    assert site.client.get("/whoami").text.startswith("member ann@example.org")
    sign_out(site)
    assert site.client.get("/whoami").text == "nobody"

    # Whoever finds the used link later (a forwarded mail, the browser's history) is
    # told to ask for a new one, on opening it and on pressing the button alike.
    again = site.client.get(link)
    assert again.status_code == 400
    assert "has been used already and is not valid any more" in page_text(again.text)
    assert "Ask for a new one below" in page_text(again.text)
    csrf = site.form(again.text, "/signin")["fields"]["csrf_token"]
    replayed = site.client.post(link, data={"csrf_token": csrf}, follow_redirects=False)
    assert replayed.status_code == 400 and "used already" in page_text(replayed.text)
    assert site.client.get("/whoami").text == "nobody"

    site.submit("/signin", email=ANN)  # a new link, asked for in the same second
    fresh = mailed_links(site)[-1]
    assert fresh != link
    assert sign_in_by_link(site, fresh).status_code == 303
    assert site.client.get("/whoami").text.startswith("member ann@example.org")


def test_two_presses_of_one_link_at_once_sign_in_only_one(site: Site):
    login = Login(site.settings, site.engine, None, None)  # type: ignore[arg-type]
    token = login.link_url(ANN, "").removeprefix("http://testserver/signin/")
    start, won = threading.Barrier(4), []

    def press() -> None:
        start.wait()
        won.append(claim_link(site.engine, token))

    threads = [threading.Thread(target=press) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == [False, False, False, True]


def test_bad_addresses_get_a_clear_error(site: Site):
    answer = site.submit("/signin", email="not an address")
    assert answer.status_code == 400 and "such as name@city.gov" in page_text(answer.text)


# A tiny page that reports the principal, added to the app under test.
async def whoami(request: Request) -> PlainTextResponse:
    principal = await current_principal(request)
    if principal is None:
        return PlainTextResponse("nobody")
    engine = request.app.state.test_engine
    reads = [f"{name}={await run_in_threadpool(can_read_list, principal, name, engine)}"
             for name in ("city-clerks", "fire-chiefs")]
    return PlainTextResponse(f"{principal.kind} {principal.email} {' '.join(reads)}")


def _add_whoami(site: Site) -> None:
    app = site.client.app
    app.state.test_engine = site.engine
    app.router.routes.insert(0, Route("/whoami", whoami))


@pytest.fixture(autouse=True)
def _whoami(site: Site) -> None:
    _add_whoami(site)
