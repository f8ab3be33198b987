"""Wire form: CRLF everywhere, 8-bit and long lines survive parse and serialise."""

from __future__ import annotations

from email.message import EmailMessage

from mailer.wire import (
    fold_items,
    has_8bit_body,
    insert_header_lines,
    needs_smtputf8,
    overlong_lines,
    parse,
    serialise,
    split_head,
    to_crlf,
    to_wire_form,
)


def test_every_line_end_becomes_crlf() -> None:
    assert to_crlf(b"a\nb\r\nc\rd") == b"a\r\nb\r\nc\r\nd"
    assert to_crlf(b"a\r\r\nb") == b"a\r\n\r\nb"  # as CPython's parser reads it


def test_mbox_envelope_line_is_not_part_of_the_message() -> None:
    assert to_wire_form(b"From x@y Mon Jan 1\nSubject: a\n\nb\n") == b"Subject: a\r\n\r\nb\r\n"


def test_head_split_matches_cpython_on_a_missing_blank_line() -> None:
    fields, body_start = split_head(b"Subject: a\r\n b\r\nnot a header\r\nbody\r\n")
    assert fields == [b"Subject: a\r\n b\r\n"]
    assert body_start == len(b"Subject: a\r\n b\r\n")


def test_personal_lines_are_spliced_before_the_blank_line() -> None:
    out = insert_header_lines(b"A: 1\r\n\r\nbody\r\n", b"B: 2\r\n")
    assert out == b"A: 1\r\nB: 2\r\n\r\nbody\r\n"


def test_structured_fields_fold_only_between_items() -> None:
    long_url = "<https://lists.cacities.org/u/" + "x" * 90 + ">"
    field = fold_items("List-Unsubscribe", [long_url, "<mailto:a@b.org>"])
    assert field == f"List-Unsubscribe: {long_url},\r\n <mailto:a@b.org>\r\n".encode()


def test_overlong_lines_are_found() -> None:
    assert overlong_lines(b"short\r\n" + b"x" * 999 + b"\r\n") == [b"x" * 999]
    assert overlong_lines(b"x" * 998) == []


def test_8bit_detection_for_smtputf8_and_8bitmime() -> None:
    raw = "Subject: Café\r\n\r\nplain\r\n".encode()
    assert needs_smtputf8(raw) and not has_8bit_body(raw)
    body_8bit = "Subject: x\r\n\r\nCafé\r\n".encode()
    assert has_8bit_body(body_8bit) and not needs_smtputf8(body_8bit)


def test_serialise_uses_crlf_and_reencodes_long_lines_it_builds() -> None:
    message = EmailMessage()
    message["Subject"] = "Résumé"
    message.set_content("word " * 400)
    raw = serialise(message)
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert overlong_lines(raw) == []
    assert b"=?utf-8?" in raw
    assert parse(raw).get_content().replace("\r\n", "\n") == "word " * 400 + "\n"


def test_serialise_for_smtputf8_keeps_raw_utf8_headers() -> None:
    message = EmailMessage()
    message["Subject"] = "Résumé"
    message.set_content("x")
    assert "Subject: Résumé".encode() in serialise(message, smtputf8=True)


def test_parsed_8bit_body_round_trips_unchanged() -> None:
    raw = (
        "Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Fresno\r\n"
    ).encode()
    assert serialise(parse(raw)) == raw
