"""Moderation and email commands over real SMTP: ``citymail serve`` and a real relay sink.

A non-member's post is held; the moderator acts by replying to the notice that reaches the
sink; the approved post reaches every subscriber exactly once; a rejection reaches the
authenticated poster; a forged token decides nothing; a non-member joins with a confirmation
round trip; a member leaves by mail.  SQLite with the embedded broker.
"""

from __future__ import annotations

import json
import smtplib
import time
import warnings
from collections.abc import Callable, Iterator

import pytest
from helpers import Received, Server, Sink, base_env, cli, grant_list_role
from sqlalchemy import select

from mailer.db import make_engine, reading, writing
from mailer.league import load_league
from mailer.models import Held, MailingList, Member, Subscription
from mailer.people import add_member
from mailer.settings import load_settings

DOMAIN = "lists.cacities.org"
LIST = f"city-clerks@{DOMAIN}"
SUBSCRIBERS = ["alice@example.org", "bob@example.net", "carol@example.com"]
MODERATOR = "mod@example.org"
OUTSIDER = "outsider@example.com"


def send(port: int, sender: str, rcpt: str, body: str, *, subject: str = "x",
         auth: bool = False) -> None:
    head = f"Authentication-Results: mx.test; dmarc=pass header.from={sender.split('@')[1]}\r\n"
    msg = (f"{head if auth else ''}From: {sender}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{time.monotonic_ns()}@example.org>\r\n"
           f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail(sender, [rcpt], msg.encode())


def wait_for(sink: Sink, want: Callable[[Received], bool], *, count: int = 1,
             timeout: float = 20.0) -> list[Received]:
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in sink.messages if want(m)]
        if len(found) >= count or time.monotonic() > deadline:
            seen = [(m.rcpt_tos, m.message["Subject"]) for m in sink.messages]
            assert len(found) >= count, f"waited {timeout}s; the sink has: {seen}"
            return found
        time.sleep(0.05)


def to(address: str, subject_part: str) -> Callable[[Received], bool]:
    return lambda m: address in m.rcpt_tos and subject_part in str(m.message["Subject"])


def held_states(env: dict[str, str]) -> list[tuple[int, str]]:
    engine = make_engine(load_settings(env))
    with reading(engine) as conn:
        rows = [(r.id, r.state) for r in conn.execute(select(Held.id, Held.state)
                                                      .order_by(Held.id))]
    engine.dispose()
    return rows


def subscription(env: dict[str, str], email: str) -> tuple[str, str, str] | None:
    engine = make_engine(load_settings(env))
    with reading(engine) as conn:
        row = conn.execute(select(Subscription.status, Subscription.mode, Subscription.source)
                           .join(Member, Member.id == Subscription.member_id)
                           .join(MailingList, MailingList.id == Subscription.list_id)
                           .where(Member.email == email, MailingList.name == "city-clerks")
                           ).first()
    engine.dispose()
    return None if row is None else (row.status, row.mode, row.source)


@pytest.fixture(scope="module")
def relay() -> Iterator[Sink]:
    sink = Sink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, relay: Sink) -> Iterator[dict[str, str]]:
    """One initialised database, three subscribers and a moderator, for the whole module."""
    env = base_env(tmp_path_factory.mktemp("moderation"), CITYMAIL_RELAY_URL=relay.url,
                   CITYMAIL_WORKER_LEASE="2", CITYMAIL_TRUSTED_AUTHSERV_IDS="mx.test",
                   CITYMAIL_VERIFY_DKIM="0", CITYMAIL_WORKER_THREADS="2")
    cli(env, "init")
    engine = make_engine(load_settings(env))
    with warnings.catch_warnings(), writing(engine) as conn:
        # mailer.people still calls Result.tuples(), deprecated in SQLAlchemy 2.1.
        warnings.simplefilter("ignore", DeprecationWarning)
        for address in SUBSCRIBERS:
            add_member(conn, load_league(), email=address, name=address.split("@")[0],
                       city="Sacramento", role="City Clerk")
    engine.dispose()
    grant_list_role(env, "city-clerks", MODERATOR, "moderator")
    yield env


@pytest.fixture(scope="module")
def server(env: dict[str, str]) -> Iterator[Server]:
    server = Server(env).start()
    yield server
    server.stop()


@pytest.fixture
def sink(relay: Sink) -> Sink:
    with relay.handler.cond:
        relay.handler.messages.clear()
    return relay


