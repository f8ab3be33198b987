"""A new member hears what they joined and how to leave each; the welcome really arrives."""

from __future__ import annotations

import time
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from helpers import Server, Sink, base_env, cli
from sqlalchemy import Engine, func, select

from citymail import admin
from mailer.db import writing
from mailer.league import load_league
from mailer.models import Delivery, Outbound
from mailer.notices import build_notice
from mailer.settings import Settings, load_settings
from mailer.tokens import unsign
from mailer.welcome import ListRef, WelcomeWriter, join

LISTS = [ListRef(16, "advocate", "newsletter", "Cal Cities Advocate", "Weekly news.", "weekly"),
         ListRef(17, "western-city", "newsletter", "Western City", "", "monthly"),
         ListRef(2, "city-clerks", "list", "City Clerks department"),
         ListRef(15, "legislative-alerts", "list", "Legislative Alerts", announce_only=True)]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = load_settings(base_env(tmp_path))
    admin.init(settings)
    return settings


def welcome_text(settings: Settings, **person: str) -> tuple[str, str]:
    data = WelcomeWriter(settings).message(member_id=7, lists=LISTS, **person).data
    msg = message_from_bytes(data, policy=policy.default)
    return str(msg["Subject"]), msg.get_content().replace("\r\n", "\n")  # type: ignore[attr-defined]


def test_welcome_names_each_list_with_its_own_leave_link_and_address(settings) -> None:
    subject, text = welcome_text(settings, email="kim@fresno.ca.gov", name="Kim Núñez",
                                 role="City Clerk", city="Fresno")
    assert subject == "Welcome to the League of California Cities mailing lists"
    assert text.startswith("Hello Kim Núñez,\n\nYou have been added to the League of "
                           "California Cities mailing lists as\nkim@fresno.ca.gov "
                           "(City Clerk, Fresno).\n")
    for ref in LISTS:
        assert f"* {ref.display_name}" in text
        assert f"send an empty message to {ref.name}-leave@lists.cacities.org" in text
    links = [line.split("open ", 1)[1] for line in text.splitlines() if " open " in line]
    tokens = [link.removeprefix(f"{settings.base_url}/u/") for link in links]
    assert [unsign([settings.secret_key], "unsubscribe", t) for t in tokens] == [
        ["7", "16"], ["7", "17"], ["7", "2"], ["7", "15"]]
    assert "Write to the list at city-clerks@lists.cacities.org" in text
    assert "legislative-alerts@lists.cacities.org" not in text.replace("-leave@", "")
    assert "* Legislative Alerts (announcements only)" in text


def test_spliced_welcome_is_the_message_build_notice_would_make(settings) -> None:
    writer = WelcomeWriter(settings)
    ours = writer.message(member_id=7, email="kim@fresno.ca.gov", name="Kim Ñ", lists=LISTS)
    subject, text = welcome_text(settings, email="kim@fresno.ca.gov", name="Kim Ñ")
    theirs = build_notice(sender="citymail-owner@lists.cacities.org",
                          sender_name="League of California Cities", to="kim@fresno.ca.gov",
                          subject=subject, text=text, domain=settings.list_domain)
    a, b = (message_from_bytes(x, policy=policy.default) for x in (ours.data, theirs))
    assert sorted(k for k in a.keys()) == sorted(k for k in b.keys())  # noqa: SIM118
    for name in ("From", "To", "Subject", "Auto-Submitted", "Content-Type",
                 "Content-Transfer-Encoding", "MIME-Version"):
        assert a[name] == b[name], name
    assert a.get_content() == b.get_content()  # type: ignore[attr-defined]
    assert a["Message-ID"] != writer.message(member_id=7, email="kim@fresno.ca.gov",
                                             lists=LISTS).data  # a new id per message
    assert all(len(line) <= 78 for line in ours.data.split(b"\r\n"))


def count_welcomes(engine: Engine) -> int:
    with writing(engine) as conn:
        return int(conn.scalar(select(func.count()).select_from(Delivery)
                               .join(Outbound, Outbound.id == Delivery.outbound_id)
                               .where(Outbound.kind == "notice")) or 0)


def test_only_a_new_member_is_welcomed_and_no_welcome_suppresses_it(settings, engine) -> None:
    league = load_league()
    with writing(engine) as conn:
        first = join(conn, settings, league, email="Kim@Fresno.ca.gov", name="Kim",
                     city="Fresno", role="City Clerk")
        again = join(conn, settings, league, email="kim@fresno.ca.gov", role="Mayor")
        quiet = join(conn, settings, league, email="lee@fresno.ca.gov", name="Lee",
                     city="Fresno", role="Mayor", welcome=False)
    assert (first.created, again.created, quiet.created) == (True, False, True)
    assert again.subscribed == ("mayors-council-members",)
    assert count_welcomes(engine) == 1


def test_member_added_on_the_command_line_receives_one_welcome(tmp_path: Path,
                                                                sink: Sink) -> None:
    env = base_env(tmp_path, CITYMAIL_RELAY_URL=sink.url)
    admin.init(load_settings(env))
    added = cli(env, "members", "add", "kim@fresno.ca.gov", "--name", "Kim Lee", "--city",
                "Fresno", "--role", "City Clerk")
    quiet = cli(env, "members", "add", "moved@fresno.ca.gov", "--name", "Moved Here",
                "--city", "Fresno", "--role", "Mayor", "--no-welcome")
    assert "citymail: welcome message queued" in added.stdout
    assert "citymail: welcome message not sent (--no-welcome)" in quiet.stdout

    server = Server(env).start()
    try:
        got = sink.wait_for(1)
        time.sleep(0.5)  # a second copy, or a welcome for --no-welcome, would arrive now
        got = sink.messages
    finally:
        server.stop()

    assert len(got) == 1
    assert got[0].rcpt_tos == ["kim@fresno.ca.gov"]
    msg = got[0].message
    assert msg["Subject"] == "Welcome to the League of California Cities mailing lists"
    assert msg["From"] == "League of California Cities <citymail-owner@lists.cacities.org>"
    assert msg["To"] == "kim@fresno.ca.gov"
    text = msg.get_content()
    for name, display in (("advocate", "Cal Cities Advocate"), ("western-city", "Western City"),
                          ("city-clerks", "City Clerks department")):
        assert f"* {display}" in text
        assert f"{name}-leave@lists.cacities.org" in text
    assert text.count("/u/") == 3  # one leave link for each of the three
    assert "mayors-council-members" not in text
