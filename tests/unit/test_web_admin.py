"""The admin pages in a browser: lists and their policy, members, roster import, bounces."""

from __future__ import annotations

import datetime as dt

import pytest
import web_staff_site
from sqlalchemy import func, insert, select
from web_staff_site import ADMIN, ANN, MODERATOR, Site, page_text

from citymail.admin import members_show
from listservs.lists import get_list
from listservs.posting import list_policy
from mailer.db import reading, utcnow, writing
from mailer.models import Member, Outbound, Subscription
from mailer.models_bounces import BounceState
from web.users import create_user

fast_hashing, staff_template, site = (web_staff_site.fast_hashing,
                                       web_staff_site.staff_template, web_staff_site.site)


@pytest.fixture
def admin(site: Site) -> Site:
    site.sign_in(ADMIN)
    return site


def test_only_admins_open_the_admin_pages(site: Site):
    site.sign_in(MODERATOR)
    for path in ("/admin/lists", "/admin/lists/city-clerks", "/admin/members",
                 "/admin/members/new", "/admin/cities", "/admin/roster", "/admin/bounces"):
        assert site.client.get(path).status_code == 403, path


def test_lists_show_their_subscribers_and_settings(admin: Site):
    words = page_text(admin.client.get("/admin/lists").text)
    assert "City Clerks department" in words and "city-clerks@lists.cacities.org" in words
    assert "Cal Cities Advocate" in words and "announce-only" in words
    detail = page_text(admin.client.get("/admin/lists/city-clerks").text)
    assert "Active subscribers 1" in detail and "Posting policy" in detail
    assert admin.client.get("/admin/lists/no-such-list").status_code == 404


def test_policy_changes_are_what_posting_then_uses(admin: Site):
    saved = admin.submit("/admin/lists/city-clerks", moderated="on", hold_days="3",
                         non_member="reject", notify_on_hold=None)
    assert saved.status_code == 303
    assert "The posting policy is saved." in page_text(admin.client.get(
        saved.headers["location"]).text)
    with reading(admin.engine) as conn:
        policy = list_policy(get_list(conn, "city-clerks"))
    assert policy.moderated and policy.hold_days == 3 and policy.non_member == "reject"
    assert not policy.notify_on_hold and policy.size_limit == 5 * 1024 * 1024

    refused = admin.submit("/admin/lists/city-clerks", hold_days="0")
    assert refused.status_code == 400
    assert "Nothing was saved: Days a held post waits" in page_text(refused.text)
    wrong = admin.submit("/admin/lists/city-clerks", no_sender="accept")
    assert wrong.status_code == 400 and "choose one of hold, discard" in page_text(wrong.text)
    with reading(admin.engine) as conn:
        assert list_policy(get_list(conn, "city-clerks")).hold_days == 3


def test_find_a_member_and_see_their_subscriptions(admin: Site):
    found = page_text(admin.client.get("/admin/members?q=avila").text)
    assert ANN in found and "Davis" in found
    assert "No member matches" in page_text(admin.client.get("/admin/members?q=zzz").text)
    by_city = page_text(admin.client.get("/admin/members?city=Davis").text)
    assert ANN in by_city and "bob@example.org" in by_city
    with reading(admin.engine) as conn:
        ann = conn.execute(select(Member.id).where(Member.email == ANN)).scalar_one()
    person = page_text(admin.client.get(f"/admin/members/{ann}").text)
    assert "City Clerks department" in person and "Cal Cities Advocate" in person
    assert "Davis" in page_text(admin.client.get("/admin/cities").text)


def test_adding_a_member_subscribes_and_welcomes_them(admin: Site):
    added = admin.submit("/admin/members/new", email="New.Clerk@Example.org",
                         name="Nina Clerk", city="Davis", role="City Clerk")
    assert added.status_code == 303
    page = page_text(admin.client.get(added.headers["location"]).text)
    assert "Added: new.clerk@example.org" in page and "City Clerks department" in page
    shown = members_show(admin.settings, "new.clerk@example.org")
    assert {s["name"] for s in shown["subscriptions"]} >= {"city-clerks", "advocate",
                                                            "western-city"}
    with reading(admin.engine) as conn:
        assert conn.execute(select(func.count()).select_from(Outbound)).scalar_one() == 1

    bad = admin.submit("/admin/members/new", email="not an address")
    assert bad.status_code == 400 and "Nobody was added" in page_text(bad.text)


