"""An editor, in a real browser, composes an issue from Markdown and feed items, watches the
live preview, sends a test copy, schedules it at a Pacific wall time, and every subscriber
gets it."""

from __future__ import annotations

import datetime as dt
import re
import time
from zoneinfo import ZoneInfo

from conftest import MEMBERS, Site, shoot, sign_in
from playwright.sync_api import Page, expect

from mailer.db import make_engine, reading
from newsletters.feedstore import list_feeds


def _wait_for_feed_items(site: Site, count: int, timeout: float = 30) -> None:
    """The workers' clock polls the (hostile) feed on its own; wait until it has."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        engine = make_engine(site.settings)
        try:
            with reading(engine) as conn:
                feeds = list_feeds(conn)
        finally:
            engine.dispose()
        if feeds and feeds[0]["items"] >= count:
            return
        time.sleep(0.3)
    raise AssertionError(f"the clock did not poll the feed: {feeds}")


def test_an_editor_composes_previews_and_schedules_an_issue_that_reaches_subscribers(
        page: Page, site: Site) -> None:
    _wait_for_feed_items(site, 2)
    sign_in(page, "editor@cacities.org", next_path="/admin/newsletters/")
    expect(page.locator("h1")).to_have_text("Newsletters")
    page.fill("#subject-advocate", "Budget week")
    page.locator("#nl-advocate button[type=submit]").click()
    expect(page.locator(".notice")).to_contain_text("Issue created")

    preview = page.frame_locator("#preview-html")
    text = page.frame_locator("#preview-text")
    expect(preview.get_by_text("Housing bill passes")).to_be_visible()
    expect(preview.get_by_text("Water rates")).to_be_visible()  # hostile, but inert
    # Typing refreshes the preview without saving: exactly what a subscriber would get.
    page.fill("#block-new", "## Budget\n\nThe **state budget** is out.")
    expect(preview.locator("strong", has_text="state budget")).to_be_visible()
    expect(preview.get_by_text("Hello Pat Example,")).to_be_visible()
    expect(text.locator("body")).to_contain_text("The state budget is out.")
    # The arrows reorder the items (newest first by default); the preview follows.
    body = preview.locator("body")
    assert body.inner_text().index("Water rates") < body.inner_text().index("Housing bill")
    page.locator("#items tr", has_text="Housing bill passes").get_by_label("Move up").click()
    expect(page.locator("#items tbody tr").first).to_contain_text("Housing bill passes")
    expect(body).to_contain_text(re.compile(r"Housing bill passes.*Water rates", re.S))
    # Drop the hostile item; the preview follows.
    page.locator("#items tr", has_text="Water rates").locator('input[name="keep"]').uncheck()
    expect(preview.get_by_text("Water rates")).to_have_count(0)
    assert page.locator("script").count() == 1  # ours, from /static: nothing from the feed
    assert preview.locator("script").count() == 0
    shoot(page, "editor")
    shoot(page.locator("#preview-html"), "preview")
    page.click("#save")
    expect(page.locator(".notice")).to_have_text("Saved.")

    page.fill("#test-to", "editor@cacities.org")
    page.get_by_role("button", name="Send test").click()
    expect(page.locator(".notice")).to_contain_text("A test copy is on its way")
    [test_copy] = site.wait_for("[TEST] Budget week", 1)
    assert test_copy.rcpt_tos == ["editor@cacities.org"]

    # Schedule for this minute, Pacific time: the clock sends it at its next tick.
    now = dt.datetime.now(ZoneInfo("America/Los_Angeles")).strftime("%Y-%m-%dT%H:%M")
    page.fill("#send-at", now)
    page.click("#schedule")
    expect(page.locator(".notice")).to_have_text("Scheduled.")
    # The progress panel follows the send on its own until the issue is sent.
    expect(page.locator("#issue-state")).to_have_text("sent", timeout=40_000)
    expect(page.locator('#progress [data-field="sent"]')).to_have_text(str(len(MEMBERS)))
    assert len(site.wait_for("Budget week", len(MEMBERS))) == len(MEMBERS)
    expect(page.locator('#progress [data-field="eta"]')).to_have_text("0 s")

    copies = [m for m in site.sink.messages if m.message["Subject"] == "Budget week"]
    assert sorted(r for m in copies for r in m.rcpt_tos) == sorted(MEMBERS)  # once each
    for copy in copies:
        plain, html = copy.message.iter_parts()
        name = MEMBERS[copy.rcpt_tos[0]][0]
        for part in (plain.get_content(), html.get_content()):
            assert f"Hello {name}," in part and "state budget" in part
            assert "Housing bill passes" in part and "Water rates" not in part
            assert "<script" not in part.lower() and "javascript:" not in part.lower()
