"""Self-service by signed links: one-click unsubscribe, preferences, manage-by-email.

Each test drives the web app with Starlette's TestClient against a real SQLite database
built by the migrations, the league's lists and ``add_member``, and checks what a person
would see, and what ``citymail members show`` would then print.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from citymail.admin import members_show
from mailer import schema
from mailer.db import make_engine, reading, writing
from mailer.league import load_league, seed_lists
from mailer.models import Delivery, MailingList, Outbound, Subscription
from mailer.people import add_member
from mailer.preferences import preferences_url
from mailer.sending import unsubscribe_url
from mailer.settings import Settings
from mailer.tokens import sign
from web.app import create_app

NEW_KEY, OLD_KEY = "new-key-" + "n" * 24, "old-key-" + "o" * 24
ANN, BOB = "ann@example.org", "bob@example.org"


# -- the site under test ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database with the league's lists, built once and copied per test."""
    folder = tmp_path_factory.mktemp("template")
    settings = Settings(database_url=f"sqlite:///{folder}/citymail.db", var_dir=folder,
                        secret_keys=(NEW_KEY,))
    engine = make_engine(settings)
    try:
        schema.upgrade(engine)
        with writing(engine) as conn:
            seed_lists(conn, load_league())
    finally:
        engine.dispose()
    return folder / "citymail.db"


@dataclass
class Site:
    settings: Settings
    engine: Engine
    client: TestClient
    ann: int
    bob: int

    def list_id(self, name: str) -> int:
        with reading(self.engine) as conn:
            return conn.execute(select(MailingList.id).where(MailingList.name == name)
                                ).scalar_one()

    def show(self, email: str) -> dict:
        return members_show(self.settings, email)

    def modes(self, email: str) -> dict[str, str]:
        return {s["name"]: s["mode"] for s in self.show(email)["subscriptions"]}

    def outbound_count(self) -> int:
        with reading(self.engine) as conn:
            return conn.execute(select(func.count()).select_from(Outbound)).scalar_one()


@pytest.fixture
def site(template_db: Path, tmp_path: Path) -> Iterator[Site]:
    shutil.copy(template_db, tmp_path / "citymail.db")
    settings = Settings(database_url=f"sqlite:///{tmp_path}/citymail.db", var_dir=tmp_path,
                        secret_keys=(NEW_KEY, OLD_KEY), base_url="http://testserver")
    engine = make_engine(settings)
    league = load_league()
    with writing(engine) as conn:
        ann = add_member(conn, league, email=ANN, name="Ann Avila", city="Davis",
                         role="City Clerk").member_id
        bob = add_member(conn, league, email=BOB, name="Bob Baker", city="Davis",
                         role="City Clerk").member_id
    with TestClient(create_app(settings, engine)) as client:
        # The session's form token (web.csrf), as a page's script would send it.
        client.headers["x-csrf-token"] = forms(client.get("/manage").text)[0]["fields"][
            "csrf_token"]
        yield Site(settings, engine, client, ann, bob)
    engine.dispose()


# -- reading pages as a person would ----------------------------------------------------------

def text(html: str) -> str:
    """The visible words of a page, one space between them."""
    html = re.sub(r"(?s)<(script|style|title)\b.*?</\1>", " ", html)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get"),
                               "fields": {}, "radios": {}})
        elif tag == "input" and self.forms:
            form = self.forms[-1]
            if a.get("type") == "radio":
                form["radios"].setdefault(a["name"], []).append(a["value"])
                if "checked" in a:
                    form["fields"][a["name"]] = a["value"]
            elif "name" in a:
                form["fields"][a["name"]] = a.get("value", "")


def forms(html: str) -> list[dict]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def submit(client: TestClient, html: str, **changes: str):
    """Submit the page's only POST form as a browser would, with some fields changed."""
    (form,) = [f for f in forms(html) if f["method"] == "post"]
    return client.post(form["action"], data={**form["fields"], **changes})


