"""The issue editor over HTTP, signed in as a real editor: compose, preview, test send,
schedule, pause, resume and cancel; hostile feed content never reaches a page as script."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import test_newsletter_support as support
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from mailer.db import reading, writing
from mailer.models import Delivery, Outbound
from mailer.settings import Settings
from newsletters import issues
from newsletters.dispatch import tick
from newsletters.feeds import parse_feed
from newsletters.feedstore import add_feed, store_items
from web.app import create_app
from web.users import create_user

settings, engine = support.settings, support.engine  # fixtures
PASSWORD = "correct horse battery staple"
HOSTILE = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Hostile</title>
<link>https://evil.example/</link>
<item><guid>h1</guid>
<title>&lt;img src=x onerror=alert(1)&gt;Budget &lt;script&gt;alert(2)&lt;/script&gt;</title>
<link>javascript:alert(3)</link>
<description>&lt;p onclick="alert(4)"&gt;Read&lt;/p&gt;&lt;script&gt;alert(5)&lt;/script&gt;
&lt;a href="javascript:alert(6)"&gt;here&lt;/a&gt;&lt;iframe src="https://evil.example"&gt;&lt;/iframe&gt;
&lt;img src="https://evil.example/x.png" onerror="alert(7)"&gt;</description></item>
<item><guid>h2</guid><title>Housing bill</title><link>https://news.example/housing</link>
<description>Good news.</description></item>
</channel></rss>"""


def token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no form token"
    return found.group(1)


