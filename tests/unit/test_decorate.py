"""Decoration's headers: RFC 2369/2919/5064/8058 fields, Reply-To policy, the list identity."""

from __future__ import annotations

import random
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from mailer.decorate import (
    Body,
    ListIdentity,
    been_there,
    decorate,
    decorate_report,
    personal_headers,
)
from mailer.wire import insert_header_lines, overlong_lines

LIST = ListIdentity(
    address="city-clerks@lists.cacities.org",
    display_name="City Clerks department",
    short_name="City Clerks",
    help_url="https://lists.cacities.org/lists/city-clerks",
    subscribe_url="https://lists.cacities.org/lists/city-clerks",
    archive_url="https://lists.cacities.org/archives/city-clerks",
    footer_text="City Clerks department mailing list\n",
)
POST = (
    b"From: Ann Lee <ann@sacramento.gov>\r\n"
    b"To: city-clerks@lists.cacities.org\r\n"
    b"Subject: Agenda for Tuesday\r\n"
    b"Message-ID: <post-1@sacramento.gov>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"See you Tuesday.\r\n"
)


def parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def with_list(**changes: object) -> ListIdentity:
    fields = {name: getattr(LIST, name) for name in LIST.__dataclass_fields__}
    fields.update(changes)
    return ListIdentity(**fields)  # type: ignore[arg-type]


def test_list_headers_follow_the_rfcs() -> None:
    out = decorate(POST, LIST, archived_at="https://lists.cacities.org/archives/city-clerks/1")
    message = parse(out)
    assert message["List-Id"] == '"City Clerks department" <city-clerks.lists.cacities.org>'
    assert message["List-Post"] == "<mailto:city-clerks@lists.cacities.org>"
    assert message["List-Help"] == (
        "<https://lists.cacities.org/lists/city-clerks>, "
        "<mailto:city-clerks-request@lists.cacities.org?subject=help>"
    )
    assert message["List-Subscribe"] == (
        "<https://lists.cacities.org/lists/city-clerks>, "
        "<mailto:city-clerks-join@lists.cacities.org>"
    )
    assert message["List-Unsubscribe"] == (
        "<https://lists.cacities.org/lists/city-clerks>, "
        "<mailto:city-clerks-leave@lists.cacities.org>"
    )
    assert message["List-Archive"] == "<https://lists.cacities.org/archives/city-clerks>"
    assert message["List-Owner"] == "<mailto:city-clerks-owner@lists.cacities.org>"
    assert message["Archived-At"] == "<https://lists.cacities.org/archives/city-clerks/1>"
    assert message["X-BeenThere"] == "city-clerks@lists.cacities.org"
    assert message["Precedence"] == "list"
    assert message["Subject"] == "[City Clerks] Agenda for Tuesday"


def test_output_is_crlf_wire_form_with_short_header_lines() -> None:
    out = decorate(POST.replace(b"\r\n", b"\n"), LIST)
    assert b"\n" not in out.replace(b"\r\n", b"")
    head = out.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))


def test_another_lists_headers_are_replaced_not_doubled() -> None:
    forwarded = (
        b"List-Id: Other list <other.example.org>\r\n"
        b"List-Unsubscribe: <mailto:other-leave@example.org>\r\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        b"List-Post: <mailto:other@example.org>\r\n"
        b"X-BeenThere: other@example.org\r\n"
        b"Precedence: bulk\r\n" + POST
    )
    message = parse(decorate(forwarded, LIST))
    for name in ("List-Id", "List-Unsubscribe", "List-Post", "Precedence"):
        assert len(message.get_all(name, [])) == 1, name
    assert "other" not in str(message["List-Id"])
    assert message.get_all("List-Unsubscribe-Post") is None
    # The other list's X-BeenThere stays: it stops a loop through two lists.
    assert sorted(message.get_all("X-BeenThere")) == [
        "city-clerks@lists.cacities.org", "other@example.org"]


def test_migrated_list_id_is_kept() -> None:
    lst = with_list(list_id="<clerks.old-server.cacities.org>")
    assert lst.list_id == "clerks.old-server.cacities.org"
    assert "<clerks.old-server.cacities.org>" in parse(decorate(POST, lst))["List-Id"]


