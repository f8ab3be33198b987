"""DMARC From rewriting: the list sends it, the author stays one click away."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

from mailer.decorate import ListIdentity
from mailer.dmarc_rewrite import author_of, rewrite_from

LIST = ListIdentity(
    address="city-clerks@lists.cacities.org",
    display_name="City Clerks department",
    short_name="City Clerks",
)
POST = (
    b"From: =?utf-8?q?Jos=C3=A9_Garc=C3=ADa?= <jgarcia@yahoo.com>\r\n"
    b"To: city-clerks@lists.cacities.org\r\nSubject: x\r\n\r\nbody\r\n"
)


def parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def rewrite(raw: bytes) -> EmailMessage:
    name, address = author_of(raw)
    return parse(rewrite_from(raw, LIST, author_name=name, author_address=address))


def test_author_is_read_from_an_encoded_from() -> None:
    assert author_of(POST) == ("José García", "jgarcia@yahoo.com")


def test_from_becomes_name_via_list() -> None:
    message = rewrite(POST)
    (sender,) = message["From"].addresses
    assert sender.display_name == "José García via City Clerks department"
    assert sender.addr_spec == "city-clerks@lists.cacities.org"
    assert message["Reply-To"].addresses[0].addr_spec == "jgarcia@yahoo.com"
    assert message.get_content() == "body\r\n"


def test_author_without_a_name_is_named_by_address() -> None:
    raw = POST.replace(b"=?utf-8?q?Jos=C3=A9_Garc=C3=ADa?= <jgarcia@yahoo.com>", b"jg@aol.com")
    sender = rewrite(raw)["From"].addresses[0]
    assert sender.display_name == "jg@aol.com via City Clerks department"


def test_reply_to_pointing_at_the_list_sends_the_author_to_cc() -> None:
    raw = POST.replace(b"Subject:", b"Reply-To: <city-clerks@lists.cacities.org>\r\nSubject:")
    message = rewrite(raw)
    assert [a.addr_spec for a in message["Reply-To"].addresses] == [LIST.address]
    assert [a.addr_spec for a in message["Cc"].addresses] == ["jgarcia@yahoo.com"]


def test_existing_cc_is_extended_not_replaced() -> None:
    raw = POST.replace(
        b"Subject:",
        b"Reply-To: city-clerks@lists.cacities.org\r\nCc: Bob <bob@fresno.gov>\r\nSubject:",
    )
    addresses = [a.addr_spec for a in rewrite(raw)["Cc"].addresses]
    assert addresses == ["bob@fresno.gov", "jgarcia@yahoo.com"]


def test_authors_own_reply_to_is_kept() -> None:
    raw = POST.replace(b"Subject:", b"Reply-To: jose@home.example\r\nSubject:")
    message = rewrite(raw)
    assert [a.addr_spec for a in message["Reply-To"].addresses] == ["jose@home.example"]
    assert message["Cc"] is None or "jgarcia" in str(message["Cc"])


def test_rewriting_twice_changes_nothing_more() -> None:
    name, address = author_of(POST)
    once = rewrite_from(POST, LIST, author_name=name, author_address=address)
    assert rewrite_from(once, LIST, author_name=name, author_address=address) == once
