"""An admin, in a real browser, sees every list and may open the newsletter editor too."""

from __future__ import annotations

from conftest import Site, shoot, sign_in
from playwright.sync_api import Page, expect


def test_an_admin_sees_the_lists_and_reaches_the_editor(page: Page, site: Site) -> None:
    sign_in(page, "admin@cacities.org", next_path="/admin/lists")
    main = page.locator("main")
    expect(main).to_contain_text("city-clerks")
    expect(main).to_contain_text("legislative-alerts")
    shoot(page, "admin-lists")
    page.get_by_role("navigation").get_by_role("link", name="Newsletters").click()
    expect(page.locator("h1")).to_have_text("Newsletters")
    expect(page.locator("#nl-advocate")).to_contain_text("Cal Cities Advocate")
    expect(page.locator("#nl-western-city")).to_be_visible()
