"""Policy rejections are told apart from dead mailboxes; auto-replies are not bounces."""

from __future__ import annotations

import pytest

from mailer.bounces import parse_bounce


def dsn(status: str, diagnostic: str, *, action: str = "failed") -> bytes:
    """A minimal RFC 3464 report for member@example.net."""
    return f"""\
From: Mail Delivery System <MAILER-DAEMON@mx.example.org>
To: news-bounces@lists.example.com
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; member@example.net
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {diagnostic}

--B--
""".encode()


def notice(reply: str, *, subject: str = "failure notice") -> bytes:
    """A minimal qmail-style notice for member@example.net, no DSN part."""
    return f"""\
From: MAILER-DAEMON@mx.example.org
To: news-bounces@lists.example.com
Subject: {subject}

Hi. This is the qmail-send program at mx.example.org.
I'm afraid I wasn't able to deliver your message to the following addresses.

<member@example.net>:
Remote host said: {reply}

--- Below this line is a copy of the message.

From: news@lists.example.com
To: member@example.net
Subject: Weekly news
""".encode()


@pytest.mark.parametrize(
    ("status", "diagnostic"),
    [
        ("5.7.1", "550 5.7.1 Delivery not authorized, message refused"),
        ("5.7.26", "550-5.7.26 Unauthenticated email is not accepted due to DMARC policy"),
        ("5.7.606", "550 5.7.606 Access denied, banned sending IP [192.0.2.1]"),
        ("5.0.0", "554 Message rejected as spam by Content Filtering"),
        ("5.0.0", "550 Service unavailable; client host blocked using zen.spamhaus.org"),
        ("5.1.0", "550 5.1.0 <news-bounces@lists.example.com> sender rejected AUP#CDRBL"),
    ],
)
def test_a_policy_rejection_is_flagged_so_it_never_disables_the_member(
    status: str, diagnostic: str
) -> None:
    report = parse_bounce(dsn(status, diagnostic))

    assert report.kind == "dsn"
    assert report.addresses == ("member@example.net",)
    assert report.permanent is True
    assert report.policy is True
    assert report.failures[0].policy is True


@pytest.mark.parametrize(
    ("status", "diagnostic"),
    [
        ("5.1.1", "550 5.1.1 <member@example.net>: Recipient address rejected: User unknown"),
        ("5.2.2", "552 5.2.2 Mailbox full"),
        ("5.0.0", "550 sorry, no mailbox here by that name. (#5.7.17)"),
    ],
)
def test_a_dead_mailbox_is_not_a_policy_rejection(status: str, diagnostic: str) -> None:
    report = parse_bounce(dsn(status, diagnostic))

    assert report.permanent is True
    assert report.policy is False


def test_a_policy_rejection_in_a_plain_notice_is_flagged_too() -> None:
    report = parse_bounce(notice("554 5.7.1 Message rejected: listed at bl.example.org"))

    assert report.kind == "nonstandard"
    assert report.addresses == ("member@example.net",)
    assert report.statuses == {"member@example.net": "5.7.1"}
    assert (report.permanent, report.policy) == (True, True)


def test_a_plain_user_unknown_notice_is_a_permanent_member_failure() -> None:
    report = parse_bounce(notice("550 5.1.1 <member@example.net>... User Unknown"))

    assert report.addresses == ("member@example.net",)
    assert (report.permanent, report.policy) == (True, False)
    assert report.statuses == {"member@example.net": "5.1.1"}


def test_a_delayed_dsn_is_temporary() -> None:
    report = parse_bounce(dsn("4.4.7", "Connection timed out", action="delayed"))

    assert (report.kind, report.permanent) == ("dsn", False)


def test_a_4xx_status_is_temporary_even_when_the_action_says_failed() -> None:
    report = parse_bounce(dsn("4.2.2", "452 4.2.2 Mailbox full"))

    assert report.permanent is False


def test_a_successful_delivery_report_is_not_a_bounce() -> None:
    report = parse_bounce(dsn("2.0.0", "250 OK", action="delivered"))

    assert (report.kind, report.permanent, report.addresses) == ("not_bounce", None, ())


AUTOREPLIES = {
    "out of office (Exchange)": b"""\
From: Jane Doe <jane@example.org>
To: news@lists.example.com
Subject: Automatic reply: Weekly news
Auto-Submitted: auto-replied
X-Auto-Response-Suppress: All

I am out of the office until Monday with limited access to e-mail.
""",
    "vacation (no special headers)": b"""\
From: bob@example.org
To: news@lists.example.com
Subject: Re: Weekly news

Hello, I'm on vacation until 12 August and will reply when I return.
""",
    "X-Autoreply header": b"""\
From: carol@example.org
To: news@lists.example.com
Subject: Re: Weekly news
X-Autoreply: yes

Thanks, your mail has arrived.
""",
    "Latvian out-of-office": b"""\
From: <agris@example.lv>
To: news@lists.example.com
Subject: Arpus biroja automatiska atbilde: Weekly news

I am out of office and will be back on Tuesday.
""",
    "challenge-response": b"""\
From: "Spam Arrest" <dave@example.org>
To: news@lists.example.com
Subject: Please confirm your message

I protect myself from spam. Please click the link below to verify that you are a real
person so that your message is delivered: https://verify.example.com/?id=abc
""",
}


@pytest.mark.parametrize("raw", AUTOREPLIES.values(), ids=AUTOREPLIES.keys())
def test_an_auto_reply_is_not_a_bounce(raw: bytes) -> None:
    report = parse_bounce(raw)

    assert report.kind == "autoreply"
    assert report.permanent is None
    assert report.addresses == ()


def test_an_exim_bounce_marked_auto_replied_is_still_a_bounce() -> None:
    raw = b"""\
From: Mail Delivery System <Mailer-Daemon@mx.example.org>
To: news-bounces@lists.example.com
Subject: Mail delivery failed: returning message to sender
Auto-Submitted: auto-replied
X-Failed-Recipients: gone@example.net

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  gone@example.net
    SMTP error from remote mail server after RCPT TO:<gone@example.net>:
    550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown
"""
    report = parse_bounce(raw)

    assert (report.kind, report.addresses, report.permanent) == (
        "nonstandard",
        ("gone@example.net",),
        True,
    )


def test_an_ordinary_message_is_not_a_bounce() -> None:
    raw = b"""\
From: erin@example.org
To: news@lists.example.com
Subject: Question about the council meeting

When does the meeting start?
"""
    report = parse_bounce(raw)

    assert (report.kind, report.permanent) == ("not_bounce", None)
