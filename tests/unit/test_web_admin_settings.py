"""A list's ``lists set`` keys and its digest, managed from the admin's list page.

What the page saves is checked with the CLI an operator would use (``citymail lists show
NAME --json``, ``citymail lists digest NAME --status --json``), run in-process.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
import test_digest_support as support
import web_staff_site
from sqlalchemy import select
from starlette.testclient import TestClient
from test_digest_support import World, digests_for, utc
from web_staff_site import ADMIN, MODERATOR, PASSWORD, Site, page_text

from citymail.cli import build_parser
from mailer.db import reading, writing
from mailer.models import MailingList
from mailer.settings import Settings
from web.app import create_app
from web.users import create_user

fast_hashing, staff_template, site = (web_staff_site.fast_hashing,
                                       web_staff_site.staff_template, web_staff_site.site)
world = support.world
PAGE = "/admin/lists/city-clerks"


@pytest.fixture
def admin(site: Site) -> Site:
    site.sign_in(ADMIN)
    return site


def cli(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    """``citymail ARGV --json`` on this site's database; its parsed output."""
    args = build_parser().parse_args([*argv, "--json"])
    capsys.readouterr()
    assert args.func(args, settings) == 0
    return json.loads(capsys.readouterr().out)


def shown_settings(site: Site, capsys: pytest.CaptureFixture[str]) -> dict:
    return cli(site.settings, capsys, "lists", "show", "city-clerks")["settings"]


def stored_digest(site: Site | World, name: str) -> dict:
    with reading(site.engine) as conn:
        config = conn.scalar(select(MailingList.config).where(MailingList.name == name))
    return dict(config or {}).get("digest", {})


def test_admin_changes_content_filtering_and_dmarc_as_lists_set_would(
        admin: Site, capsys: pytest.CaptureFixture[str]) -> None:
    html = admin.client.get(PAGE).text
    assert "List settings" in page_text(html) and "filter MIME parts" in page_text(html)
    boxes = admin.form(html, f"{PAGE}/settings")["fields"]  # the values the boxes show
    assert boxes["dmarc_mitigation"] == "munge_from" and boxes["private_archive"] == "on"
    saved = admin.submit(PAGE, f"{PAGE}/settings", filter_content="on",
                         filter_extensions="exe, .BAT", dmarc_mitigation="wrap_message",
                         list_id="<clerks.old.example.org>", private_archive=None)
    assert saved.status_code == 303
    page = page_text(admin.client.get(saved.headers["location"]).text)
    assert "The list settings are saved." in page
    boxes = admin.form(admin.client.get(PAGE).text, f"{PAGE}/settings")["fields"]
    assert boxes["filter_extensions"] == "exe, bat" and "private_archive" not in boxes

    shown = shown_settings(admin, capsys)
    assert shown["filter_content"] is True and shown["filter_extensions"] == ["exe", "bat"]
    assert shown["dmarc_mitigation"] == "wrap_message"
    assert shown["list_id"] == "clerks.old.example.org" and shown["private_archive"] is False

    reset = admin.submit(PAGE, f"{PAGE}/settings", list_id="default", filter_extensions="")
    assert reset.status_code == 303
    shown = shown_settings(admin, capsys)
    assert shown["list_id"] is None and shown["filter_extensions"] == []
    assert shown["dmarc_mitigation"] == "wrap_message"  # kept: the form showed it


def test_a_bad_setting_is_refused_next_to_its_field_and_nothing_is_saved(
        admin: Site, capsys: pytest.CaptureFixture[str]) -> None:
    before = shown_settings(admin, capsys)
    refused = admin.submit(PAGE, f"{PAGE}/settings", dmarc_mitigation="wrap_message",
                           filter_action="explode", pass_types="image, not a/type")
    assert refused.status_code == 400
    words = page_text(refused.text)
    assert "Nothing was saved: correct the settings marked below." in words
    assert ("filter_action must be one of reject, hold, discard, got 'explode'"
            in words)
    assert "pass_types must be comma-separated MIME types" in words
    typed = admin.form(refused.text, f"{PAGE}/settings")["fields"]
    assert typed["pass_types"] == "image, not a/type"  # what was typed, to correct
    # A key that takes one of a few words is a drop-down of exactly those words.
    options = re.findall(r'<option value="([^"]+)"', refused.text.split('name="filter_action"')[1]
                         .split("</select>")[0])
    assert options == ["reject", "hold", "discard"]
    assert shown_settings(admin, capsys) == before


