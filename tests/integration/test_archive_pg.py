"""The list archive on PostgreSQL: the migration's tsvector + GIN index, phrase search
through websearch_to_tsquery, import and threading, and a real post's Archived-At over
real SMTP and HTTP, each on a database of its own."""

from __future__ import annotations

import datetime as dt
import re
import smtplib
import time
from pathlib import Path

import httpx
import pytest
from helpers import Server, Sink, base_env, cli
from sqlalchemy import text

from listservs import archive_query as q
from listservs.archive_mbox import mbox_message
from listservs.archive_search import MARK_END, MARK_START, search
from listservs.archive_store import import_mbox
from mailer import schema
from mailer.db import make_engine, reading, writing
from mailer.league import load_league, seed_lists
from mailer.mailman_import import import_mailman
from mailer.settings import load_settings
from mailer.tokens import sign

pytestmark = pytest.mark.filterwarnings("ignore:The Result.tuples:DeprecationWarning")


def _message(mid: str, subject: str, body: str, day: int, reply_to: str = "") -> bytes:
    refs = f"In-Reply-To: {reply_to}\nReferences: {reply_to}\n" if reply_to else ""
    return (f"From: Clerk <clerk{day}@example.org>\nSubject: {subject}\n"
            f"Date: Mon, {day:02d} Jan 2025 09:00:00 -0800\nMessage-ID: {mid}\n{refs}\n"
            f"{body}\n").encode()


def test_phrase_search_threads_and_idempotent_import_on_postgresql(
        postgres_url: str, tmp_path: Path) -> None:
    settings = load_settings({"CITYMAIL_DATABASE_URL": postgres_url,
                              "CITYMAIL_VAR_DIR": str(tmp_path / "var"),
                              "CITYMAIL_SECRET_KEY": "test-secret-key-0123456789abcdef"})
    engine = make_engine(settings)
    try:
        schema.upgrade(engine)
        with writing(engine) as conn:
            seed_lists(conn, load_league())
        messages = [
            _message("<a@example.org>", "Consent calendar deadlines",
                     "The consent calendar closes Friday at noon.", 6),
            _message("<b@example.org>", "Re: Consent calendar deadlines", "Thanks!", 7,
                     reply_to="<a@example.org>"),
            _message("<c@example.org>", "Calendar of events",
                     "Our calendar lists no consent items <script>x</script>.", 8),
        ]
        when = dt.datetime(2025, 1, 6, tzinfo=dt.UTC)
        data = b"".join(mbox_message(m, sender="clerk@example.org", when=when)
                        for m in messages)
        first = import_mbox(engine, "city-clerks", data, domain=settings.list_domain)
        again = import_mbox(engine, "city-clerks", data, domain=settings.list_domain)
        assert (first.imported, again.imported, again.already) == (3, 0, 3)
        with reading(engine) as conn:
            index = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = "
                                      "'ix_archive_messages_search'")).scalar_one()
            assert "gin" in index.lower()
            list_id = q.archive_list(conn, "city-clerks").id
            phrase = search(conn, list_id, '"consent calendar"')
            words = search(conn, list_id, "consent calendar")
            excluded = search(conn, list_id, "calendar -events")
            assert search(conn, list_id, '"') == []
            posts = q.month_posts(conn, list_id, "2025-01", settings.zone)
        assert [h.subject for h in phrase] == ["Consent calendar deadlines",
                                               "Re: Consent calendar deadlines"]
        assert f"{MARK_START}consent{MARK_END}" in phrase[0].snippet.lower()
        assert {h.subject for h in words} == {"Consent calendar deadlines",
                                              "Re: Consent calendar deadlines",
                                              "Calendar of events"}
        assert words[0].subject == "Consent calendar deadlines"  # ranked first
        assert "Calendar of events" not in [h.subject for h in excluded]
        assert [p.refs for p in posts] == [(), ("<a@example.org>",), ()]
    finally:
        engine.dispose()


def test_archived_at_of_a_real_post_opens_its_page_for_a_signed_in_member(
        postgres_url: str, tmp_path: Path, sink: Sink) -> None:
    env = base_env(tmp_path, CITYMAIL_RELAY_URL=sink.url, CITYMAIL_DATABASE_URL=postgres_url)
    cli(env, "init")
    cli(env, "members", "add", "alice@example.org", "--name", "Alice", "--city", "Sacramento",
        "--role", "City Clerk", "--no-welcome")
    server = Server(env).start()
    try:
        msg = ("From: Alice <alice@example.org>\r\nTo: city-clerks@lists.cacities.org\r\n"
               "Subject: Agenda deadlines\r\nMessage-ID: <deadlines@example.org>\r\n\r\n"
               "Our agendas close on Tuesdays at noon.\r\n")
        with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as smtp:
            smtp.sendmail("alice@example.org", ["city-clerks@lists.cacities.org"], msg.encode())
        copy = sink.wait_for(1)[0].message
        url = str(copy["Archived-At"]).strip("<>")
        with httpx.Client(timeout=30) as http:
            assert http.get(url).status_code == 303  # not signed in: the sign-in page
            token = sign(env["CITYMAIL_SECRET_KEY"].encode(), "member-signin",
                         "alice@example.org", "", expires=int(time.time()) + 600)
            page = http.get(f"{env['CITYMAIL_BASE_URL']}/signin/{token}").text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
            http.post(f"{env['CITYMAIL_BASE_URL']}/signin/{token}",
                      data={"csrf_token": csrf.group(1)} if csrf else {})
            got = http.get(url, follow_redirects=True)
            assert got.status_code == 200
            assert "Our agendas close on Tuesdays at noon." in got.text
            found = http.get(f"{env['CITYMAIL_BASE_URL']}/lists/city-clerks/archive/search",
                             params={"q": '"tuesdays at noon"'})
            assert "Agenda deadlines" in found.text
    finally:
        server.stop()


def test_import_mailman_on_postgresql_keeps_opt_outs_as_left(postgres_url: str,
                                                             tmp_path: Path) -> None:
    settings = load_settings({"CITYMAIL_DATABASE_URL": postgres_url,
                              "CITYMAIL_VAR_DIR": str(tmp_path / "var"),
                              "CITYMAIL_SECRET_KEY": "test-secret-key-0123456789abcdef"})
    engine = make_engine(settings)
    try:
        schema.upgrade(engine)
        with writing(engine) as conn:
            seed_lists(conn, load_league())
        data = b"[regular]\nRita <rita@example.org>\n[left]\numa@example.org\n"
        result = import_mailman(engine, settings, "city-clerks", data, welcome=True)
        assert result.applied and result.welcomes == 1
        with reading(engine) as conn:
            rows = dict(conn.execute(text(
                "SELECT m.email, s.status FROM subscriptions s JOIN members m "
                "ON m.id = s.member_id")).all())
            conn.execute(text("SELECT nextval(pg_get_serial_sequence('members', 'id'))"))
        assert rows == {"rita@example.org": "active", "uma@example.org": "left"}
        again = import_mailman(engine, settings, "city-clerks",
                               b"[regular]\numa@example.org\n", welcome=False)
        assert [e.email for e in again.plan.kept_out] == ["uma@example.org"]
    finally:
        engine.dispose()
