"""Public newsletter sign-up with double opt-in: the form (and the API) queue a confirmation
mail, the mailed link shows a button, and only its POST subscribes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from html import unescape
from pathlib import Path

import pytest
from integrations_support import Installation, installation, shared_template
from sqlalchemy import select
from starlette.testclient import TestClient

from citymail.admin import members_show
from mailer import preferences
from mailer.db import reading, writing
from mailer.league import load_league
from mailer.models import Delivery, MailingList, Member, Outbound
from mailer.privacy import forget, member_summary
from mailer.signups import signup_token
from mailer.welcome import join
from web.app import create_app

EMAIL = "reader@example.org"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_template(tmp_path_factory)


@dataclass
class Site:
    inst: Installation
    client: TestClient

    def mails_to(self, email: str) -> list[str]:
        """The text of every notice queued for ``email``."""
        with reading(self.inst.engine) as conn:
            bodies = conn.scalars(select(Outbound.body).join(
                Delivery, Delivery.outbound_id == Outbound.id)
                .where(Delivery.recipient == email).order_by(Outbound.id)).all()
        return [message_from_bytes(bytes(b), policy=policy.default).get_body(("plain",))
                .get_content() for b in bodies]

    def link(self, email: str) -> str:
        [url] = re.findall(r"http://\S+/s/\S+", self.mails_to(email)[-1])
        return url.removeprefix(self.inst.settings.base_url)

    def show(self, email: str) -> dict:
        return members_show(self.inst.settings, email)

    def _csrf(self, url: str) -> dict[str, str]:
        """The form token of the page at ``url``, as a browser would send it back."""
        found = re.search(r'name="csrf_token" value="([^"]+)"', self.client.get(url).text)
        return {"csrf_token": found.group(1)} if found else {}

    def subscribe(self, newsletter: str, headers: dict[str, str] | None = None,
                  **form: str):
        url = f"/newsletters/{newsletter}/subscribe"
        return self.client.post(url, data={**form, **self._csrf(url)}, headers=headers)

    def confirm(self, link: str):
        """Open the mailed link and press its button."""
        return self.client.post(link, data=self._csrf(link))


@pytest.fixture
def site(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    with installation(template, tmp_path, monkeypatch) as inst, \
            TestClient(create_app(inst.settings, inst.engine)) as client:
        yield Site(inst, client)


def text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_sign_up_confirms_by_mailed_link_and_post(site: Site) -> None:
    page = site.client.get("/newsletters/advocate/subscribe")
    assert page.status_code == 200 and "Subscribe to Cal Cities Advocate" in text(page.text)

    sent = site.subscribe("advocate", email=" Reader@Example.org ", name="Rae Reader")
    assert sent.status_code == 200
    assert "We have sent a message to reader@example.org" in text(sent.text)
    [mail] = site.mails_to(EMAIL)
    assert "Hello Rae Reader," in mail and "Cal Cities Advocate" in mail
    assert "works for 7 days" in mail
    with pytest.raises(Exception, match="no member"):
        site.show(EMAIL)  # nothing is stored until the link is used

    link = site.link(EMAIL)
    confirm = site.client.get(link)  # a link scanner's GET changes nothing
    assert confirm.status_code == 200 and confirm.headers["Cache-Control"] == "no-store"
    assert "Press the button to receive Cal Cities Advocate at reader@example.org" in \
        text(confirm.text)
    with pytest.raises(Exception, match="no member"):
        site.show(EMAIL)

    done = site.confirm(link)
    assert done.status_code == 200
    assert "reader@example.org will receive Cal Cities Advocate" in text(done.text)
    shown = site.show(EMAIL)
    assert shown["subscriptions"] == [{"kind": "newsletter", "name": "advocate",
                                       "mode": "regular"}]
    with reading(site.inst.engine) as conn:
        member = conn.execute(select(Member).where(Member.email == EMAIL)).one()
    assert member.is_league_member is False and member.city_id is None
    again = site.confirm(link)
    assert "already receives Cal Cities Advocate" in text(again.text)


def test_the_answer_is_the_same_for_new_and_subscribed_addresses(site: Site) -> None:
    with writing(site.inst.engine) as conn:
        join(conn, site.inst.settings, load_league(), email="clerk@fresno.gov", name="C",
             city="Fresno", welcome=False)
    known = site.subscribe("western-city", email="clerk@fresno.gov")
    new = site.subscribe("western-city", email="new@example.org")
    assert known.status_code == new.status_code == 200
    assert text(known.text).replace("clerk@fresno.gov", "X") == \
        text(new.text).replace("new@example.org", "X")


def test_someone_who_left_comes_back_only_by_confirming(site: Site) -> None:
    with writing(site.inst.engine) as conn:
        join(conn, site.inst.settings, load_league(), email="left@fresno.gov", name="L",
             city="Fresno", welcome=False)
        person = preferences.person_by_email(conn, "left@fresno.gov")
        assert person is not None
        advocate = conn.scalar(select(MailingList.id).where(MailingList.name == "advocate"))
        preferences.unsubscribe(conn, person.id, advocate, source="one-click")
    site.subscribe("advocate", email="left@fresno.gov")
    assert "advocate" in site.show("left@fresno.gov")["left"]  # not before the link
    site.confirm(site.link("left@fresno.gov"))
    shown = site.show("left@fresno.gov")
    assert "advocate" not in shown["left"]
    assert "advocate" in {s["name"] for s in shown["subscriptions"]}


def test_bad_links_forms_and_newsletters_are_explained(site: Site) -> None:
    r = site.client.get("/newsletters/city-clerks/subscribe")  # a list, not a newsletter
    assert r.status_code == 404 and "no newsletter at this address" in text(r.text)
    r = site.subscribe("advocate", email="not-an-address")
    assert r.status_code == 400 and "Please enter an email address" in text(r.text)
    r = site.subscribe("advocate", email="a@b.org",
                         headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    form = site._csrf("/newsletters/advocate/subscribe")  # a form token of this session
    for forged in ("nonsense", signup_token(site.inst.settings, 1, EMAIL) + "x"):
        assert site.client.get(f"/s/{forged}").status_code == 400
        assert site.client.post(f"/s/{forged}", data=form).status_code == 400
    expired = signup_token(site.inst.settings, 1, EMAIL, now=0)
    assert "This link is not valid" in text(site.client.get(f"/s/{expired}").text)
    assert "This link is not valid" in text(site.client.post(f"/s/{expired}", data=form).text)


def test_a_forgotten_address_gets_no_mail_and_cannot_confirm(site: Site) -> None:
    site.subscribe("advocate", email=EMAIL)
    link = site.link(EMAIL)
    forget(site.inst.engine, site.inst.settings, EMAIL)
    r = site.subscribe("advocate", email=EMAIL)
    assert "We have sent a message to reader@example.org" in text(r.text)  # same answer
    assert site.confirm(link).status_code == 400
    with reading(site.inst.engine) as conn:
        assert member_summary(conn, site.inst.settings, EMAIL)["suppressed"] is True


def test_sign_ups_are_rate_limited_per_address(site: Site) -> None:
    codes = [site.subscribe("advocate", email=EMAIL).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert len(site.mails_to(EMAIL)) == 3


def test_the_api_starts_the_same_double_opt_in(site: Site) -> None:
    out = site.inst.cli("api", "token", "create", "web", "--scope", "subscribers:write")[1]
    auth = {"Authorization": f"Bearer {out.splitlines()[0]}"}
    r = site.client.post("/api/v1/newsletters/western-city/subscribers", headers=auth,
                         json={"email": EMAIL, "name": "Rae"})
    assert r.status_code == 202 and r.json()["status"] == "confirmation_sent"
    with pytest.raises(Exception, match="no member"):
        site.show(EMAIL)
    site.confirm(site.link(EMAIL))
    assert [s["name"] for s in site.show(EMAIL)["subscriptions"]] == ["western-city"]
    r = site.client.post("/api/v1/newsletters/nope/subscribers", headers=auth,
                         json={"email": EMAIL})
    assert r.status_code == 404