# -- one-click unsubscribe --------------------------------------------------------------------

def test_one_click_post_unsubscribes_that_member_from_that_list_only(site: Site) -> None:
    url = unsubscribe_url(site.settings, site.ann, site.list_id("city-clerks"))

    response = site.client.post(url, data={"List-Unsubscribe": "One-Click"})

    assert response.status_code == 200
    page = text(response.text)
    assert "You are unsubscribed" in page
    assert "no more mail from City Clerks department" in page and ANN in page
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    ann = site.show(ANN)
    assert ann["left"] == ["city-clerks"]
    assert {s["name"] for s in ann["subscriptions"]} == {"advocate", "western-city"}
    assert site.show(BOB)["left"] == []
    assert "city-clerks" in site.modes(BOB)


def test_one_click_is_idempotent_and_takes_multipart_too(site: Site) -> None:
    url = unsubscribe_url(site.settings, site.ann, site.list_id("city-clerks"))
    for _ in range(2):
        response = site.client.post(url, files={"List-Unsubscribe": (None, "One-Click")})
        assert response.status_code == 200
        assert "You are unsubscribed" in text(response.text)
    assert site.show(ANN)["left"] == ["city-clerks"]


def test_get_shows_a_button_and_never_unsubscribes(site: Site) -> None:
    url = unsubscribe_url(site.settings, site.ann, site.list_id("city-clerks"))

    for _ in range(3):  # a link scanner, a preview pane, the person
        response = site.client.get(url)
        assert response.status_code == 200
    assert site.client.head(url).status_code == 200
    # A POST without the RFC 8058 body is not a one-click request either.
    assert "Unsubscribe" in text(site.client.post(url, data={}).text)

    page = text(response.text)
    assert "Unsubscribe from City Clerks department" in page
    assert f"no more mail from City Clerks department at {ANN}" in page
    assert response.headers["x-frame-options"] == "DENY"
    assert site.show(ANN)["left"] == []
    assert "city-clerks" in site.modes(ANN)

    done = submit(site.client, response.text)
    assert "You are unsubscribed" in text(done.text)
    assert site.show(ANN)["left"] == ["city-clerks"]
    with reading(site.engine) as conn:
        source = conn.execute(select(Subscription.source).where(
            Subscription.member_id == site.ann,
            Subscription.list_id == site.list_id("city-clerks"))).scalar_one()
    assert source == "web"
    again = text(site.client.get(url).text)
    assert "there is nothing to do" in again


def _forgeries(site: Site) -> dict[str, str]:
    clerks = site.list_id("city-clerks")
    ann_token = unsubscribe_url(site.settings, site.ann, clerks).rsplit("/", 1)[1]
    bob_payload = unsubscribe_url(site.settings, site.bob, clerks).rsplit("/", 1)[1].split(".")[0]
    return {
        "garbage": "not-a-token",
        "cut short": ann_token[:-3],
        "another member's ids under Ann's signature":
            f"{bob_payload}.{ann_token.split('.')[1]}",
        "unknown key": sign(b"k" * 32, "unsubscribe", site.ann, clerks),
        "a preferences token": sign(site.settings.secret_key, "preferences", site.ann,
                                    expires=int(time.time()) + 3600),
    }


@pytest.mark.parametrize("kind", ["garbage", "cut short",
                                  "another member's ids under Ann's signature",
                                  "unknown key", "a preferences token"])
def test_forged_unsubscribe_links_are_refused(site: Site, kind: str) -> None:
    token = _forgeries(site)[kind]
    for response in (site.client.get(f"/u/{token}"),
                     site.client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})):
        assert response.status_code == 400
        assert "This link is not valid" in text(response.text)
        assert any(f["action"] == "/manage" for f in forms(response.text))  # manage by email
    assert site.show(ANN)["left"] == [] and site.show(BOB)["left"] == []


