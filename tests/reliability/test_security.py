"""Security: open-relay attempts (with swaks), forged VERP bounces, forged moderator
approvals, guessed unsubscribe and preference tokens.  Every forgery is refused and
changes nothing; each test also shows the genuine article working, so it can fail.
"""

from __future__ import annotations

import json
import smtplib
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from helpers import Received, Server, Sink, base_env, cli, grant_list_role
from helpers_reliability import need_tool, seed_members
from sqlalchemy import func, select

from mailer.db import make_engine, reading
from mailer.models import Held, Inbound
from mailer.models_bounces import BounceEvent
from mailer.preferences import preferences_url
from mailer.settings import load_settings
from mailer.tokens import base36

DOMAIN = "lists.cacities.org"
LIST = f"city-clerks@{DOMAIN}"
MODERATOR = "mod@example.org"
OUTSIDER = "outsider@example.com"


@pytest.fixture(scope="module")
def relay() -> Iterator[Sink]:
    sink = Sink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, relay: Sink) -> dict[str, str]:
    env = base_env(tmp_path_factory.mktemp("security"), CITYMAIL_RELAY_URL=relay.url,
                   CITYMAIL_TRUSTED_AUTHSERV_IDS="mx.test", CITYMAIL_VERIFY_DKIM="0",
                   CITYMAIL_WORKER_THREADS="2", CITYMAIL_WORKER_LEASE="3")
    cli(env, "init")
    seed_members(env, 3)
    grant_list_role(env, "city-clerks", MODERATOR, "moderator")
    return env


@pytest.fixture(scope="module")
def server(env: dict[str, str]) -> Iterator[Server]:
    server = Server(env).start()
    yield server
    server.stop()


MEMBERS = [f"m{i:04d}@city{i:03d}.example" for i in range(3)]


def send(port: int, sender: str, rcpt: str, body: str, *, subject: str = "x",
         head: str = "") -> None:
    msg = (f"{head}From: {sender}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{time.time_ns()}@example.org>\r\n\r\n{body}\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail(sender, [rcpt], msg.encode())


def wait_for(sink: Sink, want: Callable[[Received], bool], *, count: int = 1,
             timeout: float = 30.0) -> list[Received]:
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in sink.messages if want(m)]
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) >= count, [(m.rcpt_tos, m.message["Subject"])
                                         for m in sink.messages]
            return found
        time.sleep(0.05)


def subject_is(text: str) -> Callable[[Received], bool]:
    return lambda m: text in str(m.message["Subject"])


def settle(env: dict[str, str], timeout: float = 30.0) -> None:
    """Wait until the workers have processed every stored message."""
    engine = make_engine(load_settings(env))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with reading(engine) as conn:
                waiting = conn.execute(select(func.count()).select_from(Inbound)
                                       .where(Inbound.state == "received")).scalar_one()
            if not waiting:
                return
            time.sleep(0.1)
        raise AssertionError("inbound messages still unprocessed")
    finally:
        engine.dispose()


def count(env: dict[str, str], query) -> int:
    engine = make_engine(load_settings(env))
    try:
        with reading(engine) as conn:
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


# -- open relay -----------------------------------------------------------------------------
RELAY_TRICKS = [
    "victim@gmail.com",
    "victim%gmail.com@lists.cacities.org",
    "@lists.cacities.org:victim@gmail.com",
    '"victim@gmail.com"@lists.cacities.org',
    "victim@gmail.com@lists.cacities.org",
    "city-clerks@lists.cacities.org.evil.example",
    "city-clerks@[127.0.0.1]",
    "victim@gmail.com (city-clerks@lists.cacities.org)",
]


def swaks(port: int, to: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [need_tool("swaks"), "--server", f"127.0.0.1:{port}", "--from", "spammer@evil.example",
         "--to", to, "--timeout", "20", "--body", "buy now", *extra],
        capture_output=True, text=True, timeout=60)


def test_open_relay_attempts_with_swaks_are_refused(server: Server, relay: Sink) -> None:
    outcomes = {}
    for rcpt in RELAY_TRICKS:
        run = swaks(server.port, rcpt)
        rcpt_replies = [line for line in run.stdout.splitlines() if line.startswith("<** ")]
        outcomes[rcpt] = (run.returncode, rcpt_replies[:1])
    plain = outcomes["victim@gmail.com"]
    assert plain[0] != 0 and plain[1] and "550 5.7.1" in plain[1][0], plain
    for rcpt, (code, replies) in outcomes.items():
        assert code != 0 and replies and replies[0].startswith("<** 5"), (rcpt, code, replies)
    # The control: the same swaks, to the list, is accepted.
    accepted = swaks(server.port, LIST)
    assert accepted.returncode == 0, accepted.stdout
    time.sleep(1.0)
    assert not [m for m in relay.messages if any("gmail" in r or "evil" in r
                                                 for r in m.rcpt_tos)]


# -- forged VERP bounces ---------------------------------------------------------------------
def dsn(to: str, recipient: str) -> str:
    return (
        f"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="R"\r\n'
        f"\r\n--R\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        f"\r\n--R\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example.org\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n--R--"
    )