def signed_in(settings: Settings, engine: Engine, email: str, **roles: object) -> TestClient:
    with writing(engine) as conn:
        create_user(conn, email, PASSWORD, **roles)  # type: ignore[arg-type]
    http = TestClient(create_app(settings, engine), base_url="https://testserver")
    login = http.get("/login")
    answer = http.post("/login", data={"email": email, "password": PASSWORD,
                                       "csrf_token": token(login.text)},
                       follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return http


@pytest.fixture
def http(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with signed_in(settings, engine, "editor@cacities.org", is_editor=True) as client:
        yield client


def post(http: TestClient, page: str, url: str, **data: object) -> object:
    return http.post(url, data={**data, "csrf_token": token(http.get(page).text)},
                     follow_redirects=False)


def new_issue(http: TestClient, subject: str = "Budget week") -> str:
    answer = post(http, "/admin/newsletters/", "/admin/newsletters/advocate/issues",
                  subject=subject)
    assert answer.status_code == 303  # type: ignore[attr-defined]
    return answer.headers["location"].split("?")[0]  # type: ignore[attr-defined]


def add_items(engine: Engine, data: bytes, url: str = "https://news.example/feed.xml") -> None:
    parsed = parse_feed(data, url=url, content_type="application/rss+xml")
    with writing(engine) as conn:
        feed_id = add_feed(conn, "advocate", url)
        list_id = support.newsletter_id(engine)
        store_items(conn, feed_id=feed_id, list_id=list_id, parsed=parsed,
                    now=issues.utcnow())


def test_editors_only(settings: Settings, engine: Engine) -> None:
    with TestClient(create_app(settings, engine)) as anonymous:
        answer = anonymous.get("/admin/newsletters/", follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login?next=/admin/newsletters/"
    with signed_in(settings, engine, "mod@cacities.org", moderates=["city-clerks"]) as mod:
        assert mod.get("/admin/newsletters/").status_code == 403
        assert mod.post("/admin/newsletters/advocate/issues",
                        data={"subject": "x"}).status_code == 403


def test_an_editor_composes_orders_items_and_previews_as_a_recipient_would(
        http: TestClient, engine: Engine) -> None:
    add_items(engine, HOSTILE)
    page = new_issue(http)
    editor = http.get(page + "?done=created")
    assert "Issue created" in editor.text and "Budget week" in editor.text
    ids = [int(i) for i in re.findall(r'name="item" value="(\d+)"', editor.text)]
    assert len(ids) == 2
    hostile, housing = ids[1], ids[0]  # newest first; both kept by default
    answer = post(http, page, page, subject="Budget week", preheader="The numbers",
                  block=["## Budget\n\nThe **state budget** is out.", ""],
                  text_version="", item=ids, keep=[housing],
                  **{f"pos-{housing}": "1", f"pos-{hostile}": "2"})
    assert answer.status_code == 303  # type: ignore[attr-defined]
    assert "Saved." in http.get(answer.headers["location"]).text  # type: ignore[attr-defined]
    preview = http.get(page + "/preview?as=html")
    assert "<strong>state budget</strong>" in preview.text and "Housing bill" in preview.text
    assert "Hello Pat Example," in preview.text  # personalised like a real copy
    assert "sandbox" in preview.headers["content-security-policy"]
    assert "script-src" not in preview.headers["content-security-policy"]
    assert "Read" not in preview.text  # the dropped item is gone
    text = http.get(page + "/preview?as=text")
    assert text.headers["content-type"].startswith("text/plain")
    assert "state budget" in text.text and "Housing bill" in text.text
    # The live preview shows what the form holds now, before it is saved.
    live = post(http, page, page + "/preview?as=html", subject="Budget week",
                block="Unsaved *words*", item=ids, keep=ids)
    assert "<em>words</em>" in live.text and "Read" in live.text  # type: ignore[attr-defined]
    with reading(engine) as conn:
        issue = issues.get_issue(conn, int(page.rsplit("/", 1)[1]))
    assert issue.blocks == ["## Budget\n\nThe **state budget** is out."]
    assert issue.dropped_items == [hostile] and issue.preheader == "The numbers"


def test_hostile_feed_content_never_becomes_script(http: TestClient, engine: Engine,
                                                   corpus: Path) -> None:
    add_items(engine, HOSTILE)
    for n, path in enumerate(sorted((corpus / "feeds").glob("feedparser__wellformed_sanitize_*"))):
        parsed = parse_feed(path.read_bytes(), url=f"https://feeds.example/{n}")
        with writing(engine) as conn:
            feed_id = add_feed(conn, "advocate", f"https://feeds.example/{n}")
            store_items(conn, feed_id=feed_id, list_id=support.newsletter_id(engine),
                        parsed=parsed, now=issues.utcnow())
    page = new_issue(http, "Hostile")
    ids = re.findall(r'name="item" value="(\d+)"', http.get(page).text)
    post(http, page, page, subject="Hostile", block="<script>alert(8)</script>Hi",
         item=ids, keep=ids)
    bodies = {"editor": http.get(page).text,
              "html": http.get(page + "/preview?as=html").text,
              "live": post(http, page, page + "/preview?as=html", subject="Hostile",  # type: ignore[attr-defined]
                           block="<img src=x onerror=alert(9)>", item=ids, keep=ids).text}
    for where, body in bodies.items():
        found = Scripts.of(body)
        assert found.scripts == (["/static/editor.js"] if where == "editor" else []), where
        assert found.handlers == [] and found.urls == [], where
        assert found.frames == (2 if where == "editor" else 0), where  # the two previews
    assert "budget &lt;script&gt;" in bodies["editor"].lower()  # the title, as text


class Scripts(HTMLParser):
    """What in a page could run: script elements, on* handlers, javascript: URLs, frames."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str | None] = []
        self.handlers: list[str] = []
        self.urls: list[str] = []
        self.frames = 0

    @classmethod
    def of(cls, html: str) -> Scripts:
        parser = cls()
        parser.feed(html)
        parser.close()
        return parser

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append(dict(attrs).get("src"))
        self.frames += tag in ("iframe", "frame", "object", "embed")
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append(f"{tag} {name}")
            if (value or "").strip().lower().startswith(("javascript:", "vbscript:",
                                                         "data:text/html")):
                self.urls.append(f"{tag} {name}={value}")


def test_test_send_schedule_pause_resume_and_cancel(http: TestClient, engine: Engine,
                                                   settings: Settings) -> None:
    page = new_issue(http)
    number = int(page.rsplit("/", 1)[1])
    answer = post(http, page, page + "/test", to="me@example.org, boss@example.org")
    assert answer.headers["location"].endswith("?done=test")  # type: ignore[attr-defined]
    with reading(engine) as conn:
        queued = conn.scalars(select(Delivery.recipient).join(Outbound)
                              .where(Outbound.kind == "issue")).all()
    assert sorted(queued) == ["boss@example.org", "me@example.org"]
    bad = post(http, page, page + "/test", to="not an address")
    assert bad.status_code == 400 and "is not a valid email address" in bad.text  # type: ignore[attr-defined]

    post(http, page, page + "/schedule", at="2099-12-01T09:00")
    shown = http.get(page).text
    assert "2099-12-01 09:00 PST" in shown and "Reschedule" in shown
    post(http, page, page + "/schedule", at="2099-07-01T09:00")  # summer: PDT
    assert "2099-07-01 09:00 PDT" in http.get(page).text
    past = post(http, page, page + "/schedule", at="2001-01-01T09:00")
    assert past.status_code == 400 and "is in the past" in past.text  # type: ignore[attr-defined]
    post(http, page, page + "/unschedule")
    assert "Unscheduled" in http.get(page + "?done=unscheduled").text
    post(http, page, page + "/schedule", now="1")
    assert tick(engine, settings) == [number]
    paused = post(http, page, page + "/pause")
    assert paused.headers["location"].endswith("?done=paused")  # type: ignore[attr-defined]
    status = http.get(page + "/status.json").json()
    assert (status["state"], status["paused"], status["total"]) == ("paused", 3, 3)
    assert "resume" in status["allowed"] and "pause" not in status["allowed"]
    assert 'id="action-resume"' in http.get(page).text
    post(http, page, page + "/resume")
    assert http.get(page + "/status.json").json()["pending"] == 3
    post(http, page, page + "/cancel")
    status = http.get(page + "/status.json").json()
    assert (status["state"], status["cancelled"]) == ("cancelled", 3)
    again = post(http, page, page + "/pause")
    assert again.status_code == 400 and "is cancelled" in again.text  # type: ignore[attr-defined]
    index = http.get("/admin/newsletters").text  # the staff menu links here
    assert "Budget week" in index and "cancelled" in index
