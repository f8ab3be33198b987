"""Staff sign-in, roles, sessions and form tokens, as a browser sees them."""

from __future__ import annotations

from pathlib import Path

import pytest
import web_staff_site
from sqlalchemy import select
from starlette.testclient import TestClient
from web_staff_site import ADMIN, EDITOR, KEY, MODERATOR, PASSWORD, Site, make_site, page_text

from mailer.db import writing
from mailer.errors import SettingsError
from mailer.models_web import WebUser
from mailer.settings import load_settings
from web.app import create_app
from web.auth import Principal, can_read_list
from web.login import LOGIN_LIMITS
from web.ratelimit import Limit
from web.sessions import COOKIE, IDLE_SECONDS, SessionData, decode, encode
from web.users import set_password

# The shared fixtures (tests/unit/web_staff_site.py).
fast_hashing, staff_template, site = (web_staff_site.fast_hashing,
                                       web_staff_site.staff_template, web_staff_site.site)


def test_anonymous_visitor_is_sent_to_login_and_comes_back_after_signing_in(site: Site):
    first = site.client.get("/admin/", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/login?next=/admin/"

    site.client.get("/login")
    anonymous = site.client.cookies.get(COOKIE)
    assert anonymous  # a visitor shown a form has a session for its token
    signed_in = site.sign_in(ADMIN, next_path="/admin/")
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/admin/"
    assert site.client.cookies.get(COOKIE) != anonymous  # a new session, not the visitor's
    cookie = signed_in.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie and "Path=/" in cookie and "Secure" not in cookie

    home = site.client.get("/admin/")
    assert home.status_code == 200
    words = page_text(home.text)
    for item in ("Lists", "Members", "Moderation", "Newsletters", "Bounces", "Sign out"):
        assert item in words


def test_sign_out_ends_the_session(site: Site):
    site.sign_in(ADMIN)
    home = site.client.get("/admin/")
    out = site.client.post("/logout", data=site.form(home.text, "/logout")["fields"],
                           follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login?out=1"
    assert "You are signed out" in page_text(site.client.get("/login?out=1").text)
    assert site.client.get("/admin/", follow_redirects=False).status_code == 303


def test_wrong_password_and_unknown_address_get_the_same_answer(site: Site):
    wrong = site.sign_in(ADMIN, password="not the password")
    unknown = site.sign_in("nobody@league.org")
    assert wrong.status_code == unknown.status_code == 401
    message = "That email address and password do not match an account."
    assert message in page_text(wrong.text) and message in page_text(unknown.text)
    assert site.client.get("/admin/", follow_redirects=False).status_code == 303


def test_sign_in_attempts_are_limited_per_address(site: Site, monkeypatch):
    # The real limit is 10 per 15 minutes; 3 keeps the test fast (argon2 is slow on purpose).
    monkeypatch.setitem(LOGIN_LIMITS, "login_address", Limit(3, 900.0))
    with TestClient(create_app(site.settings, site.engine)) as client:
        site = Site(site.settings, site.engine, client)
        answers = [site.sign_in(ADMIN, password=f"guess number {i}").status_code
                   for i in range(4)]
        assert answers == [401, 401, 401, 429]
        refused = site.sign_in(ADMIN)  # even the right password, for a while
        assert refused.status_code == 429 and "Too many attempts" in page_text(refused.text)
        assert "Retry-After" in refused.headers


def test_roles_decide_which_pages_open(site: Site):
    site.sign_in(MODERATOR)
    assert site.client.get("/moderation/city-clerks/").status_code == 200
    refused = site.client.get("/moderation/fire-chiefs/")
    assert refused.status_code == 403 and "Not allowed" in page_text(refused.text)
    assert site.client.get("/admin/").status_code == 403
    nav = page_text(site.client.get("/moderation/city-clerks/").text)
    assert "Moderation" in nav and "Members" not in nav

    site.client.cookies.clear()
    site.sign_in(EDITOR)
    assert site.client.get("/admin/").status_code == 403
    assert site.client.get("/moderation/city-clerks/").status_code == 403

    site.client.cookies.clear()
    site.sign_in(ADMIN)
    assert site.client.get("/moderation/fire-chiefs/").status_code == 200


def test_a_new_password_or_a_disabled_account_ends_existing_sessions(site: Site):
    site.sign_in(ADMIN)
    assert site.client.get("/admin/").status_code == 200
    with writing(site.engine) as conn:
        set_password(conn, ADMIN, "a brand new password")
    assert site.client.get("/admin/", follow_redirects=False).status_code == 303

    site.sign_in(ADMIN, password="a brand new password")
    with writing(site.engine) as conn:
        conn.execute(WebUser.__table__.update().where(WebUser.email == ADMIN)
                     .values(disabled=True))
    assert site.client.get("/admin/", follow_redirects=False).status_code == 303
    assert site.sign_in(ADMIN, password="a brand new password").status_code == 401


def test_login_never_sends_anyone_to_another_site(site: Site):
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        site.client.cookies.clear()
        answer = site.sign_in(ADMIN, next_path=target)
        assert answer.headers["location"] == "/admin/", target


def test_forms_without_the_session_token_are_refused(site: Site):
    refused = site.client.post("/manage", data={"email": "ann@example.org"})
    assert refused.status_code == 403
    assert "This form has expired" in page_text(refused.text)

    accepted = site.submit("/manage", email="ann@example.org")
    assert accepted.status_code == 200 and "Check your email" in page_text(accepted.text)

    # Another visitor's token does not work with this visitor's cookie.
    other = TestClient(site.client.app)
    token = site.form(other.get("/manage").text, "/manage")["fields"]["csrf_token"]
    assert site.client.post("/manage", data={"email": "a@example.org",
                                             "csrf_token": token}).status_code == 403
    # A signed-in admin's forms need it too.
    site.sign_in(ADMIN)
    assert site.client.post("/logout", follow_redirects=False).status_code == 403


def test_session_lapses_after_twelve_idle_hours():
    keys = [KEY.encode()]
    data = SessionData("sid1", "staff", "7", "stamp", issued=1_000_000)
    value = encode(keys[0], data)
    assert decode(keys, value, now=1_000_000 + IDLE_SECONDS - 1) == data
    assert decode(keys, value, now=1_000_000 + IDLE_SECONDS + 1) is None
    assert decode(keys, value[:-2] + "xx", now=1_000_000) is None
    assert decode([b"another-key-entirely-x"], value, now=1_000_000) is None


def test_who_may_read_a_list_archive(site: Site):
    admin = Principal("staff", ADMIN, 1, True, False, frozenset())
    moderator = Principal("staff", MODERATOR, 2, False, False, frozenset({"city-clerks"}))
    ann = Principal("member", "ann@example.org", None, False, False, frozenset())
    assert can_read_list(admin, "fire-chiefs", site.engine)
    assert can_read_list(moderator, "city-clerks", site.engine)
    assert not can_read_list(moderator, "fire-chiefs", site.engine)
    assert can_read_list(ann, "city-clerks", site.engine)  # a City Clerk
    assert not can_read_list(ann, "fire-chiefs", site.engine)
    assert not can_read_list(None, "city-clerks", site.engine)


def test_behind_a_trusted_proxy_cookies_are_secure_and_limits_count_the_real_client(
        staff_template: Path, tmp_path: Path):
    settings, engine = make_site(staff_template, tmp_path, trusted_proxies=("10.0.0.0/8",))
    forwarded = {"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.9, 10.0.0.2",
                 "x-forwarded-host": "lists.cacities.org"}
    try:
        with TestClient(create_app(settings, engine), client=("10.0.0.1", 4000),
                        base_url="http://internal") as proxied:
            page = proxied.get("/login", headers=forwarded)
            assert "Secure" in page.headers["set-cookie"]
            assert proxied.get("/admin/", headers=forwarded,
                               follow_redirects=False).headers["location"].startswith("/login")
        with TestClient(create_app(settings, engine), client=("198.51.100.7", 4000)) as direct:
            page = direct.get("/login", headers=forwarded)
            assert "Secure" not in page.headers["set-cookie"]
    finally:
        engine.dispose()


def test_forwarded_scheme_and_host_make_the_public_origin_ours(
        staff_template: Path, tmp_path: Path):
    # The manage form refuses a POST whose Origin is not this site; behind the proxy the
    # site is https://lists.cacities.org even though the app is reached over plain http.
    settings, engine = make_site(staff_template, tmp_path, trusted_proxies=("10.0.0.1",))
    public = {"x-forwarded-proto": "https", "x-forwarded-host": "lists.cacities.org",
              "origin": "https://lists.cacities.org"}

    def manage(peer: str) -> int:
        with TestClient(create_app(settings, engine), client=(peer, 4000)) as client:
            fields = Site(settings, engine, client).form(client.get("/manage").text,
                                                         "/manage")["fields"]
            return client.post("/manage", headers=public,
                               data={**fields, "email": "ann@example.org"}).status_code

    try:
        assert manage("10.0.0.1") == 200
        assert manage("192.0.2.50") == 403  # not our proxy: its headers are not believed
    finally:
        engine.dispose()


def test_forwarded_client_address_is_what_the_per_ip_limit_counts(
        staff_template: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setitem(LOGIN_LIMITS, "login_ip", Limit(2, 900.0))
    settings, engine = make_site(staff_template, tmp_path, trusted_proxies=("10.0.0.1",))

    def attempt(client: TestClient, ip: str, email: str, password: str = "x" * 12) -> int:
        fields = Site(settings, engine, client).form(client.get("/login").text,
                                                     "/login")["fields"]
        return client.post("/login", headers={"x-forwarded-for": ip}, follow_redirects=False,
                           data={**fields, "email": email, "password": password}).status_code

    try:
        with TestClient(create_app(settings, engine), client=("10.0.0.1", 4000)) as proxy:
            assert [attempt(proxy, "203.0.113.1", f"u{i}@league.org") for i in range(3)] == [
                401, 401, 429]
            # Another client behind the same proxy is not held back by the first.
            assert attempt(proxy, "203.0.113.2", ADMIN, PASSWORD) == 303
        with TestClient(create_app(settings, engine), client=("198.51.100.7", 4000)) as direct:
            # Not from the proxy: the header is ignored, every attempt counts for one peer.
            assert [attempt(direct, f"203.0.113.{i}", f"v{i}@league.org")
                    for i in range(3)] == [401, 401, 429]
    finally:
        engine.dispose()


def test_last_sign_in_is_recorded(site: Site):
    site.sign_in(ADMIN)
    with writing(site.engine) as conn:
        when = conn.execute(select(WebUser.last_login_at).where(WebUser.email == ADMIN)
                            ).scalar_one()
    assert when is not None


def test_trusted_proxies_setting_is_checked_at_start_up():
    env = {"CITYMAIL_SECRET_KEY": KEY}
    settings = load_settings({**env, "CITYMAIL_TRUSTED_PROXIES": "10.0.0.0/8, ::1"})
    assert settings.trusted_proxies == ("10.0.0.0/8", "::1")
    assert load_settings(env).trusted_proxies == ()
    with pytest.raises(SettingsError, match="CITYMAIL_TRUSTED_PROXIES must be IP addresses"):
        load_settings({**env, "CITYMAIL_TRUSTED_PROXIES": "10.0.0.1,proxy.local"})