def bounce(port: int, verp: str, recipient: str) -> None:
    head = ("Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="R"\r\n')
    body = dsn(verp, recipient).split("\r\n\r\n", 1)[1]
    send(port, "MAILER-DAEMON@mx.example.org", verp, body, subject="Undelivered", head=head)


def test_forged_verp_bounces_change_nothing(env: dict[str, str], server: Server,
                                            relay: Sink) -> None:
    send(server.port, MEMBERS[0], LIST, "Agenda attached.", subject="verp-post")
    copies = wait_for(relay, subject_is("verp-post"), count=len(MEMBERS))
    senders = {c.rcpt_tos[0]: c.mail_from for c in copies}
    genuine = senders[MEMBERS[1]]  # city-clerks-bounces+ID-MAC@domain
    ident, _, mac = genuine.split("+", 1)[1].split("@")[0].rpartition("-")
    other_ident = senders[MEMBERS[2]].split("+", 1)[1].rpartition("-")[0]
    flipped = ("a" if mac[0] != "a" else "b") + mac[1:]
    forged = [f"city-clerks-bounces+{ident}-{flipped}@{DOMAIN}",       # a guessed MAC
              f"city-clerks-bounces+{other_ident}-{mac}@{DOMAIN}",     # a MAC moved over
              f"city-clerks-bounces+{ident}@{DOMAIN}",                 # no MAC at all
              f"city-clerks-bounces+zzzzzz-aaaaaaaa@{DOMAIN}"]
    for address in forged:
        bounce(server.port, address, MEMBERS[1])
    settle(env)
    assert count(env, select(func.count()).select_from(BounceEvent)) == 0
    bounce(server.port, genuine, MEMBERS[1])  # the control: the real one is recorded
    settle(env)
    assert count(env, select(func.count()).select_from(BounceEvent)) == 1


# -- forged moderator approvals ---------------------------------------------------------------
def test_forged_moderator_approvals_decide_nothing(env: dict[str, str], server: Server,
                                                   relay: Sink) -> None:
    auth = "Authentication-Results: mx.test; dmarc=pass header.from=example.com\r\n"
    send(server.port, OUTSIDER, LIST, "Please share.", subject="held-post", head=auth)
    [notice] = wait_for(relay, lambda m: MODERATOR in m.rcpt_tos
                        and "held-post" in str(m.message["Subject"]))
    reply_to = str(notice.message["Reply-To"])
    token = reply_to.partition("+")[2].partition("@")[0]
    kind_id, expiry, mac = token.split("-")
    ident = int(kind_id[1:], 36)
    forged = [
        f"{kind_id}-{expiry}-{'q' * 13}",                          # a guessed MAC
        f"r{kind_id[1:]}-{expiry}-{mac}",                          # another kind, same MAC
        f"m{base36(ident + 1)}-{expiry}-{mac}",                   # another message
        f"{kind_id}-{'z' * 6}-{mac}",                              # a later expiry
    ]
    for fake in forged:  # sent as if by the moderator: the From line proves nothing
        send(server.port, MODERATOR, f"city-clerks-confirm+{fake}@{DOMAIN}", "approve",
             subject="Re: held")
    send(server.port, MODERATOR, f"city-managers-confirm+{token}@{DOMAIN}", "approve",
         subject="Re: held")  # a genuine token used on another list
    settle(env)
    time.sleep(1.0)  # an approved post would be on its way by now
    held = select(Held.state).where(Held.subject == "held-post")
    assert count(env, select(func.count()).select_from(held.where(Held.state == "held")
                                                       .subquery())) == 1
    assert not [m for m in relay.messages if m.message["Subject"] == "[City Clerks] held-post"]
    # The control: the moderator's genuine reply approves it.
    send(server.port, MODERATOR, reply_to, "approve", subject="Re: held")
    wait_for(relay, lambda m: m.message["Subject"] == "[City Clerks] held-post",
             count=len(MEMBERS))


# -- guessed unsubscribe and preference tokens --------------------------------------------------
def http(url: str, *, post: bool = False) -> int:
    data = b"List-Unsubscribe=One-Click" if post else None
    request = urllib.request.Request(url, data=data, method="POST" if post else "GET",
                                     headers={"Content-Type":
                                              "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, timeout=10) as page:
            return page.status
    except urllib.error.HTTPError as err:
        return err.code


def lists_of(env: dict[str, str], email: str) -> set[str]:
    shown = json.loads(cli(env, "members", "show", email, "--json").stdout)
    return {s["name"] for s in shown["subscriptions"]}


def tamper(token: str) -> list[str]:
    payload, _, mac = token.partition(".")
    flip = ("A" if mac[-1] != "A" else "B")
    return [f"{payload}.{mac[:-1]}{flip}", f"{payload}.", token[:-3], "x" * len(token),
            f"{payload[:-1]}{'A' if payload[-1] != 'A' else 'B'}.{mac}"]


def test_guessed_unsubscribe_and_preference_tokens_are_refused(
        env: dict[str, str], server: Server, relay: Sink) -> None:
    send(server.port, MEMBERS[0], LIST, "Minutes.", subject="unsub-post")
    copies = wait_for(relay, subject_is("unsub-post"), count=len(MEMBERS))
    mine = next(c for c in copies if c.rcpt_tos == [MEMBERS[2]])
    url = str(mine.message["List-Unsubscribe"]).split(",")[0].strip().strip("<>")
    base, _, token = url.rpartition("/")
    for fake in tamper(token):
        assert 400 <= http(f"{base}/{fake}", post=True) < 500, fake
    assert "city-clerks" in lists_of(env, MEMBERS[2])
    settings = load_settings(env)
    prefs = preferences_url(settings, 1)
    pbase, _, ptoken = prefs.rpartition("/")
    assert http(prefs) == 200  # the control: a genuine preferences link opens
    for fake in tamper(ptoken):
        assert 400 <= http(f"{pbase}/{fake}") < 500, fake
    # The control: the genuine link unsubscribes.
    assert http(url, post=True) == 200
    assert "city-clerks" not in lists_of(env, MEMBERS[2])
