"""The footer lands in the right part, in that part's charset and encoding, nothing else moves."""

from __future__ import annotations

import base64
from email import message_from_bytes, policy
from email.message import Message

import pytest

from mailer.decorate import Body, ListIdentity, decorate, decorate_report
from mailer.footer import footer_part, html_footer, text_footer
from mailer.wire import overlong_lines

FOOTER = "City Clerks department mailing list\nOptions: https://lists.cacities.org/city-clerks\n"
LIST = ListIdentity(
    address="city-clerks@lists.cacities.org",
    display_name="City Clerks department",
    short_name="City Clerks",
    footer_text=FOOTER,
)
HEAD = b"From: Ann <ann@sacramento.gov>\r\nTo: city-clerks@lists.cacities.org\r\nSubject: x\r\n"


def message(body_headers: bytes, body: bytes) -> bytes:
    return HEAD + b"MIME-Version: 1.0\r\n" + body_headers + b"\r\n" + body


def parse(raw: bytes) -> Message:
    return message_from_bytes(raw, policy=policy.compat32)


def leaves(raw: bytes) -> list[Message]:
    return [p for p in parse(raw).walk() if not p.is_multipart()]


def content(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.replace(b"\r\n", b"\n")


def test_text_footer_has_a_rule_and_the_lines() -> None:
    assert text_footer("a\r\nb\n") == "_" * 47 + "\na\nb\n"


def test_html_footer_escapes_and_links() -> None:
    block = html_footer("Tom & <Jerry>\nhttps://x.org/a?b=1")
    assert "Tom &amp; &lt;Jerry&gt;" in block
    assert '<a href="https://x.org/a?b=1">https://x.org/a?b=1</a>' in block
    assert "<Jerry>" not in block


def test_footer_part_is_inline_text_and_qp_when_non_ascii() -> None:
    part, raw = footer_part("Café\n")
    assert b"Content-Disposition: inline" in part
    assert b'charset="utf-8"' in part and b"quoted-printable" in part
    assert raw == "Café\r\n".encode()


def test_plain_text_gets_the_footer_appended_and_keeps_7bit() -> None:
    raw = message(b"Content-Type: text/plain; charset=us-ascii\r\n", b"Hello clerks.\r\n")
    out = decorate(raw, LIST)
    (part,) = leaves(out)
    assert content(part) == b"Hello clerks.\n" + text_footer(FOOTER).encode()
    assert part.get("Content-Transfer-Encoding") is None
    assert part.get_content_charset() == "us-ascii"


def test_text_without_final_newline_gets_one_before_the_footer() -> None:
    out = decorate(message(b"Content-Type: text/plain\r\n", b"No newline"), LIST)
    assert content(leaves(out)[0]).startswith(b"No newline\n____")


def test_latin1_quoted_printable_part_keeps_charset_and_encoding() -> None:
    body = "Réunion du conseil à 18 h.\n".encode("iso-8859-1")
    raw = message(
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n",
        b"R=E9union du conseil =E0 18 h.\r\n",
    )
    (part,) = leaves(decorate(raw, LIST))
    assert part.get_content_charset() == "iso-8859-1"
    assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert content(part) == body + text_footer(FOOTER).encode("iso-8859-1")


def test_koi8r_8bit_part_keeps_its_charset_with_an_ascii_footer() -> None:
    body = "Заседание совета\r\n".encode("koi8-r")
    raw = message(
        b"Content-Type: text/plain; charset=koi8-r\r\nContent-Transfer-Encoding: 8bit\r\n", body
    )
    (part,) = leaves(decorate(raw, LIST))
    assert part.get_content_charset() == "koi8-r"
    assert part["Content-Transfer-Encoding"] == "8bit"
    assert content(part).startswith(body.replace(b"\r\n", b"\n"))


def test_footer_the_charset_cannot_hold_upgrades_the_part_to_utf8() -> None:
    lst = ListIdentity(
        address=LIST.address, display_name="x", short_name="x", footer_text="Liste — Ville\n"
    )
    raw = message(b"Content-Type: text/plain; charset=iso-8859-1\r\n", "Café\r\n".encode("latin-1"))
    (part,) = leaves(decorate(raw, lst))
    assert part.get_content_charset() == "utf-8"
    assert part["Content-Transfer-Encoding"] == "quoted-printable"  # 7bit could not carry it
    assert content(part).decode("utf-8") == "Café\n" + text_footer("Liste — Ville\n")


def test_mislabelled_8bit_text_keeps_its_bytes_with_an_ascii_footer() -> None:
    body = "Grüße aus Fresno\r\n".encode("latin-1")  # declared us-ascii, really latin-1
    raw = message(b"Content-Type: text/plain; charset=us-ascii\r\n", body)
    (part,) = leaves(decorate(raw, LIST))
    assert content(part).startswith(body.replace(b"\r\n", b"\n"))


def test_base64_part_stays_base64() -> None:
    text = "Grüße\n".encode()
    raw = message(
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n",
        base64.encodebytes(text).replace(b"\n", b"\r\n"),
    )
    (part,) = leaves(decorate(raw, LIST))
    assert part["Content-Transfer-Encoding"] == "base64"
    assert content(part) == text + text_footer(FOOTER).encode()


def test_lines_over_998_octets_are_reencoded_not_sent_raw() -> None:
    long_line = b"word " * 400  # an Outlook paragraph: 2,000 octets on one line
    raw = message(
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n",
        long_line + b"\r\n",
    )
    out = decorate(raw, LIST)
    assert overlong_lines(out) == []
    (part,) = leaves(out)
    assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert content(part) == long_line + b"\n" + text_footer(FOOTER).encode()


def test_html_footer_goes_before_body_end_tag() -> None:
    html = b"<html><body><p>Agenda attached.</p></BODY></html>\r\n"
    raw = message(b"Content-Type: text/html; charset=utf-8\r\n", html)
    out = content(leaves(decorate(raw, LIST))[0])
    assert out.index(b"list-footer") < out.index(b"</BODY>")
    assert out.startswith(b"<html><body><p>Agenda attached.</p>")
    assert out.endswith(b"</BODY></html>\n")


def test_html_without_body_tag_gets_the_footer_appended() -> None:
    raw = message(b"Content-Type: text/html\r\n", b"<p>Short note</p>\r\n")
    out = content(leaves(decorate(raw, LIST))[0])
    assert out.startswith(b"<p>Short note</p>") and b"list-footer" in out


def test_html_in_a_charset_without_the_footer_letters_uses_references() -> None:
    lst = ListIdentity(
        address=LIST.address, display_name="x", short_name="x", footer_text="Liste — Ville"
    )
    raw = message(b"Content-Type: text/html; charset=iso-8859-1\r\n", b"<body>x</body>")
    (part,) = leaves(decorate(raw, lst))
    assert part.get_content_charset() == "iso-8859-1"
    assert b"Liste &#8212; Ville" in content(part)


def test_alternative_gets_the_footer_in_both_branches() -> None:
    raw = message(
        b'Content-Type: multipart/alternative; boundary="b1"\r\n',
        b"--b1\r\nContent-Type: text/plain\r\n\r\nHi\r\n"
        b"--b1\r\nContent-Type: text/html\r\n\r\n<html><body>Hi</body></html>\r\n--b1--\r\n",
    )
    report = decorate_report(raw, LIST)
    plain, html = leaves(report.raw)
    assert report.body is Body.FOOTER
    assert content(plain) == b"Hi\n" + text_footer(FOOTER).encode()
    assert b'<div class="list-footer"' in content(html)
    assert parse(report.raw).get_content_type() == "multipart/alternative"


def test_mixed_with_text_first_puts_footer_in_it_and_keeps_the_attachment() -> None:
    pdf = base64.encodebytes(b"%PDF-1.4 fake").replace(b"\n", b"\r\n")
    raw = message(
        b'Content-Type: multipart/mixed; boundary="m"\r\n',
        b"--m\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
        b"--m\r\nContent-Type: application/pdf; name=a.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + pdf + b"--m--\r\n",
    )
    text, attachment = leaves(decorate(raw, LIST))
    assert content(text).startswith(b"See attached.\n____")
    assert attachment.get_payload(decode=True) == b"%PDF-1.4 fake"


def test_mixed_with_an_image_first_gets_a_footer_part_at_the_end() -> None:
    raw = message(
        b'Content-Type: multipart/mixed; boundary="m"\r\n',
        b"--m\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"iVBORw0KGgo=\r\n--m--\r\n",
    )
    report = decorate_report(raw, LIST)
    image, footer = leaves(report.raw)
    assert report.body is Body.FOOTER_PART
    assert image.get_payload(decode=True) == base64.b64decode(b"iVBORw0KGgo=")
    assert footer.get_content_type() == "text/plain"
    assert footer["Content-Disposition"] == "inline"
    assert b"City Clerks department mailing list" in content(footer)


def test_text_attachment_first_is_not_taken_for_the_message_text() -> None:
    raw = message(
        b'Content-Type: multipart/mixed; boundary="m"\r\n',
        b"--m\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt"
        b"\r\n\r\nfile content\r\n--m--\r\n",
    )
    attachment, footer = leaves(decorate(raw, LIST))
    assert content(attachment) == b"file content"
    assert b"mailing list" in content(footer)


def test_related_html_root_gets_the_footer() -> None:
    raw = message(
        b'Content-Type: multipart/related; boundary="r"\r\n',
        b"--r\r\nContent-Type: text/html\r\n\r\n<body><img src=cid:x></body>\r\n"
        b"--r\r\nContent-Type: image/gif\r\nContent-ID: <x>\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nR0lGODlh\r\n--r--\r\n",
    )
    html, gif = leaves(decorate(raw, LIST))
    assert b"list-footer" in content(html)
    assert gif.get_payload(decode=True) == base64.b64decode(b"R0lGODlh")


@pytest.mark.parametrize(
    "content_type",
    [
        b'multipart/signed; protocol="application/pgp-signature"; micalg=pgp-sha256; boundary="s"',
        b'multipart/encrypted; protocol="application/pgp-encrypted"; boundary="s"',
    ],
)
def test_signed_or_encrypted_is_wrapped_byte_for_byte(content_type: bytes) -> None:
    signed_body = (
        b"--s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nI approve the minutes.\r\n"
        b"--s\r\nContent-Type: application/pgp-signature\r\n\r\n-----BEGIN PGP SIGNATURE-----"
        b"\r\nabc\r\n-----END PGP SIGNATURE-----\r\n--s--\r\n"
    )
    raw = message(b"Content-Type: " + content_type + b"\r\n", signed_body)
    report = decorate_report(raw, LIST)
    assert report.body is Body.WRAPPED
    top = parse(report.raw)
    assert top.get_content_type() == "multipart/mixed"
    original, footer = top.get_payload()
    assert b"Content-Type: " + content_type + b"\r\n\r\n" + signed_body in report.raw
    assert original.get_content_type() == content_type.split(b";")[0].decode()
    assert b"mailing list" in content(footer)


def test_utf16_text_is_wrapped_rather_than_garbled() -> None:
    body = "Hello".encode("utf-16")
    raw = message(
        b"Content-Type: text/plain; charset=utf-16\r\nContent-Transfer-Encoding: base64\r\n",
        base64.encodebytes(body).replace(b"\n", b"\r\n"),
    )
    report = decorate_report(raw, LIST)
    assert report.body is Body.WRAPPED
    assert leaves(report.raw)[0].get_payload(decode=True) == body


def test_damaged_multipart_is_left_alone_with_a_reason() -> None:
    raw = message(b'Content-Type: multipart/mixed; boundary="gone"\r\n', b"no parts at all\r\n")
    report = decorate_report(raw, LIST)
    assert report.body is Body.HEADERS_ONLY
    assert "start boundary not found" in report.reason
    assert report.raw.endswith(b"\r\n\r\nno parts at all\r\n")
    assert b"List-Id:" in report.raw


def test_missing_close_delimiter_still_gets_the_footer() -> None:
    raw = message(
        b'Content-Type: multipart/alternative; boundary="nextPart"\r\n',
        b"--nextPart\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nSome body\r\n",
    )
    report = decorate_report(raw, LIST)
    assert report.body is Body.FOOTER
    assert content(leaves(report.raw)[0]).startswith(b"Some body\n____")


def test_no_footer_configured_leaves_the_body_as_received() -> None:
    lst = ListIdentity(address=LIST.address, display_name="x", short_name="x")
    raw = message(b"Content-Type: text/plain\r\n", b"Body\r\n")
    report = decorate_report(raw, lst)
    assert report.body is Body.UNCHANGED
    assert report.raw.endswith(b"\r\n\r\nBody\r\n")
