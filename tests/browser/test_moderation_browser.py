"""A moderator, in a real browser, approves a post held for a non-member; the list's
members then get it."""

from __future__ import annotations

import time

from conftest import Site, shoot, sign_in
from playwright.sync_api import Page, expect

from citymail import admin

LIST = "city-clerks@lists.cacities.org"
SUBJECT = "Records retention question"


def _wait_for_held(site: Site, subject: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = admin.lists_held(site.settings, "city-clerks")
        if any(h["subject"] == subject for h in held):
            return
        time.sleep(0.3)
    raise AssertionError(f"no held message {subject!r}: {held}")


def test_a_moderator_approves_a_held_post_that_then_reaches_the_list(
        page: Page, site: Site) -> None:
    site.post("Dana Outsider <dana@outside.example>", LIST, SUBJECT,
              "How long must we keep council agendas?\r\n")
    _wait_for_held(site, SUBJECT)
    assert site.wait_for(f"[City Clerks] {SUBJECT}", 1, timeout=0) == []  # held, not sent

    sign_in(page, "moderator@cacities.org", next_path="/moderation/city-clerks/")
    expect(page.locator("h1")).to_contain_text("Held for")
    row = page.locator("tr", has_text=SUBJECT)
    expect(row).to_contain_text("dana@outside.example")
    shoot(page, "moderation")
    row.get_by_role("link", name=SUBJECT).click()
    expect(page.locator("pre.mail")).to_contain_text("How long must we keep council agendas?")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("Approved")
    expect(page.locator("main")).not_to_contain_text(SUBJECT)  # the queue is empty again

    copies = site.wait_for(f"[City Clerks] {SUBJECT}", 2)
    assert sorted(r for m in copies for r in m.rcpt_tos) == ["ann@example.org",
                                                             "bob@example.net"]
    assert "How long must we keep council agendas?" in copies[0].message.get_body(
        ("plain",)).get_content()
