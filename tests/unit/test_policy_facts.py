"""Facts about a post: who sent it, where it went, what marks it; never a crash."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email import message_from_bytes, message_from_string, policy
from email.message import Message
from email.parser import BytesParser
from pathlib import Path

import pytest

from listservs.facts import (
    Membership,
    PostFacts,
    facts_from_message,
    message_id_of,
    poster_address,
)
from listservs.policy import ListPolicy, evaluate
from mailer.authresults import NO_VERDICT, verdict_from_authres
from mailer.dkim_verify import dkim_verdict, static_dns

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
LIST = "city-clerks@lists.cacities.org"
LIST_ID = "city-clerks.lists.cacities.org"
NOW = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)


def gather(msg: Message, envelope: str = "pat@ci.berkeley.ca.us") -> PostFacts:
    return facts_from_message(
        msg,
        envelope_sender=envelope,
        list_address=LIST,
        list_ids=frozenset({f"<{LIST_ID}>"}),
        membership=Membership(is_member=True),
        auth=NO_VERDICT,
        size=1234,
        now=NOW,
        seen_message_id=False,
    )


def parse(head: str, body: str = "Hello.\n") -> Message:
    return message_from_string(head.strip("\n") + "\n\n" + body, policy=policy.default)


def test_the_poster_is_the_from_address_lower_cased() -> None:
    f = gather(parse("From: Pat Clerk <Pat@CI.Berkeley.CA.US>\nTo: " + LIST))
    assert (f.sender, f.from_addresses, f.from_problem) == (
        "pat@ci.berkeley.ca.us",
        ("pat@ci.berkeley.ca.us",),
        None,
    )
    assert f.recipients == (LIST,)
    assert (f.size, f.received_at, f.list_address) == (1234, NOW, LIST)


@pytest.mark.parametrize(
    ("head", "envelope", "poster"),
    [
        ("Sender: Desk <desk@city.gov>", "bounce@mailer.example", "desk@city.gov"),
        ("To: x@y.org", "<Bounce@Mailer.Example>", "bounce@mailer.example"),
        ("From: alice@example.com <bob@evil.example>", "env@city.gov", "env@city.gov"),
        ("From: a@x.org)<b@y.org>", "env@city.gov", "env@city.gov"),
        ("From: MAILER DAEMON <>", "", None),
        ("To: x@y.org", "not an address", None),
    ],
    ids=["sender-header", "envelope", "ambiguous-from", "cve-2023-27043", "empty-from", "junk"],
)
def test_the_poster_falls_back_from_from_to_sender_to_envelope(
    head: str, envelope: str, poster: str | None
) -> None:
    msg = parse(head)
    assert poster_address(msg, envelope_sender=envelope) == poster
    assert gather(msg, envelope).sender == poster


def test_several_from_addresses_are_reported_as_a_problem() -> None:
    f = gather(parse("From: Bad <spoof@example.org>, Test <test@example.com>"))
    assert f.from_addresses == ("spoof@example.org", "test@example.com")
    assert f.from_problem == "From header holds 2 addresses"


def test_recipients_are_to_and_cc_each_once() -> None:
    f = gather(parse(f'To: {LIST}, a@x.org\nCc: A@X.org, "B, Jr" <b@y.org>\nCc: c@z.org'))
    assert f.recipients == (LIST, "a@x.org", "b@y.org", "c@z.org")


def test_our_list_id_and_x_beenthere_are_loop_markers_others_are_not() -> None:
    ours = gather(parse(f"List-Id: City Clerks <{LIST_ID.upper()}>\nX-BeenThere: {LIST}"))
    assert len(ours.loop_markers) == 2
    other = gather(parse("List-Id: <fire-chiefs.lists.cacities.org>\nX-BeenThere: x@y.org"))
    assert other.loop_markers == ()


@pytest.mark.parametrize(
    ("head", "envelope", "marked"),
    [
        ("Auto-Submitted: auto-replied", "a@b.org", True),
        ("Auto-Submitted: auto-generated (failure)", "a@b.org", True),
        ("Auto-Submitted: No", "a@b.org", False),
        ("Precedence: Bulk", "a@b.org", True),
        ("Precedence: junk", "a@b.org", True),
        ("Precedence: list", "a@b.org", True),
        ("Precedence: first-class", "a@b.org", False),
        ("X-Autoreply: yes", "a@b.org", True),
        (
            "Content-Type: multipart/report; report-type=delivery-status; boundary=x",
            "a@b.org",
            True,
        ),
        ("Subject: Out of office", "", True),
        ("Subject: Out of office", "<>", True),
        ("Subject: hello", "a@b.org", False),
    ],
)
def test_machine_sent_mail_is_marked(head: str, envelope: str, marked: bool) -> None:
    assert bool(gather(parse(head), envelope).auto_markers) is marked


def test_message_id_and_date_are_read_or_absent() -> None:
    msg = parse("Message-ID:  <abc.123@city.gov> (comment)\nDate: Thu, 26 Nov 2026 09:30:00 -0800")
    assert message_id_of(msg) == "abc.123@city.gov"
    f = gather(msg)
    assert f.message_id == "abc.123@city.gov"
    assert f.date == datetime(2026, 11, 26, 17, 30, tzinfo=UTC)
    bad = gather(parse("Message-ID: \nDate: last Tuesday"))
    assert (bad.message_id, bad.date) == (None, None)


NASTY_HEADERS = [
    "From: bob@",
    "From: <>",
    "From: =?utf-8?q?broken",
    'From: "unterminated <a@b.org>',
    "From: a@b@c",
    "From: @x.org",
    "From: " + "a" * 5000 + "@x.org",
    "From: x@" + "a." * 200 + "org",
    "From: Group: a@b.org, c@d.org;",
    "To: undisclosed-recipients:;",
    "To: ,,,,,;;;<<<>>>",
    "Cc: (((((((((((comment",
    "Date: Mon, 99 Foo 99999 99:99:99 +9999",
    "Date: " + "9" * 400,
    "Message-ID: <<<>>>",
    "List-Id: <",
    "X-BeenThere: \\",
    "Auto-Submitted: ;",
    "Content-Type: multipart/",
    "Authentication-Results: ;;;===",
    'Authentication-Results: "unterminated; dkim=pass',
    "Authentication-Results: mx; dkim=pass header.d=" + "x" * 3000,
]


@pytest.mark.parametrize("line", NASTY_HEADERS)
def test_broken_headers_never_raise(line: str) -> None:
    for msg in (parse(line), message_from_string(line + "\n\nbody\n")):  # default and compat32
        f = gather(msg)
        evaluate(f, ListPolicy())
        verdict_from_authres(msg, trusted_ids={"mx"})


def test_hostile_sizes_are_read_in_linear_time() -> None:
    # The email package's strict address parser needs ~10 s for 5,000 addresses (quadratic);
    # an unanchored regex needed ~40 s for 20 KB of Authentication-Results. Both are avoided.
    many = ", ".join(f"Person {i} <p{i}@city{i}.ca.gov>" for i in range(5_000))
    fields = "".join(f"Cc: {', '.join(f'c{j}.{i}@x.org' for j in range(100))}\n" for i in range(40))
    head = (
        f"From: {many}\nTo: {many}\n{fields}"
        + f"List-Id: <{LIST_ID}>\n" * 1000
        + "Authentication-Results: mx; " + "a" * 200_000 + "\n"
        + "Authentication-Results: mx; " + "dkim=pass " * 1600 + "\n"
    )  # fmt: skip
    msg = parse(head)
    started = time.perf_counter()
    f = gather(msg)
    decision = evaluate(f, ListPolicy())
    verdict_from_authres(msg, trusted_ids={"mx"})
    assert time.perf_counter() - started < 5
    assert len(f.recipients) == 5_000 + 4_000
    assert (f.from_addresses, f.from_problem) == ((), "From header is ambiguous or malformed")
    assert decision.rules == ("loop",) and len(f.loop_markers) == 5


def test_undecodable_bytes_in_headers_become_valid_text() -> None:
    raw = b"From: J\xf6rg <j\xf6rg@city.de>\nTo: " + LIST.encode() + b"\nX-Odd: \xff\xfe\n\nbody\n"
    f = gather(message_from_bytes(raw, policy=policy.default))
    for _, value in f.headers:
        value.encode("utf-8")  # storable: no lone surrogates left
    assert ("x-odd", "\ufffd\ufffd") in f.headers


def corpus_files() -> list[Path]:
    inbound = CORPUS / "inbound"
    if not inbound.is_dir():
        return []
    return sorted(p for p in inbound.rglob("*") if p.is_file())


def test_the_shared_corpus_is_there() -> None:
    if not (CORPUS / "inbound").is_dir():
        pytest.fail(f"the shared corpus is missing at {CORPUS}: the robustness tests need it")
    assert len(corpus_files()) > 300


def test_every_inbound_corpus_file_yields_facts_and_a_decision() -> None:
    files = corpus_files()
    if not files:
        pytest.fail(f"the shared corpus is missing at {CORPUS}")
    no_dns = static_dns({})
    for path in files:
        raw = path.read_bytes()
        # Facts read only the top-level header, and a full modern parse of the large files
        # takes seconds: the modern policy reads the header alone, compat32 the whole message.
        modern = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
        for msg in (modern, message_from_bytes(raw, policy=policy.compat32)):
            auth = verdict_from_authres(msg, trusted_ids={"mx.google.com", "lists.example.org"})
            f = gather(msg)
            decision = evaluate(f, ListPolicy(announce_only=True))
            assert decision.action in {"accept", "hold", "reject", "discard"}, path.name
            assert all(v.encode("utf-8") is not None for _, v in f.headers), path.name
            assert auth.dmarc, path.name
        assert dkim_verdict(raw, dnsfunc=no_dns).dkim_aligned is False, path.name