def test_identity_defaults_come_from_the_address() -> None:
    lst = ListIdentity(
        address="fire-chiefs@lists.cacities.org",
        display_name="Fire Chiefs",
        short_name="Fire Chiefs",
    )
    assert lst.list_id == "fire-chiefs.lists.cacities.org"
    assert lst.request_address == "fire-chiefs-request@lists.cacities.org"
    assert lst.owner_address == "fire-chiefs-owner@lists.cacities.org"
    assert lst.leave_address == "fire-chiefs-leave@lists.cacities.org"
    assert lst.prefix == "[Fire Chiefs]"
    assert with_list(subject_prefix="").prefix == ""


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"address": "no-at-sign"}, "address must be local@domain"),
        ({"list_id": "has space.org"}, "list_id must be a dot-atom"),
        ({"reply_to": "everyone"}, "reply_to must be"),
        ({"reply_to": "explicit:nobody"}, "reply_to must be"),
        ({"display_name": "Evil\r\nBcc: x@y"}, "display_name must be a single line"),
    ],
)
def test_bad_identity_fails_early_with_the_fix(changes: dict[str, str], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        with_list(**changes)


def test_announce_only_list_says_list_post_no() -> None:
    assert parse(decorate(POST, with_list(announce_only=True)))["List-Post"] == "NO"


def test_non_ascii_list_name_is_encoded_in_list_id() -> None:
    out = decorate(POST, with_list(display_name="Comité de Planificación"))
    assert out.split(b"\r\n\r\n")[0].isascii()
    assert parse(out)["List-Id"] == "Comité de Planificación <city-clerks.lists.cacities.org>"


def test_personal_mode_leaves_list_unsubscribe_to_the_delivery_engine() -> None:
    out = decorate(POST, LIST, personal=True)
    assert parse(out).get_all("List-Unsubscribe") is None
    token_url = "https://lists.cacities.org/u/" + "t0k3n" * 30
    spliced = insert_header_lines(out, personal_headers(token_url, "city-clerks-leave@x.org"))
    message = parse(spliced)
    assert message.get_all("List-Unsubscribe") == [
        f"<{token_url}>, <mailto:city-clerks-leave@x.org>"
    ]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.get_content().startswith("See you Tuesday.")


def test_personal_headers_are_exact_rfc8058_lines() -> None:
    assert personal_headers("https://l.org/u/abc", "mailto:leave@l.org") == (
        b"List-Unsubscribe: <https://l.org/u/abc>, <mailto:leave@l.org>\r\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    )


@pytest.mark.parametrize("url", ["ftp://l.org/u", "https://l.org/u>\r\nBcc: x@y", ""])
def test_personal_headers_refuse_what_would_break_the_header(url: str) -> None:
    with pytest.raises(ValueError):
        personal_headers(url, "leave@l.org")


def test_message_id_is_added_only_when_missing() -> None:
    without = POST.replace(b"Message-ID: <post-1@sacramento.gov>\r\n", b"")
    assert (
        parse(decorate(without, LIST, message_id="new@lists.cacities.org"))["Message-ID"]
        == "<new@lists.cacities.org>"
    )
    kept = parse(decorate(POST, LIST, message_id="<new@lists.cacities.org>"))
    assert kept.get_all("Message-ID") == ["<post-1@sacramento.gov>"]


def test_reply_to_poster_policy_leaves_reply_to_alone() -> None:
    assert parse(decorate(POST, LIST))["Reply-To"] is None


def test_reply_to_list_policy_points_replies_at_the_list() -> None:
    message = parse(decorate(POST, with_list(reply_to="list")))
    assert message["Reply-To"].addresses[0].addr_spec == "city-clerks@lists.cacities.org"


def test_reply_to_list_keeps_the_authors_own_reply_to() -> None:
    post = POST.replace(b"Subject:", b"Reply-To: Ann at home <ann@home.example>\r\nSubject:")
    message = parse(decorate(post, with_list(reply_to="list")))
    addresses = [a.addr_spec for a in message["Reply-To"].addresses]
    assert addresses == ["city-clerks@lists.cacities.org", "ann@home.example"]
    assert len(message.get_all("Reply-To")) == 1


def test_reply_to_explicit_address() -> None:
    message = parse(decorate(POST, with_list(reply_to="explicit:clerk-desk@cacities.org")))
    assert message["Reply-To"] == "clerk-desk@cacities.org"


def test_dmarc_munging_puts_the_list_in_from_and_the_author_in_reply_to() -> None:
    message = parse(decorate(POST, LIST, munge_from=True))
    sender = message["From"].addresses[0]
    assert sender.display_name == "Ann Lee via City Clerks department"
    assert sender.addr_spec == "city-clerks@lists.cacities.org"
    assert message["Reply-To"].addresses[0].addr_spec == "ann@sacramento.gov"
    assert message["Cc"] is None


def test_dmarc_munging_with_reply_to_list_puts_the_author_in_cc() -> None:
    message = parse(decorate(POST, with_list(reply_to="list"), munge_from=True))
    assert message["Reply-To"].addresses[0].addr_spec == "city-clerks@lists.cacities.org"
    assert [a.addr_spec for a in message["Cc"].addresses] == ["ann@sacramento.gov"]


def test_been_there_detects_a_loop() -> None:
    decorated = decorate(POST, LIST)
    assert been_there(decorated, LIST)
    assert not been_there(POST, LIST)


def test_headers_only_decoration_still_has_every_list_header() -> None:
    broken = POST.replace(b"text/plain; charset=utf-8", b'multipart/mixed; boundary="x"')
    report = decorate_report(broken, with_list(reply_to="list"))
    assert report.body is Body.HEADERS_ONLY
    message = parse(report.raw)
    assert message["List-Id"] and message["Reply-To"] and message["Subject"].startswith("[City")


def test_mbox_from_line_is_dropped() -> None:
    out = decorate(b"From ann@sacramento.gov Mon Jan  1 00:00:00 2024\n" + POST, LIST)
    assert out.startswith(b"From: Ann Lee")


def test_headerless_input_still_gets_a_valid_message() -> None:
    out = decorate(b"just some text\nwithout headers\n", LIST)
    message = parse(out)
    assert message["List-Id"] and message["Subject"] == "[City Clerks] (no subject)"
    assert "just some text" in message.get_content()


def test_mangled_posts_never_raise_and_always_parse() -> None:
    samples = [
        POST,
        POST.replace(b"text/plain; charset=utf-8", b'multipart/alternative; boundary="a"')
        + b"--a\r\nContent-Type: text/html\r\n\r\n<b>x</b>\r\n--a--\r\n",
    ]
    rng = random.Random(20261126)
    for sample in samples:
        for cut in range(0, len(sample), 7):
            _check_decorates(sample[:cut])
        for _ in range(150):
            mangled = bytearray(sample)
            for _ in range(rng.randint(1, 8)):
                mangled[rng.randrange(len(mangled))] = rng.choice(b'\r\n:;-="\x00\xff ab')
            _check_decorates(bytes(mangled))


def _check_decorates(raw: bytes) -> None:
    out = decorate(raw, LIST)
    message = parse(out)
    assert len(message.get_all("List-Id", [])) == 1
    assert overlong_lines(out) == []