ROSTER = ("email,name,role,city\r\n"
          "zoe@example.org,Zoe Zee,Fire Chief,Davis\r\n"
          "yan@example.org,Yan Yu,City Clerk,Davis\r\n"
          f"{ANN},Ann Avila-Smith,City Clerk,Davis\r\n"
          "broken-address,Bad Row,City Clerk,Davis\r\n")


def members(site: Site) -> int:
    with reading(site.engine) as conn:
        return conn.execute(select(func.count()).select_from(Member)).scalar_one()


def test_roster_import_shows_a_preview_and_applies_only_when_asked(admin: Site):
    before = members(admin)
    forged = admin.client.post("/admin/roster", files={"file": ("r.csv", ROSTER.encode())})
    assert forged.status_code == 403  # an upload without the session's form token
    refused = admin.submit("/admin/roster", files={"file": ("roster.csv", ROSTER.encode())})
    preview = page_text(admin.client.get(refused.headers["location"]).text)
    assert "Rows with errors (1)" in preview and "broken-address" in preview
    assert "cannot be imported as it is" in preview and "Apply" not in preview

    uploaded = admin.submit("/admin/roster", files={"file": ("roster.csv", ROSTER.encode())},
                            skip_bad_rows="on")
    job = uploaded.headers["location"]
    page = admin.client.get(job)
    words = page_text(page.text)
    assert "To add (2)" in words and "zoe@example.org" in words and "yan@example.org" in words
    assert "To change (1)" in words and "Ann Avila-Smith" in words
    assert members(admin) == before  # a preview changes nothing

    applied = admin.client.post(admin.form(page.text, f"{job}/apply")["action"],
                                data=admin.form(page.text, f"{job}/apply")["fields"],
                                follow_redirects=False)
    result = page_text(admin.client.get(applied.headers["location"]).text)
    assert "Imported: 2 added, 1 changed, 0 disabled" in result
    assert members(admin) == before + 2
    assert "fire-chiefs" in {s["name"] for s in members_show(admin.settings,
                                                              "zoe@example.org")["subscriptions"]}


def test_roster_jobs_belong_to_their_uploader_and_need_a_file(admin: Site):
    csv = b"email\r\nq@example.org\r\n"
    uploaded = admin.submit("/admin/roster", files={"file": ("r.csv", csv)})
    job = uploaded.headers["location"]
    admin.client.cookies.clear()
    with writing(admin.engine) as conn:
        create_user(conn, "other@league.org", "another password", is_admin=True)
    admin.sign_in("other@league.org", "another password")
    assert admin.client.get(job).status_code == 404
    empty = admin.submit("/admin/roster")
    assert empty.status_code == 400 and "Choose a CSV file" in page_text(empty.text)


def test_bounces_page_lists_disabled_deliveries_and_reenables_them(admin: Site):
    clerks = admin.list_id("city-clerks")
    with writing(admin.engine) as conn:
        sub = conn.execute(select(Subscription.id).join(Member).where(
            Member.email == ANN, Subscription.list_id == clerks)).scalar_one()
        conn.execute(insert(BounceState).values(
            subscription_id=sub, delivery_status="disabled_bounce", score=5.0,
            disabled_at=utcnow() - dt.timedelta(days=2), warnings_sent=1,
            updated_at=utcnow()))
    page = admin.client.get("/admin/bounces")
    words = page_text(page.text)
    assert ANN in words and "city-clerks" in words and "5.0" in words
    done = admin.client.post("/admin/bounces/reenable", follow_redirects=True,
                             data=admin.form(page.text, "/admin/bounces/reenable")["fields"])
    assert f"Delivery is back on for {ANN} on city-clerks." in page_text(done.text)
    assert "No delivery is disabled." in page_text(done.text)
    with reading(admin.engine) as conn:
        assert conn.execute(select(BounceState.delivery_status)).scalar_one() == "enabled"

    person = page_text(admin.client.get(f"/admin/bounces/person?email={ANN}").text)
    assert "city-clerks" in person and "No bounce was recorded" in person
    checked = page_text(admin.client.get("/admin/bounces?check=someone@example.org").text)
    assert "someone@example.org is not suppressed" in checked
    assert admin.client.get("/admin/bounces/person?email=nobody@x.org").status_code == 404
