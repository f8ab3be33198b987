"""Bounces over real SMTP: a member's mailbox keeps rejecting list mail until delivery stops.

``citymail serve`` with a real relay sink.  A post reaches Alice with a VERP envelope
sender; her mail system answers with a DSN to that address, on five different days; the
fifth disables her delivery: the owners hear of it, she gets a warning with a re-enable
link, and the next post skips her.  SQLite with the embedded broker.

Days are simulated by moving the recorded history into the past, not by changing the
server's clock: after each DSN is processed, its ``bounce_events`` row is moved back one
day.  Scoring reads only event times and "now", so that is exactly five bouncing days.
"""

from __future__ import annotations

import datetime as dt
import http.cookiejar
import json
import re
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import Received, Server, Sink, base_env, cli, grant_list_role
from sqlalchemy import Engine, select, update

from mailer.db import make_engine, reading, writing
from mailer.models_bounces import BounceEvent
from mailer.settings import load_settings

DOMAIN = "lists.cacities.org"
LIST = f"city-clerks@{DOMAIN}"
ALICE = "alice@example.org"
BOB = "bob@example.net"
OWNER = "owner@cacities.org"


def post(port: int, sender: str, subject: str) -> None:
    msg = (f"From: {sender}\r\nTo: {LIST}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{time.monotonic_ns()}@example.net>\r\n\r\nHello clerks.\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail(sender, [LIST], msg.encode())


def dsn(verp_address: str, recipient: str, n: int) -> bytes:
    """What Alice's mail system sends back: an RFC 3464 report, to the VERP address."""
    return (
        f"From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n"
        f"To: {verp_address}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <dsn-{n}-{time.monotonic_ns()}@mx.example.org>\r\n"
        f"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="R"\r\n'
        f"\r\n--R\r\nContent-Type: text/plain\r\n\r\n"
        f"This is the mail system at host mx.example.org.\r\n\r\n"
        f"I'm sorry to have to inform you that your message could not\r\n"
        f"be delivered to one or more recipients.\r\n"
        f"\r\n--R\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example.org\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\n"
        f"Action: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected:\r\n"
        f"    User unknown in virtual mailbox table\r\n"
        f"\r\n--R\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: {BOB}\r\nTo: {LIST}\r\nSubject: [City Clerks] Agenda\r\n"
        f"\r\n--R--\r\n"
    ).encode()


def wait_for(sink: Sink, want: Callable[[Received], bool], *, count: int = 1,
             timeout: float = 20.0) -> list[Received]:
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in sink.messages if want(m)]
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) >= count, (
                f"waited {timeout}s; the sink has: "
                f"{[(m.rcpt_tos, m.message['Subject']) for m in sink.messages]}")
            return found
        time.sleep(0.05)


def to(address: str, subject_part: str) -> Callable[[Received], bool]:
    return lambda m: address in m.rcpt_tos and subject_part in str(m.message["Subject"])


