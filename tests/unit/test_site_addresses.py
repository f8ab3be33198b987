"""citymail-owner@ and citymail-bounces@ (the From and envelope of every notice) take mail.

Over real SMTP: the gateway of a running ``citymail serve`` and a sink as the relay.
"""

from __future__ import annotations

import dataclasses
import smtplib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Server, Sink, base_env
from sqlalchemy import insert

from citymail import admin
from listservs.site_mail import site_owners
from mailer.addresses import SITE, AddressTable, Rejection, Target
from mailer.db import reading, writing
from mailer.models_web import WebUser
from mailer.settings import load_settings

DOMAIN = "lists.cacities.org"
REPLY = (b"From: Kim Lee <kim@fresno.ca.gov>\r\nTo: citymail-owner@lists.cacities.org\r\n"
         b"Subject: Re: Welcome to the League of California Cities mailing lists\r\n"
         b"Message-ID: <reply-1@fresno.ca.gov>\r\n\r\nPlease also add me to Fire Chiefs.\r\n")
VACATION = (b"From: Kim Lee <kim@fresno.ca.gov>\r\nTo: citymail-owner@lists.cacities.org\r\n"
            b"Subject: Out of office\r\nAuto-Submitted: auto-replied\r\n"
            b"Message-ID: <ooo-1@fresno.ca.gov>\r\n\r\nBack on Monday.\r\n")
DSN = (b"From: Mail Delivery System <MAILER-DAEMON@mx.fresno.ca.gov>\r\n"
       b"To: citymail-bounces@lists.cacities.org\r\nSubject: Undelivered Mail\r\n"
       b"MIME-Version: 1.0\r\n"
       b'Content-Type: multipart/report; report-type=delivery-status; boundary="R"\r\n\r\n'
       b"--R\r\nContent-Type: text/plain\r\n\r\nYour welcome message could not be "
       b"delivered.\r\n--R\r\nContent-Type: message/delivery-status\r\n\r\n"
       b"Reporting-MTA: dns; mx.fresno.ca.gov\r\n\r\n"
       b"Final-Recipient: rfc822; gone@fresno.ca.gov\r\nAction: failed\r\n"
       b"Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\r\n--R--\r\n")


def test_the_address_table_knows_the_site_addresses() -> None:
    table = AddressTable(DOMAIN, [("city-clerks", "list")])
    assert table.resolve(f"citymail-owner@{DOMAIN}") == Target(SITE, "owner")
    assert table.resolve(f"CityMail-Bounces+x9z@{DOMAIN}") == Target(SITE, "bounces", "x9z")
    assert table.resolve(f"citymail-bounces@{DOMAIN}") == Target(SITE, "bounces")
    for refused in ("citymail-owner+x", "citymail", "citymail-request", "citymail-join"):
        assert isinstance(table.resolve(f"{refused}@{DOMAIN}"), Rejection)
    assert Target(SITE, "owner").address(DOMAIN) == f"citymail-owner@{DOMAIN}"


@pytest.fixture
def sink() -> Iterator[Sink]:
    relay = Sink().start()
    yield relay
    relay.stop()


def rows(env: dict[str, str], sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(env["CITYMAIL_DATABASE_URL"].removeprefix("sqlite:///"))
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_site_owner_mail_reaches_the_admins_and_bounces_reach_intake(
        tmp_path: Path, sink: Sink) -> None:
    env = base_env(tmp_path, CITYMAIL_RELAY_URL=sink.url,
                   CITYMAIL_SITE_OWNERS="it@cacities.org,clerk@cacities.org")
    admin.init(load_settings(env))
    server = Server(env).start()
    try:
        with smtplib.SMTP("127.0.0.1", server.port) as smtp:
            smtp.ehlo()
            code, _ = smtp.docmd("MAIL FROM:<probe@fresno.ca.gov>")
            assert code == 250
            assert smtp.docmd(f"RCPT TO:<citymail-nobody@{DOMAIN}>")[0] == 550
            smtp.rset()
            smtp.sendmail("kim@fresno.ca.gov", [f"citymail-owner@{DOMAIN}"], REPLY)
            smtp.sendmail("kim@fresno.ca.gov", [f"citymail-owner@{DOMAIN}"], VACATION)
            smtp.sendmail("", [f"citymail-bounces@{DOMAIN}"], DSN)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and rows(
                env, "SELECT count(*) FROM inbound WHERE state = 'received'")[0][0]:
            time.sleep(0.1)
        got = sink.wait_for(1)
        time.sleep(0.5)  # a forward of the auto-reply would arrive by now
        got = sink.messages
    finally:
        server.stop()

    assert sorted(r for m in got for r in m.rcpt_tos) == ["clerk@cacities.org",
                                                          "it@cacities.org"]
    forwarded = got[0]
    assert forwarded.mail_from == f"citymail-bounces@{DOMAIN}"  # which never forwards
    assert forwarded.data.startswith(f"Delivered-To: citymail-owner@{DOMAIN}\r\n".encode())
    assert REPLY in forwarded.data  # unchanged
    assert not any(b"Out of office" in m.data for m in got)
    intake = rows(env, "SELECT list_id, source, outcome, detail FROM bounce_intake")
    assert intake == [(None, "plain", "unmatched",
                       "site notice permanent: gone@fresno.ca.gov")]
    notes = [r[0] for r in rows(env, "SELECT error FROM inbound ORDER BY id")]
    assert notes == [None, None, None]  # nothing failed


def test_without_site_owners_set_the_web_admins_get_it(settings, engine) -> None:
    with writing(engine) as conn:
        for row in ({"email": "it@cacities.org", "is_admin": True, "disabled": False},
                    {"email": "gone@cacities.org", "is_admin": True, "disabled": True},
                    {"email": "editor@cacities.org", "is_admin": False, "disabled": False}):
            conn.execute(insert(WebUser).values(password_hash="x", **row))
    with reading(engine) as conn:
        assert site_owners(conn, settings) == ("it@cacities.org",)
        named = dataclasses.replace(settings, site_owners=("clerk@cacities.org",))
        assert site_owners(conn, named) == ("clerk@cacities.org",)
