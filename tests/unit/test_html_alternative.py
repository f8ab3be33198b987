"""HTML-only posts (Outlook, phones) reach text-only readers: a text/plain alternative first."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

from listservs.facts import Membership
from listservs.lists import ListInfo
from listservs.posting import plan_post
from mailer.db import utcnow
from mailer.html_alternative import add_text_alternative
from mailer.settings import Settings

HEAD = (b"From: Pat <pat@fresno.gov>\r\nTo: city-clerks@lists.cacities.org\r\n"
        b"Subject: Agenda\r\nMessage-ID: <h1@fresno.gov>\r\nMIME-Version: 1.0\r\n")
HTML = ("<html><body><p>Council meets <b>Tuesday</b> at the Café.</p>"
        "<ul><li>Budget</li><li>Parks</li></ul></body></html>\r\n").encode()
HTML_ONLY = HEAD + b"Content-Type: text/html; charset=utf-8\r\n\r\n" + HTML


def parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def kinds(raw: bytes) -> list[str]:
    return [p.get_content_type() for p in parse(raw).walk()]


def test_an_html_only_post_gets_plain_text_first_and_keeps_its_html() -> None:
    out = add_text_alternative(HTML_ONLY)
    assert out is not None
    assert kinds(out) == ["multipart/alternative", "text/plain", "text/html"]
    message = parse(out)
    text = message.get_body(("plain",)).get_content()
    assert "Council meets Tuesday at the Café." in text and "* Budget" in text
    assert message.get_body(("html",)).get_content().encode() == HTML
    assert message["Subject"] == "Agenda" and message["From"] == "Pat <pat@fresno.gov>"


def test_html_with_attachments_gets_the_alternative_in_place_of_the_html() -> None:
    raw = HEAD + (b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\n'
                  b"Content-Type: text/html; charset=utf-8\r\n\r\n" + HTML +
                  b'--B\r\nContent-Type: application/pdf; name="a.pdf"\r\n'
                  b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--B--\r\n")
    out = add_text_alternative(raw)
    assert out is not None
    assert kinds(out) == ["multipart/mixed", "multipart/alternative", "text/plain",
                          "text/html", "application/pdf"]
    assert b'name="a.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n' in out


def test_outlook_html_with_inline_images_keeps_them_with_the_html() -> None:
    raw = HEAD + (b'Content-Type: multipart/related; boundary="R"\r\n\r\n--R\r\n'
                  b"Content-Type: text/html; charset=utf-8\r\n\r\n" + HTML +
                  b"--R\r\nContent-Type: image/png\r\nContent-ID: <logo>\r\n"
                  b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0K\r\n--R--\r\n")
    out = add_text_alternative(raw)
    assert out is not None
    assert kinds(out) == ["multipart/alternative", "text/plain", "multipart/related",
                          "text/html", "image/png"]


def test_posts_with_text_or_signatures_are_left_alone() -> None:
    plain = HEAD + b"Content-Type: text/plain\r\n\r\nhello\r\n"
    assert add_text_alternative(plain) is None
    signed = HEAD + (b'Content-Type: multipart/signed; boundary="S"\r\n\r\n--S\r\n'
                     b"Content-Type: text/html\r\n\r\n<p>x</p>\r\n--S\r\n"
                     b"Content-Type: application/pgp-signature\r\n\r\nsig\r\n--S--\r\n")
    assert add_text_alternative(signed) is None
    assert add_text_alternative(b"not a message at all") is None


def test_members_get_the_text_and_the_footer_in_both_parts() -> None:
    info = ListInfo(7, "city-clerks", "list", "City Clerks department", "City Clerks", "",
                    None, False, "personalised", "", {})
    plan = plan_post(HTML_ONLY, info=info,
                     settings=Settings(secret_keys=("k" * 20,), base_url="https://l.example"),
                     envelope_sender="pat@fresno.gov",
                     lookup=lambda _s: Membership(is_member=True), seen=lambda _m: False,
                     now=utcnow())
    assert plan.action == "accept" and plan.body is not None
    message = parse(plan.body)
    text = message.get_body(("plain",)).get_content()
    assert "Council meets Tuesday" in text and "City Clerks department mailing list" in text
    assert "City Clerks department mailing list" in message.get_body(("html",)).get_content()