def test_links_signed_with_the_previous_key_still_work(site: Site) -> None:
    token = sign(OLD_KEY.encode(), "unsubscribe", site.ann, site.list_id("advocate"))
    response = site.client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert site.show(ANN)["left"] == ["advocate"]


def test_a_link_for_a_subscription_that_never_existed_is_not_found(site: Site) -> None:
    url = unsubscribe_url(site.settings, site.ann, site.list_id("fire-chiefs"))
    response = site.client.post(url, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 404
    assert "This link is not valid" in text(response.text)


def test_re_adding_the_member_does_not_re_subscribe_a_left_list(site: Site) -> None:
    url = unsubscribe_url(site.settings, site.ann, site.list_id("city-clerks"))
    site.client.post(url, data={"List-Unsubscribe": "One-Click"})

    with writing(site.engine) as conn:
        again = add_member(conn, load_league(), email=ANN, name="Ann Avila", city="Davis",
                           role="City Clerk", source="import")

    assert again.kept_out == ("city-clerks",)
    assert site.show(ANN)["left"] == ["city-clerks"]
    assert "city-clerks" not in site.modes(ANN)


# -- preferences ------------------------------------------------------------------------------

def test_preferences_show_every_subscription_and_changes_persist(site: Site) -> None:
    url = preferences_url(site.settings, site.ann)
    page = site.client.get(url)
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    words = text(page.text)
    for name in ("City Clerks department", "Cal Cities Advocate", "Western City", ANN):
        assert name in words
    (form,) = forms(page.text)
    clerks, advocate = site.list_id("city-clerks"), site.list_id("advocate")
    assert form["radios"][f"list-{clerks}"] == ["regular", "digest", "digest-plain", "nomail",
                                                  "leave"]
    assert form["radios"][f"list-{advocate}"] == ["regular", "nomail", "leave"]
    assert form["fields"][f"list-{clerks}"] == "regular"

    saved = submit(site.client, page.text, **{f"list-{clerks}": "digest",
                                              f"list-{advocate}": "leave"})

    assert saved.status_code == 200 and "Your choices are saved." in text(saved.text)
    assert site.modes(ANN) == {"city-clerks": "digest", "western-city": "regular"}
    assert site.show(ANN)["left"] == ["advocate"]
    assert site.modes(BOB)["city-clerks"] == "regular"
    (form,) = forms(site.client.get(url).text)
    assert form["fields"][f"list-{clerks}"] == "digest"
    assert form["fields"][f"list-{advocate}"] == "off"  # shown as "Not subscribed"


def test_preferences_let_a_person_come_back_to_a_list_they_left(site: Site) -> None:
    clerks = site.list_id("city-clerks")
    site.client.post(unsubscribe_url(site.settings, site.ann, clerks),
                     data={"List-Unsubscribe": "One-Click"})
    page = site.client.get(preferences_url(site.settings, site.ann))
    assert "You left this one." in text(page.text)

    submit(site.client, page.text, **{f"list-{clerks}": "nomail"})

    assert site.modes(ANN)["city-clerks"] == "nomail" and site.show(ANN)["left"] == []


def test_expired_or_foreign_preferences_links_are_refused(site: Site) -> None:
    expired = preferences_url(site.settings, site.ann, now=time.time() - 31 * 86400)
    foreign = "/p/" + sign(b"k" * 32, "preferences", site.ann,
                           expires=int(time.time()) + 3600)
    wrong_purpose = "/p/" + unsubscribe_url(site.settings, site.ann, 1).rsplit("/", 1)[1]
    for url in (expired, foreign, wrong_purpose):
        for response in (site.client.get(url), site.client.post(url, data={})):
            assert response.status_code == 400
            assert "This link is not valid" in text(response.text)


def test_a_preferences_post_without_its_form_token_changes_nothing(site: Site) -> None:
    clerks = site.list_id("city-clerks")
    ann_url = preferences_url(site.settings, site.ann)
    bob_page = site.client.get(preferences_url(site.settings, site.bob)).text
    bob_csrf = forms(bob_page)[0]["fields"]["csrf"]
    attempts = [
        site.client.post(ann_url, data={f"list-{clerks}": "leave"}),
        site.client.post(ann_url, data={f"list-{clerks}": "leave", "csrf": bob_csrf}),
    ]
    ann_csrf = forms(site.client.get(ann_url).text)[0]["fields"]["csrf"]
    attempts.append(site.client.post(ann_url, data={f"list-{clerks}": "leave", "csrf": ann_csrf},
                                     headers={"Origin": "https://evil.example"}))
    for response in attempts:
        assert response.status_code == 403
        assert "nothing was changed" in text(response.text)
    assert "city-clerks" in site.modes(ANN)


def test_a_mode_the_list_does_not_offer_changes_nothing(site: Site) -> None:
    page = site.client.get(preferences_url(site.settings, site.ann)).text
    response = submit(site.client, page, **{f"list-{site.list_id('city-clerks')}": "nomail",
                                            f"list-{site.list_id('advocate')}": "digest"})
    assert response.status_code == 400
    assert "Nothing was changed" in text(response.text)
    assert site.modes(ANN)["city-clerks"] == "regular"


# -- manage by email --------------------------------------------------------------------------

def _notices(site: Site) -> list[tuple[list[str], bytes]]:
    with reading(site.engine) as conn:
        rows = conn.execute(select(Outbound.id, Outbound.body).order_by(Outbound.id)).all()
        return [(list(conn.scalars(select(Delivery.recipient)
                                   .where(Delivery.outbound_id == r.id))), bytes(r.body))
                for r in rows]


def test_manage_mails_a_link_to_a_known_address_and_says_the_same_either_way(
        site: Site) -> None:
    form = site.client.get("/manage")
    assert "Email me a link" in text(form.text)

    known = submit(site.client, form.text, email="Ann@Example.ORG")
    unknown = submit(site.client, form.text, email="nobody@example.org")

    assert known.status_code == unknown.status_code == 200
    assert "Check your email" in text(known.text)
    assert known.text.replace(ANN, "X") == unknown.text.replace("nobody@example.org", "X")
    ((recipients, body),) = _notices(site)
    assert recipients == [ANN]
    message = message_from_bytes(body, policy=policy.default)
    assert message["To"] == ANN and "manage" in message["Subject"]
    link = re.search(r"http://testserver/p/\S+", message.get_content()).group(0)
    page = site.client.get(link)
    assert page.status_code == 200 and "Your subscriptions" in text(page.text)
    assert ANN in text(page.text)


def test_manage_refuses_what_is_not_an_address(site: Site) -> None:
    response = site.client.post("/manage", data={"email": "not an address"})
    assert response.status_code == 400
    assert "Please enter an email address" in text(response.text)
    assert 'aria-invalid="true"' in response.text
    assert site.outbound_count() == 0


def test_manage_is_rate_limited_per_address_and_per_client(site: Site) -> None:
    for _ in range(3):
        assert site.client.post("/manage", data={"email": ANN}).status_code == 200
    refused = site.client.post("/manage", data={"email": ANN})
    assert refused.status_code == 429
    assert "Too many requests" in text(refused.text)
    assert int(refused.headers["retry-after"]) > 0
    assert site.outbound_count() == 3

    for i in range(17):  # 20 requests from this client in the hour
        assert site.client.post("/manage", data={"email": f"p{i}@example.org"}).status_code == 200
    assert site.client.post("/manage", data={"email": "p99@example.org"}).status_code == 429
    assert site.outbound_count() == 3


def test_the_list_footer_link_leads_to_manage_by_email(site: Site) -> None:
    response = site.client.get("/lists/city-clerks/preferences", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/manage"
    assert "Manage your subscriptions" in text(site.client.get(response.headers["location"]).text)
