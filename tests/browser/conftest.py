"""A real ``citymail serve``, a real SMTP sink and headless Chromium driven by Playwright.

One server (SQLite, embedded broker) serves the whole suite: starting it costs seconds
and each test works on its own list, issue or person.  Chromium is Debian's
(/usr/bin/chromium; Playwright's browser download is not used).  Without it the suite is
skipped, unless CITYMAIL_REQUIRE_SERVICES=1 (set by .ci/run) makes that a failure.

CITYMAIL_SCREENSHOTS=1 saves the main pages to docs/screenshots/ (shown in the README).
"""

from __future__ import annotations

import os
import shutil
import smtplib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from helpers import ROOT, Received, Server, Sink, base_env
from playwright.sync_api import Browser, Locator, Page

from citymail import admin
from mailer.db import make_engine, writing
from mailer.league import load_league
from mailer.settings import Settings, load_settings
from mailer.welcome import join
from newsletters.feedstore import add_feed
from web.users import create_user

PASSWORD = "a long browser test password"
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = ("/usr/bin/chromium", "chromium", "chromium-browser")

# Feed content is hostile: the editor and its preview must never run any of this.
HOSTILE_FEED = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>City news</title>
<link>https://news.example/</link>
<item><guid>n1</guid><title>Housing bill passes</title><link>https://news.example/housing</link>
<description>&lt;p&gt;The &lt;b&gt;housing&lt;/b&gt; bill passed.&lt;/p&gt;</description></item>
<item><guid>n2</guid><title>&lt;img src=x onerror=alert(1)&gt;Water rates</title>
<link>javascript:alert(2)</link>
<description>&lt;p onclick="alert(3)"&gt;Rates rise.&lt;/p&gt;&lt;script&gt;alert(4)&lt;/script&gt;
&lt;img src="x" onerror="alert(5)"&gt;&lt;a href="javascript:alert(6)"&gt;more&lt;/a&gt;
&lt;svg onload="alert(7)"&gt;&lt;/svg&gt;
&lt;iframe src="javascript:alert(8)"&gt;&lt;/iframe&gt;</description>
</item></channel></rss>"""

# Every member is subscribed to both newsletters; the role adds a list.
MEMBERS = {"ann@example.org": ("Ann Lee", "Davis", "City Clerk"),
           "bob@example.net": ("Bob Brown", "Eureka", "City Clerk"),
           "cy@example.com": ("Cy Young", "Chico", "Fire Chief")}
STAFF: dict[str, dict[str, Any]] = {"editor@cacities.org": {"is_editor": True},
                                   "moderator@cacities.org": {"moderates": ["city-clerks"]},
                                   "admin@cacities.org": {"is_admin": True}}


def chromium_path() -> str | None:
    for name in CHROMIUM:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Site:
    env: dict[str, str]
    url: str
    sink: Sink
    server: Server

    @property
    def settings(self) -> Settings:
        return load_settings(self.env)

    def post(self, sender: str, to: str, subject: str, body: str = "Hello.\r\n") -> None:
        """A message to the gateway over SMTP, as a mail client sends it."""
        msg = (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
               f"Message-ID: <{time.monotonic_ns()}@example.org>\r\n\r\n{body}")
        with smtplib.SMTP("127.0.0.1", self.server.port, timeout=30) as smtp:
            smtp.sendmail(sender, [to], msg.encode())

    def wait_for(self, subject: str, count: int, timeout: float = 30) -> list[Received]:
        """The copies with ``subject`` that reached the sink, once there are ``count``."""
        deadline = time.monotonic() + timeout
        while True:
            got = [m for m in self.sink.messages if m.message["Subject"] == subject]
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.1)


class _Feed(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(HOSTILE_FEED)))
        self.end_headers()
        self.wfile.write(HOSTILE_FEED)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def feed_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Feed)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/feed.xml"
    server.shutdown()
    server.server_close()


def _populate(env: dict[str, str], feed_url: str) -> None:
    """Members, staff accounts and a newsletter feed (the server's clock polls it), written
    in-process: starting a command costs a second or two each."""
    settings = load_settings(env)
    admin.init(settings)
    engine = make_engine(settings)
    try:
        with writing(engine) as conn:
            for email, (name, city, role) in MEMBERS.items():
                join(conn, settings, load_league(), email=email, name=name, city=city,
                     role=role, welcome=False)
            for email, roles in STAFF.items():
                create_user(conn, email, PASSWORD, **roles)
            add_feed(conn, "advocate", feed_url)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory, feed_url: str) -> Iterator[Site]:
    sink = Sink().start()
    env = base_env(tmp_path_factory.mktemp("browser"), CITYMAIL_RELAY_URL=sink.url)
    _populate(env, feed_url)
    server = Server(env).start()
    url = env["CITYMAIL_BASE_URL"]
    try:
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/healthz").status_code != 200:
            if time.monotonic() > deadline:
                raise AssertionError(f"the web server did not answer:\n{server.output()}")
            time.sleep(0.2)
        yield Site(env, url, sink, server)
    finally:
        server.stop()
        sink.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    if path is None:
        reason = "Chromium is not installed (apt-get install chromium)"
        if os.environ.get("CITYMAIL_REQUIRE_SERVICES") == "1":
            pytest.fail(reason + " and CITYMAIL_REQUIRE_SERVICES=1")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, site: Site) -> Iterator[Page]:
    """A fresh browser profile (no cookies); any dialog (alert) fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=site.url)
    tab = context.new_page()
    dialogs: list[str] = []

    def dismiss(dialog: object) -> None:
        dialogs.append(dialog.message)  # type: ignore[attr-defined]
        dialog.dismiss()  # type: ignore[attr-defined]

    tab.on("dialog", dismiss)
    yield tab
    context.close()
    assert dialogs == [], f"a script ran and opened a dialog: {dialogs}"


def shoot(target: Page | Locator, name: str) -> None:
    """Save a screenshot to docs/screenshots/NAME.png when CITYMAIL_SCREENSHOTS=1."""
    if os.environ.get("CITYMAIL_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = str(SCREENSHOTS / f"{name}.png")
    if isinstance(target, Page):
        target.screenshot(path=path, full_page=True)
    else:
        target.screenshot(path=path)


def sign_in(page: Page, email: str, *, next_path: str = "/") -> None:
    """Sign in at /login as a staff member, the way a person does."""
    page.goto(f"/login?next={next_path}")
    page.fill('input[name="email"]', email)
    page.fill('input[name="password"]', PASSWORD)
    page.locator('main button[type="submit"]').click()
    page.wait_for_load_state()
