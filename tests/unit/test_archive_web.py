"""A list's web archive over real HTTP: months, threads, messages, search, attachments,
Archived-At, and who may read a private list's archive."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import select, update
from test_archive_support import (
    CHIEF,
    CLERK,
    ArchiveWorld,
    build_template,
    make_world,
    sign_in,
)

from citymail import admin
from citymail.moderation_cli import decide
from mailer.db import reading, writing
from mailer.models import Held, MailingList, Outbound, Post
from mailer.privacy import forget

pytestmark = pytest.mark.filterwarnings("ignore:The Result.tuples:DeprecationWarning")

BASE = "/lists/city-clerks/archive/"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("archive-template"))


@pytest.fixture
def world(tmp_path: Path, template: Path) -> Iterator[ArchiveWorld]:
    yield from make_world(tmp_path, template)
MIXED = ('Content-Type: multipart/mixed; boundary="b1"', (
    "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the attached page.\r\n"
    "--b1\r\nContent-Type: text/html; name=agenda.html\r\n"
    "Content-Disposition: attachment; filename=agenda.html\r\n\r\n"
    "<script>alert(1)</script><h1>Agenda</h1>\r\n"
    "--b1\r\nContent-Type: image/svg+xml; name=logo.svg\r\n"
    "Content-Disposition: inline; filename=logo.svg\r\n\r\n"
    "<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>\r\n"
    "--b1--"))


def _thread(world: ArchiveWorld) -> dict[str, int]:
    root = world.post("Budget calendar", "The consent calendar is due Friday <b>please</b>.",
                      message_id="<root@example.org>")
    reply = world.post("Re: [City Clerks] Budget calendar", "Thanks, noted.",
                       reply_to="<root@example.org>", date="Wed, 05 Mar 2025 09:00:00 -0800")
    # No References: joins the thread by its subject.
    late = world.post("RE: Budget calendar", "Same here.", date="Thu, 06 Mar 2025 09:00:00 -0800")
    other = world.post("Records retention", "Who keeps emails for two years?",
                       date="Mon, 10 Mar 2025 08:00:00 -0700")
    return {"root": root, "reply": reply, "late": late, "other": other}


def test_a_member_browses_months_threads_and_messages(world: ArchiveWorld) -> None:
    ids = _thread(world)
    with world.client() as http:
        sign_in(http, world.settings, CLERK)
        index = http.get(BASE)
        assert index.status_code == 200
        assert "2025-03" in index.text and "2025-03.mbox" in index.text
        by_date = http.get(BASE + "2025-03/").text
        subjects = re.findall(r'href="[^"]*/msg/\d+">([^<]+)<', by_date)
        assert subjects == ["Budget calendar", "Re: [City Clerks] Budget calendar",
                            "RE: Budget calendar", "Records retention"]
        threads = http.get(BASE + "2025-03/thread").text
        nested = threads.split(f'msg/{ids["root"]}"')[1].split(f'msg/{ids["other"]}"')[0]
        assert f'msg/{ids["reply"]}"' in nested and f'msg/{ids["late"]}"' in nested
        assert nested.count('<li class="replies">') >= 1  # replies sit under the first post
        page = http.get(f"{BASE}msg/{ids['root']}")
        assert page.status_code == 200
        assert "Alice Clerk" in page.text and "Budget calendar" in page.text
        assert "&lt;b&gt;please&lt;/b&gt;" in page.text  # the text part, escaped
        assert f'rel="next" href="{BASE}msg/{ids["reply"]}"' in page.text
        reply = http.get(f"{BASE}msg/{ids['reply']}").text
        assert f'rel="prev" href="{BASE}msg/{ids["root"]}"' in reply
        assert http.get(BASE + "2025-04/").status_code == 404
        assert http.get(BASE + "2025-13/").status_code == 404
        assert http.get(f"{BASE}msg/999999").status_code == 404


def test_search_finds_posts_by_phrase_with_escaped_snippets(world: ArchiveWorld) -> None:
    ids = _thread(world)
    world.post("Calendar of consent items", "A calendar; consent is separate. <i>x</i>")
    with world.client() as http:
        sign_in(http, world.settings, CLERK)
        phrase = http.get(BASE + "search", params={"q": '"consent calendar"'})
        assert phrase.status_code == 200
        found = re.findall(r'href="[^"]*/msg/(\d+)"', phrase.text.split("archive-results")[1])
        assert found == [str(ids["root"])]
        assert re.search(r"<mark>consent( </mark> <mark>| )calendar</mark>", phrase.text)
        words = http.get(BASE + "search", params={"q": "consent calendar"}).text
        assert len(re.findall(r'href="[^"]*/msg/\d+"', words.split("archive-results")[1])) == 2
        assert "&lt;i&gt;x&lt;/i&gt;" in words or "<i>x" not in words
        odd = http.get(BASE + "search", params={"q": 'NEAR( "unbalanced * OR -'})
        assert odd.status_code == 200  # FTS5 syntax typed by a user is just words


def test_attachments_download_and_never_render(world: ArchiveWorld) -> None:
    raw = (f"From: Alice Clerk <{CLERK}>\r\nTo: city-clerks@lists.cacities.org\r\n"
           "Subject: Agenda attached\r\nDate: Tue, 04 Mar 2025 10:00:00 -0800\r\n"
           f"Message-ID: <att@example.org>\r\nMIME-Version: 1.0\r\n{MIXED[0]}\r\n\r\n"
           f"{MIXED[1]}\r\n").encode()
    post_id = world.deliver(raw)
    assert post_id is not None
    with world.client() as http:
        sign_in(http, world.settings, CLERK)
        page = http.get(f"{BASE}msg/{post_id}").text
        assert "See the attached page." in page
        links = re.findall(r'href="([^"]*/att/\d+)" download>([^<]+)<', page)
        assert [name for _, name in links] == ["agenda.html", "logo.svg"]
        assert "<script>alert" not in page
        for url, name in links:
            got = http.get(url)
            assert got.status_code == 200
            assert got.headers["content-type"] == "application/octet-stream"
            assert got.headers["content-disposition"].startswith("attachment;")
            assert name in got.headers["content-disposition"]
            assert got.headers["x-content-type-options"] == "nosniff"
        assert http.get(f"{BASE}msg/{post_id}/att/0").status_code == 404  # the text part


def test_html_only_post_is_sanitised_without_remote_images(world: ArchiveWorld) -> None:
    post_id = world.post(
        "Newsletter", "<p onclick='x()'>Hello <b>clerks</b><img src='https://t.example/p.gif'>"
        "<script>steal()</script><a href='javascript:x()'>bad</a></p>",
        extra="Content-Type: text/html; charset=utf-8")
    with world.client() as http:
        sign_in(http, world.settings, CLERK)
        page = http.get(f"{BASE}msg/{post_id}").text
        assert "<b>clerks</b>" in page
        for gone in ("t.example", "<script", "steal()", "onclick", "javascript:"):
            assert gone not in page


def test_visitors_and_members_of_other_lists_cannot_read_a_private_archive(
        world: ArchiveWorld) -> None:
    raw = (f"From: Alice Clerk <{CLERK}>\r\nTo: city-clerks@lists.cacities.org\r\n"
           "Subject: Closed session notes\r\nDate: Tue, 04 Mar 2025 10:00:00 -0800\r\n"
           f"Message-ID: <secret@example.org>\r\nMIME-Version: 1.0\r\n{MIXED[0]}\r\n\r\n"
           f"{MIXED[1]}\r\n").encode()
    post_id = world.deliver(raw)
    urls = [BASE, BASE + "2025-03/", BASE + "2025-03/thread", BASE + "2025-03.mbox",
            BASE + "search?q=session", f"{BASE}msg/{post_id}", f"{BASE}msg/{post_id}/att/1",
            "/archives/city-clerks/msg/%3Csecret%40example.org%3E"]
    with world.client() as http:
        for url in urls:
            got = http.get(url, follow_redirects=False)
            assert got.status_code == 303, url
            assert got.headers["location"].startswith("/signin?next=/lists/city-clerks/archive/"
                                                      if "archives" not in url
                                                      else "/signin?next=/archives/")
            assert "Closed session" not in got.text and "attached page" not in got.text
    with world.client() as http:
        sign_in(http, world.settings, CHIEF)
        for url in urls:
            got = http.get(url, follow_redirects=False)
            assert got.status_code == 404, url
            assert "Closed session" not in got.text and "attached page" not in got.text
        assert http.get("/lists/fire-chiefs/archive/").status_code == 200  # their own list
    with world.client() as http:
        sign_in(http, world.settings, CLERK)
        for url in urls:
            assert http.get(url).status_code == 200, url


def test_a_public_archive_is_open_to_visitors(world: ArchiveWorld) -> None:
    world.post("Open meeting", "Agenda posted.")
    with writing(world.engine) as conn:
        conn.execute(update(MailingList).where(MailingList.name == "city-clerks")
                     .values(private_archive=False))
    with world.client() as http:
        assert "Open meeting" in http.get(BASE + "2025-03/").text
        assert http.get("/lists/nope/archive/").status_code == 404
        assert http.get("/lists/advocate/archive/").status_code == 404  # a newsletter


def test_archived_at_of_a_sent_post_resolves_to_its_page(world: ArchiveWorld) -> None:
    post_id = world.post("Quorum question", "Is four a quorum?",
                         message_id="<quorum/4@example.org>")
    with reading(world.engine) as conn:
        body = conn.scalar(select(Outbound.body).where(Outbound.post_id == post_id))
    sent = message_from_bytes(bytes(body), policy=policy.default)
    url = str(sent["Archived-At"]).strip("<>")
    archive = str(sent["List-Archive"]).strip("<>")
    assert url.startswith(world.settings.base_url + "/")
    with world.client() as http:
        sign_in(http, world.settings, CLERK)
        page = http.get(url.removeprefix(world.settings.base_url))
        assert page.status_code == 200
        assert str(page.url).endswith(f"{BASE}msg/{post_id}")
        assert "Is four a quorum?" in page.text
        listing = http.get(archive.removeprefix(world.settings.base_url))
        assert listing.status_code == 200 and "2025-03" in listing.text


def test_an_erased_author_is_gone_from_pages_search_and_mbox(world: ArchiveWorld) -> None:
    post_id = world.post("Retirement", "Thanks all. Write me at alice@example.org. "
                         "Alice Clerk", message_id="<bye@example.org>")
    forget(world.engine, world.settings, CLERK)
    with world.client() as http:
        sign_in(http, world.settings, CHIEF)  # CLERK is gone: make the archive public
        with writing(world.engine) as conn:
            conn.execute(update(MailingList).where(MailingList.name == "city-clerks")
                         .values(private_archive=False))
        page = http.get(f"{BASE}msg/{post_id}").text
        mbox = http.get(BASE + "2025-03.mbox").text
        found = http.get(BASE + "search", params={"q": "Alice"}).text
        for text in (page, mbox, http.get(BASE + "2025-03/").text):
            assert "alice@example.org" not in text and "Alice Clerk" not in text
        assert "Thanks all" in page and "(author erased)" in page and "Thanks all" in mbox
        assert "Retirement" not in found.split("archive-results")[1]


def test_a_post_a_moderator_approves_is_archived_and_searchable(world: ArchiveWorld) -> None:
    raw = (b"From: Outsider <visitor@elsewhere.example>\r\nTo: city-clerks@lists.cacities.org\r\n"
           b"Subject: Vendor question\r\nDate: Tue, 04 Mar 2025 10:00:00 -0800\r\n"
           b"Message-ID: <held@elsewhere.example>\r\n\r\nDo you use electronic agendas?\r\n")
    assert world.deliver(raw, sender="visitor@elsewhere.example") is None  # held
    with reading(world.engine) as conn:
        held_id = conn.scalar(select(Held.id))
    decide(world.settings, held_id, "approve", decided_by="mod@example.org")
    with world.client() as http:
        sign_in(http, world.settings, CLERK)
        found = http.get(BASE + "search", params={"q": "electronic agendas"}).text
        assert "Vendor question" in found.split("archive-results")[1]


def test_init_indexes_posts_archived_before_search_existed(world: ArchiveWorld) -> None:
    # An upgrade: posts stored by an older citymail have no archive row until init runs.
    from sqlalchemy import delete

    from listservs.archive_search import search
    from mailer.models_archive import ArchiveMessage

    post_id = world.post("Budget calendar", "The consent calendar closes on Friday.")
    with writing(world.engine) as conn:
        conn.execute(delete(ArchiveMessage).where(ArchiveMessage.post_id == post_id))
        list_id = conn.scalar(select(Post.list_id).where(Post.id == post_id))
    assert admin.index_archive(world.settings) == 1
    with reading(world.engine) as conn:
        assert [h.post_id for h in search(conn, list_id, '"consent calendar"')] == [post_id]
    assert admin.index_archive(world.settings) == 0