def test_moderation_by_reply_over_smtp(env: dict[str, str], server: Server,
                                       sink: Sink) -> None:
    port = server.port
    send(port, OUTSIDER, LIST, "Join us on Friday.", subject="Budget workshop", auth=True)
    [first] = wait_for(sink, to(MODERATOR, "Budget workshop"))
    wait_for(sink, to(OUTSIDER, "awaits a moderator"))
    send(port, OUTSIDER, LIST, "Again.", subject="Second try", auth=True)
    [second] = wait_for(sink, to(MODERATOR, "Second try"))
    send(port, "mallory@evil.example", LIST, "approve\nBuy now", subject="Spam")
    [third] = wait_for(sink, to(MODERATOR, "Spam"))

    # A guessed token is refused: nothing is decided.
    token = str(third.message["Reply-To"]).partition("+")[2].partition("@")[0]
    kind_id, expiry, _mac = token.split("-")
    send(port, "mallory@evil.example", f"city-clerks-confirm+{kind_id}-{expiry}-"
         f"{'q' * 13}@{DOMAIN}", "approve")
    wait_for(sink, to("mallory@evil.example", "confirmation not accepted"))

    # The moderator replies "approve" to the first notice, quoting it.
    quoted = "\n".join(f"> {line}" for line in first.message.get_content().splitlines())
    send(port, MODERATOR, str(first.message["Reply-To"]), f"approve\n\n{quoted}",
         subject=f"Re: {first.message['Subject']}")
    copies = wait_for(sink, lambda m: m.message["Subject"] == "[City Clerks] Budget workshop",
                      count=len(SUBSCRIBERS))
    # "reject REASON" to the second one reaches the authenticated poster.
    send(port, MODERATOR, str(second.message["Reply-To"]),
         "reject Please ask on the PIO list instead.", subject="Re: held")
    [rejection] = wait_for(sink, to(OUTSIDER, "was not accepted"))
    # A second decision on the approved post changes nothing.
    send(port, MODERATOR, str(first.message["Reply-To"]), "approve", subject="Re: held")
    wait_for(sink, to(MODERATOR, "nothing to do"))
    time.sleep(1.0)  # a duplicate would arrive now
    copies = [m for m in sink.messages
              if m.message["Subject"] == "[City Clerks] Budget workshop"]
    held = json.loads(cli(env, "moderation", "list", "--json").stdout)
    assert sorted(r for m in copies for r in m.rcpt_tos) == sorted(SUBSCRIBERS)
    assert "Please ask on the PIO list instead." in rejection.message.get_content()
    assert [h["subject"] for h in held] == ["Spam"]  # the forged approval decided nothing
    assert not any("Spam" in str(m.message["Subject"]) and m.rcpt_tos[0] in SUBSCRIBERS
                   for m in sink.messages)
    for m in sink.messages:  # everything citymail wrote itself is marked (RFC 3834)
        if m not in copies:
            assert m.message["Auto-Submitted"] in ("auto-generated", "auto-replied")
    assert "Join us on Friday." in copies[0].message.get_content()
    assert "| Join us on Friday." in first.message.get_content()  # the safe excerpt
    cli(env, "moderation", "discard", str(held[0]["id"]))
    assert [state for _, state in held_states(env)] == ["approved", "rejected", "discarded"]


def test_join_confirm_and_leave_by_mail(env: dict[str, str], server: Server,
                                        sink: Sink) -> None:
    port = server.port
    send(port, "newbie@example.net", f"city-clerks-join@{DOMAIN}", "")
    [confirm] = wait_for(sink, to("newbie@example.net", "please confirm"))
    send(port, "newbie@example.net", str(confirm.message["Reply-To"]), "Yes please",
         subject=f"Re: {confirm.message['Subject']}")
    wait_for(sink, to("newbie@example.net", "Welcome"))
    send(port, "alice@example.org", f"city-clerks-request@{DOMAIN}", "unsubscribe\n-- \nA",
         auth=True, subject="Re: [City Clerks] budget")
    [goodbye] = wait_for(sink, to("alice@example.org", "results of your commands"))
    assert subscription(env, "newbie@example.net") == ("active", "regular", "self")
    assert subscription(env, "alice@example.org")[0] == "left"
    assert confirm.message["Auto-Submitted"] == "auto-replied"
    assert "You have left City Clerks department" in goodbye.message.get_content()
    assert goodbye.mail_from == f"city-clerks-bounces@{DOMAIN}"
