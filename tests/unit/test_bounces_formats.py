"""Common bounce formats, written by hand in their shortest recognisable form."""

from __future__ import annotations

import pytest

from mailer.bounces import parse_bounce


def notice(sender: str, subject: str, body: str) -> str:
    """A bounce from ``sender`` to the list's bounce address."""
    return f"From: {sender}\nTo: news-bounces@lists.example.com\nSubject: {subject}\n\n{body}"


FORMATS = {
    "gmail, address not found": (
        notice(
            "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
            "Delivery Status Notification (Failure)",
            "** Address not found **\n\n"
            "Your message wasn't delivered to nobody.here@gmail.com because the address"
            " couldn't be found, or is unable to receive mail.\n",
        ),
        ("nobody.here@gmail.com",),
        True,
    ),
    "office 365 text notice": (
        notice(
            "Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@x.com>",
            "Undeliverable: Weekly news",
            "Your message to former@contoso.com couldn't be delivered.\n\n"
            "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; not found'\n",
        ),
        ("former@contoso.com",),
        True,
    ),
    "yahoo": (
        notice(
            "MAILER-DAEMON@yahoo.com",
            "Failure Notice",
            "Sorry, we were unable to deliver your message to the following address.\n\n"
            "<closed@yahoo.com>:\n"
            "554: delivery error: dd This user doesn't have a yahoo.com account\n\n"
            "--- Below this line is a copy of the message.\n\n"
            "From: news@lists.example.com\nTo: closed@yahoo.com\n",
        ),
        ("closed@yahoo.com",),
        True,
    ),
    "postfix without a DSN part": (
        notice(
            "MAILER-DAEMON@mail.example.com (Mail Delivery System)",
            "Undelivered Mail Returned to Sender",
            "This is the mail system at host mail.example.com.\n\n"
            "<gone@example.net>: host mx.example.net[192.0.2.9] said: 550 5.1.1\n"
            "    <gone@example.net>: Recipient address rejected: User unknown\n",
        ),
        ("gone@example.net",),
        True,
    ),
    "postfix delay warning": (
        notice(
            "MAILER-DAEMON@mail.example.com (Mail Delivery System)",
            "Delayed Mail (still being retried)",
            "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n\n"
            "Your message could not be delivered for more than 4 hour(s).\n"
            "It will be retried until it is 5 day(s) old.\n\n"
            "<slow@example.net>: connect to mx.example.net[192.0.2.9]:25: Connection timed out\n",
        ),
        ("slow@example.net",),
        False,
    ),
    "sendmail transcript": (
        notice(
            "<>",
            "Returned mail: see transcript for details",
            "   ----- The following addresses had permanent fatal errors -----\n"
            "<foo@example.ru>\n    (reason: 550 5.1.1 User unknown)\n\n"
            "   ----- Transcript of session follows -----\n"
            "550 5.1.1 <foo@example.ru>... User unknown\n<<< 503 5.5.2 Need Rcpt command.\n",
        ),
        ("foo@example.ru",),
        True,
    ),
    "domino": (
        notice(
            "Postmaster@example.jp",
            "DELIVERY FAILURE",
            "Your message\n\n  Subject: Weekly news\n\nwas not delivered to:\n\n"
            "  someone@example.jp\n\nbecause:\n\n"
            "  User some.one (someone@example.jp) not listed in Domino Directory\n",
        ),
        ("someone@example.jp",),
        True,
    ),
    "dovecot rejection sent as an MDN": (
        notice(
            "Mail Delivery Subsystem <MAILER-DAEMON@mail.example.org>",
            "Rejected: Weekly news",
            "Your message to <full@example.org> was automatically rejected:\n"
            "Quota exceeded (mailbox for user is full)\n",
        ),
        ("full@example.org",),
        True,
    ),
}


@pytest.mark.parametrize(
    ("raw", "addresses", "permanent"), FORMATS.values(), ids=list(FORMATS.keys())
)
def test_a_known_format_names_the_member_and_says_how_final_it_is(
    raw: str, addresses: tuple[str, ...], permanent: bool
) -> None:
    report = parse_bounce(raw.encode())

    assert report.kind == "nonstandard"
    assert report.addresses == addresses
    assert report.permanent is permanent


def test_a_bounce_wrapped_by_a_gateway_is_read_from_the_inner_report() -> None:
    raw = b"""\
From: postmaster@gw.example.jp
To: news-bounces@lists.example.com
Subject: Returned mail: User unknown
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="OUT"

--OUT
Content-Type: text/plain

The original message was received at Thu, 15 Oct 2015 15:22:22 +0900

--OUT
Content-Type: message/rfc822

From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.jp>
Subject: Returned mail: User unknown
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="IN"

--IN
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.jp

Final-Recipient: rfc822; gone@example.org
Action: failed
Status: 5.1.1

--IN--

--OUT--
"""
    report = parse_bounce(raw)

    assert (report.kind, report.addresses, report.permanent) == ("dsn", ("gone@example.org",), True)
    assert report.statuses == {"gone@example.org": "5.1.1"}


NOT_BOUNCES = {
    "a person forwarding a bounce": b"""\
From: Alice <alice@example.org>
To: news@lists.example.com
Subject: Re: Undelivered Mail Returned to Sender

Hi, I got this when I wrote to bob, could you check?

> <bob@example.net>: host mx.example.net said: 550 5.1.1 User unknown
""",
    "a read receipt": b"""\
From: Bob <bob@example.org>
To: news@lists.example.com
Subject: Read: Weekly news
MIME-Version: 1.0
Content-Type: multipart/report; report-type=disposition-notification; boundary="B"

--B
Content-Type: text/plain

Your message was read on Monday.

--B
Content-Type: message/disposition-notification

Final-Recipient: rfc822;bob@example.org
Disposition: manual-action/MDN-sent-manually; displayed

--B--
""",
}


@pytest.mark.parametrize("raw", NOT_BOUNCES.values(), ids=list(NOT_BOUNCES.keys()))
def test_mail_about_delivery_that_is_not_a_failure_is_not_a_bounce(raw: bytes) -> None:
    report = parse_bounce(raw)

    assert (report.kind, report.permanent, report.addresses) == ("not_bounce", None, ())