def wait_for_events(engine: Engine, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with reading(engine) as conn:
            if len(conn.execute(select(BounceEvent.id)).all()) >= count:
                return
        time.sleep(0.05)
    raise AssertionError(f"bounce {count} was not recorded within {timeout}s: is the bounces "
                         "role wired to mailer.bounce_events (plan_bounce / apply_bounce)?")


def move_history_back_one_day(engine: Engine) -> None:
    with writing(engine) as conn:
        rows = conn.execute(select(BounceEvent.id, BounceEvent.occurred_at)).all()
        for row in rows:
            conn.execute(update(BounceEvent).where(BounceEvent.id == row.id)
                         .values(occurred_at=row.occurred_at - dt.timedelta(days=1)))


@pytest.fixture
def env(tmp_path: Path, sink: Sink) -> Iterator[dict[str, str]]:
    env = base_env(tmp_path, CITYMAIL_RELAY_URL=sink.url, CITYMAIL_WORKER_LEASE="3",
                   CITYMAIL_WORKER_THREADS="2")
    cli(env, "init")
    for address in (ALICE, BOB):
        cli(env, "members", "add", address, "--name", address.split("@")[0].title(),
            "--city", "Sacramento", "--role", "City Clerk")
    grant_list_role(env, "city-clerks", OWNER, "owner")
    yield env


def test_five_days_of_bounces_disable_delivery_and_the_owners_are_told(
        env: dict[str, str], sink: Sink) -> None:
    engine = make_engine(load_settings(env))
    server = Server(env).start()
    try:
        port = server.port
        post(port, BOB, "Agenda")
        [copy] = wait_for(sink, to(ALICE, "Agenda"))
        verp = copy.mail_from
        assert verp.startswith("city-clerks-bounces+") and verp.endswith(f"@{DOMAIN}")

        for n in range(5):
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
                smtp.sendmail("", [verp], dsn(verp, ALICE, n))
            wait_for_events(engine, n + 1)
            if n < 4:
                move_history_back_one_day(engine)

        [owner_notice] = wait_for(sink, to(OWNER, "paused after bounces"))
        [warning] = wait_for(sink, to(ALICE, "is paused (notice 1 of 3)"))
        assert ALICE in owner_notice.message.get_content()
        assert "/r/" in warning.message.get_content()
        assert warning.mail_from == f"city-clerks-bounces@{DOMAIN}"

        post(port, BOB, "Minutes")
        wait_for(sink, to(BOB, "Minutes"))
        time.sleep(1.0)  # a copy to Alice would have arrived by now
        assert not [m for m in sink.messages if to(ALICE, "Minutes")(m)]

        shown = json.loads(cli(env, "bounces", "show", ALICE, "--json").stdout)
        text = cli(env, "bounces", "show", ALICE).stdout

        # The warning's re-enable link: a GET (what link scanners do) changes nothing,
        # the page's POST turns delivery back on.
        link = re.search(r"https?://\S+/r/\S+", warning.message.get_content()).group(0)
        browser = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        with browser.open(link, timeout=10) as page:
            html = page.read()
        assert b"Turn delivery back on" in html
        still = json.loads(cli(env, "bounces", "show", ALICE, "--json").stdout)
        assert {s["name"]: s["delivery_status"] for s in still["subscriptions"]}[
            "city-clerks"] == "disabled_bounce"
        token = re.search(rb'name="csrf_token" value="([^"]+)"', html).group(1)
        request = urllib.request.Request(link, data=b"csrf_token=" + token, method="POST")
        with browser.open(request, timeout=10) as page:
            assert b"Delivery is back on" in page.read()
        post(port, BOB, "Budget")
        wait_for(sink, to(ALICE, "Budget"))
        forged = link[:-3] + ("aaa" if not link.endswith("aaa") else "bbb")
        # With a valid session and CSRF token, so that only the link itself is judged.
        request = urllib.request.Request(forged, data=b"csrf_token=" + token, method="POST")
        try:
            browser.open(request, timeout=10)
            raise AssertionError("a forged re-enable link was accepted")
        except urllib.error.HTTPError as exc:
            assert exc.code == 400
    finally:
        server.stop()
        engine.dispose()

    [clerks] = [s for s in shown["subscriptions"] if s["name"] == "city-clerks"]
    assert clerks["status"] == "active"
    assert (clerks["delivery_status"], clerks["score"], clerks["warnings_sent"]) == (
        "disabled_bounce", 5.0, 1)
    assert clerks["next_action"]["action"] == "warn"
    assert clerks["next_action"]["number"] == 2
    others = [s for s in shown["subscriptions"] if s["name"] != "city-clerks"]
    assert others and {s["delivery_status"] for s in others} == {"enabled"}
    assert [(e["kind"], e["status"], e["points"], e["list"]) for e in shown["events"]] == [
        ("permanent", "5.1.1", 1.0, "city-clerks")] * 5
    assert len({e["date"] for e in shown["events"]}) == 5
    assert "User unknown" in shown["events"][0]["diagnostic"]
    assert "disabled_bounce" in text and "warning 2 of 3" in text
