"""Digest rendering, pure: the RFC 1153 layout and a MIME digest any parser can read."""

from __future__ import annotations

from email import message_from_bytes, policy

from listservs.digest_format import (
    Masthead,
    mime_digest,
    plain_digest,
    plain_message,
    plain_text_of,
    post_from_bytes,
)

MASTHEAD = Masthead("City Clerks", 2, 7, "Send City Clerks mailing list submissions to\n"
                    "\tcity-clerks@lists.cacities.org\n", "Leave: https://x.example/p")
FIRST = (b"From: Ann Lee <ann@example.org>\r\nSubject: [City Clerks] Agenda deadline\r\n"
         b"Date: Wed, 14 Jan 2026 08:00:00 -0800\r\nMessage-ID: <a1@example.org>\r\n"
         b"Content-Type: text/plain; charset=utf-8\r\n\r\nIs it Friday?\r\n")
SECOND = ("From: =?utf-8?q?Ch=C5=8D_M=C3=BCller?= <cho@example.com>\r\n"
          "Subject: Re: [City Clerks] Agenda deadline\r\n"
          "Date: Wed, 14 Jan 2026 09:15:00 -0800\r\nMessage-ID: <c2@example.com>\r\n"
          "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
          "--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit"
          "\r\n\r\nYes, Friday at noon. Café open.\r\n"
          "--b\r\nContent-Type: application/pdf; name=\"agenda.pdf\"\r\n"
          "Content-Disposition: attachment; filename=\"agenda.pdf\"\r\n"
          "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n").encode()


def _posts():
    return [post_from_bytes(1, FIRST, prefix="[City Clerks]"),
            post_from_bytes(2, SECOND, prefix="[City Clerks]")]


def test_plain_digest_has_the_rfc_1153_layout() -> None:
    text = plain_digest(MASTHEAD, _posts())
    assert text == (
        "Send City Clerks mailing list submissions to\n"
        "\tcity-clerks@lists.cacities.org\n"
        "\n"
        "Today's Topics:\n"
        "\n"
        "   1. Agenda deadline (Ann Lee)\n"
        "   2. Re: Agenda deadline (Chō Müller)\n"
        "\n"
        "\n" + "-" * 70 + "\n"
        "\n"
        "Message: 1\n"
        "Date: Wed, 14 Jan 2026 08:00:00 -0800\n"
        "From: Ann Lee <ann@example.org>\n"
        "Subject: [City Clerks] Agenda deadline\n"
        "Message-ID: <a1@example.org>\n"
        "\n"
        "Is it Friday?\n"
        "\n" + "-" * 30 + "\n"
        "\n"
        "Message: 2\n"
        "Date: Wed, 14 Jan 2026 09:15:00 -0800\n"
        "From: Chō Müller <cho@example.com>\n"
        "Subject: Re: [City Clerks] Agenda deadline\n"
        "Message-ID: <c2@example.com>\n"
        "\n"
        "Yes, Friday at noon. Café open.\n"
        "\n"
        "[An attachment of type application/pdf (agenda.pdf), 9 bytes, is not included in "
        "the plain-text digest.]\n"
        "\n" + "-" * 30 + "\n"
        "\n"
        "Subject: Digest Footer\n"
        "\n"
        "Leave: https://x.example/p\n"
        "\n" + "-" * 30 + "\n"
        "\n"
        "End of City Clerks Digest, Vol 2, Issue 7\n"
        "*****************************************\n")


def test_plain_message_is_one_text_part_that_decodes_to_the_layout() -> None:
    data = plain_message([b"Subject: [City Clerks] Digest, Vol 2, Issue 7\r\n"], MASTHEAD,
                         _posts())
    msg = message_from_bytes(data, policy=policy.default)
    assert msg.get_content_type() == "text/plain" and not msg.is_multipart()
    assert msg.get_content().replace("\r\n", "\n") == plain_digest(MASTHEAD, _posts())
    assert max(len(line) for line in data.split(b"\r\n")) <= 998


def test_mime_digest_parses_and_holds_each_post_unchanged() -> None:
    data = mime_digest([b"Subject: [City Clerks] Digest, Vol 2, Issue 7\r\n"], MASTHEAD,
                       _posts())
    msg = message_from_bytes(data, policy=policy.default)
    assert not msg.defects
    assert msg["MIME-Version"] == "1.0" and msg.get_content_type() == "multipart/mixed"
    toc, digest, footer = msg.iter_parts()
    assert toc.get_content_type() == "text/plain"
    assert "Today's Topics:" in toc.get_content()
    assert "2. Re: Agenda deadline (Chō Müller)" in toc.get_content()
    assert digest.get_content_type() == "multipart/digest"
    parts = list(digest.iter_parts())
    assert [p.get_content_type() for p in parts] == ["message/rfc822"] * 2
    assert [p.get_content()["Message-ID"] for p in parts] == ["<a1@example.org>",
                                                              "<c2@example.com>"]
    assert FIRST in data and SECOND in data  # byte for byte, as the list sent them
    attachment = next(iter(parts[1].get_content().iter_attachments()))
    assert attachment.get_filename() == "agenda.pdf"
    assert footer.get_content().strip() == "Leave: https://x.example/p"


def test_html_only_post_is_made_plain_and_a_dashed_line_cannot_split_the_digest() -> None:
    raw = (b"From: a@example.org\r\nSubject: s\r\nContent-Type: text/html\r\n\r\n"
           b"<p>Hello <b>all</b></p><script>x()</script>\r\n")
    assert plain_text_of(raw) == "Hello all"
    raw = b"From: a@example.org\r\nSubject: s\r\n\r\nabove\r\n" + b"-" * 30 + b"\r\nbelow\r\n"
    assert plain_text_of(raw) == "above\n " + "-" * 30 + "\nbelow"
