"""The public surface of mailer.bounces: what the CLI and workers can rely on."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import mailer.bounces
from mailer.bounces import KINDS, BounceReport, bounce_result_json, parse_bounce

GARBAGE = {
    "empty": b"",
    "whitespace": b"\r\n \t\r\n",
    "binary junk": bytes(range(256)) * 8,
    "nul bytes": b"\x00" * 1000,
    "json": b'{"subject": "Undelivered Mail Returned to Sender", "text": "User unknown"}',
    "headers only, bad charset": (
        b"From: =?x-unknown-charset?B?////?= <MAILER-DAEMON@example.org>\r\n"
        b"Subject: =?utf-8?Q?=FF=FE?= Undeliverable\r\n"
        b"Content-Type: text/plain; charset=no-such-charset\r\n\r\n\xff\xfe\x80 user unknown"
    ),
    "broken multipart": (
        b"From: MAILER-DAEMON@example.org\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: message/delivery-status\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n--B"
    ),
    "endless nesting": (b'Content-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\n' * 300),
    "8-bit headers": b"From: \xe3\x83\xa1\xe3\x83\xbc\xe3\x83\xab <>\r\nSubject: \xff\r\n\r\n\xff",
}


@pytest.mark.parametrize("raw", GARBAGE.values(), ids=GARBAGE.keys())
def test_malformed_input_never_raises(raw: bytes) -> None:
    report = parse_bounce(raw)

    assert isinstance(report, BounceReport)
    assert report.kind in KINDS
    assert report.addresses == ()
    if not report.is_bounce:
        assert report.permanent is None


@pytest.mark.parametrize("name", ["empty", "binary junk", "nul bytes", "json"])
def test_something_that_is_not_mail_is_unknown(name: str) -> None:
    report = parse_bounce(GARBAGE[name])

    assert (report.kind, report.permanent, report.addresses) == ("unknown", None, ())


def test_a_report_is_a_frozen_value() -> None:
    report = parse_bounce(b"From: someone@example.org\r\nSubject: hi\r\n\r\nhello\r\n")

    with pytest.raises(dataclasses.FrozenInstanceError):
        report.permanent = True  # type: ignore[misc]
    assert hash(report) == hash(dataclasses.replace(report))


def test_the_package_exports_only_its_documented_names() -> None:
    for name in mailer.bounces.__all__:
        assert hasattr(mailer.bounces, name), name
    assert {"parse_bounce", "BounceReport", "bounce_result_json"} <= set(mailer.bounces.__all__)


def test_addresses_are_lower_cased_and_de_duplicated_in_order() -> None:
    raw = b"""\
From: Mail Delivery System <MAILER-DAEMON@mx.example.org>
To: news-bounces@lists.example.com
Subject: Delivery Status Notification (Failure)
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Original-Recipient: rfc822;Zed@Example.NET
Final-Recipient: rfc822; zed@example.net
Action: failed
Status: 5.1.1

Final-Recipient: rfc822; amy@example.net
Action: failed
Status: 5.1.1

Final-Recipient: rfc822; ZED@example.net
Action: failed
Status: 5.1.1

--B--
"""
    report = parse_bounce(raw)

    assert report.addresses == ("zed@example.net", "amy@example.net")
    assert report.statuses == {"zed@example.net": "5.1.1", "amy@example.net": "5.1.1"}


def test_a_complaint_names_the_complaining_recipient_and_is_not_a_bounce() -> None:
    raw = b"""\
From: Feedback Loop <fbl@mail.example.com>
To: abuse@lists.example.com
Subject: Email Feedback Report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="B"

--B
Content-Type: text/plain

This is an email abuse report.

--B
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ExampleFBL/1.0
Version: 1
Original-Rcpt-To: <Member@Example.net>

--B
Content-Type: message/rfc822

From: news@lists.example.com
To: member@example.net
Subject: Weekly news

--B--
"""
    report = parse_bounce(raw)

    assert report.kind == "complaint"
    assert report.complaint is True
    assert report.permanent is None
    assert report.addresses == ("member@example.net",)
    assert report.diagnostic == "abuse"


def test_bounce_result_json_is_the_cli_contract(tmp_path: Path) -> None:
    path = tmp_path / "bounce.eml"
    path.write_bytes(
        b"From: MAILER-DAEMON@mx.example.org\n"
        b"To: news-bounces@lists.example.com\n"
        b"Subject: failure notice\n\n"
        b"I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        b"This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
        b"<Member@Example.net>:\n"
        b"Remote host said: 550 5.1.1 User unknown\n"
    )
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\xff" * 50)

    result = bounce_result_json(path)
    line = json.dumps(result)

    assert result == {"file": str(path), "addresses": ["member@example.net"], "permanent": True}
    assert json.loads(line) == result
    assert bounce_result_json(junk) == {"file": str(junk), "addresses": [], "permanent": None}