def test_digest_settings_saved_on_the_page_are_what_lists_digest_reports(
        admin: Site, capsys: pytest.CaptureFixture[str]) -> None:
    saved = admin.submit(PAGE, f"{PAGE}/digest", frequency="weekly", weekday="friday",
                         send_at="16:30", zone="America/New_York", size_kb="0", count="10")
    assert saved.status_code == 303
    page = page_text(admin.client.get(saved.headers["location"]).text)
    assert "The digest settings are saved." in page
    assert "on, weekly on friday at 16:30 America/New_York" in page

    status = cli(admin.settings, capsys, "lists", "digest", "city-clerks", "--status")
    assert (status["enabled"], status["frequency"], status["weekday"], status["send_at"],
            status["zone"], status["size_kb"], status["count"]) == (
        True, "weekly", "friday", "16:30", "America/New_York", 0, 10)
    # Stored as the CLI stores the same options on another list.
    args = build_parser().parse_args(["lists", "digest", "fire-chiefs", "--frequency",
                                      "weekly", "--weekday", "friday", "--at", "16:30",
                                      "--zone", "America/New_York", "--size-kb", "0",
                                      "--count", "10"])
    args.func(args, admin.settings)
    assert stored_digest(admin, "city-clerks") == stored_digest(admin, "fire-chiefs")

    off = admin.submit(PAGE, f"{PAGE}/digest", enabled=None)
    assert off.status_code == 303
    assert cli(admin.settings, capsys, "lists", "digest", "city-clerks")["enabled"] is False


def test_bad_digest_settings_are_refused_field_by_field(admin: Site) -> None:
    refused = admin.submit(PAGE, f"{PAGE}/digest", send_at="7pm", count="-1", zone="Mars/Base")
    assert refused.status_code == 400
    words = page_text(refused.text)
    assert "digest send_at must be a local time like '07:00', got '7pm'" in words
    assert "digest count must be a whole number >= 0" in words
    assert "unknown digest time zone 'Mars/Base'" in words
    assert stored_digest(admin, "city-clerks") == {}


def test_moderators_cannot_change_settings_or_send_a_digest(
        site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    site.sign_in(MODERATOR)  # moderates city-clerks, is no admin
    token = site.form(site.client.get("/").text, "/logout")["fields"]["csrf_token"]
    before = shown_settings(site, capsys)
    for path, data in ((f"{PAGE}/settings", {"dmarc_mitigation": "none"}),
                       (f"{PAGE}/digest", {"frequency": "weekly", "count": "1"}),
                       (f"{PAGE}/digest/send", {})):
        answer = site.client.post(path, data={"csrf_token": token, **data},
                                  follow_redirects=False)
        assert answer.status_code == 403, path
        assert "Your account cannot open this page." in page_text(answer.text)  # not CSRF
    assert shown_settings(site, capsys) == before and stored_digest(site, "city-clerks") == {}


@pytest.fixture
def digest_site(world: World, fast_hashing: None) -> Iterator[Site]:
    """The digest world (bob reads MIME digests, cho plain ones) with an admin signed in."""
    with writing(world.engine) as conn:
        create_user(conn, ADMIN, PASSWORD, is_admin=True)
    app = create_app(world.settings, world.engine)
    with TestClient(app, base_url=world.settings.base_url) as client:
        s = Site(world.settings, world.engine, client)
        s.sign_in(ADMIN)
        yield s


def test_send_now_sends_the_waiting_posts_and_the_page_shows_the_issue(
        world: World, digest_site: Site) -> None:
    world.post("Agenda deadline", utc("2026-01-14T16:00"))
    page = page_text(digest_site.client.get(PAGE).text)
    assert "Waiting 1 posts" in page and "Last digest none yet" in page
    assert "Digest readers 1 MIME, 1 plain text" in page

    sent = digest_site.submit(PAGE, f"{PAGE}/digest/send")
    assert sent.status_code == 303
    page = page_text(digest_site.client.get(sent.headers["location"]).text)
    assert "Sent Vol 1, Issue 1 (1 posts) to 2 members." in page
    assert "Waiting 0 posts" in page and "Last digest Vol 1, Issue 1" in page
    assert len(digests_for(world.deliver(), "bob@example.net")) == 1

    again = digest_site.submit(PAGE, f"{PAGE}/digest/send")
    assert "No posts are waiting; no digest was sent." in page_text(
        digest_site.client.get(again.headers["location"]).text)
