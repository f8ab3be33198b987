"""A member leaves a list from the link in a message that reached them: the link opens a
confirmation page (mail scanners follow links, so opening it changes nothing) and one
click unsubscribes."""

from __future__ import annotations

from conftest import Site, shoot
from playwright.sync_api import Page, expect

from citymail import admin

LIST = "fire-chiefs@lists.cacities.org"


def test_a_member_unsubscribes_with_one_click_from_a_received_message(
        page: Page, site: Site) -> None:
    site.post("Cy Young <cy@example.com>", LIST, "Hydrant inspections")
    [copy] = site.wait_for("[Fire Chiefs] Hydrant inspections", 1)
    assert copy.rcpt_tos == ["cy@example.com"]
    msg = copy.message
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = msg["List-Unsubscribe"].split(",")[0].strip().strip("<>")
    assert link.startswith(site.url + "/u/")

    page.goto(link)
    expect(page.locator("h1")).to_contain_text("Unsubscribe from")
    expect(page.locator("main")).to_contain_text("cy@example.com")
    shoot(page, "unsubscribe")
    assert "fire-chiefs" not in _left(site)  # opening the link did nothing by itself
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.locator("h1")).to_have_text("You are unsubscribed")
    expect(page.get_by_role("status")).to_contain_text("no more mail")
    assert "fire-chiefs" in _left(site)


def _left(site: Site) -> list[str]:
    return admin.members_show(site.settings, "cy@example.com")["left"]
