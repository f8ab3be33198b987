"""The list's subject prefix: added once, never doubled by reply chains, any charset."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest

from mailer.subject import decode_subject, encode_subject, prefixed, subject_field

PREFIX = "[City Clerks]"


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Budget hearing", "[City Clerks] Budget hearing"),
        ("[City Clerks] Budget hearing", "[City Clerks] Budget hearing"),
        ("Re: [City Clerks] Re: x", "[City Clerks] Re: x"),
        ("Re: [City Clerks] Budget", "[City Clerks] Re: Budget"),
        ("RE: RE: [City Clerks] Budget", "[City Clerks] Re: Budget"),
        ("AW: [City Clerks] Haushalt", "[City Clerks] Re: Haushalt"),
        ("SV: Re: [City Clerks] x", "[City Clerks] Re: x"),
        ("Antw: [City Clerks] agenda", "[City Clerks] Re: agenda"),
        ("Re[2]: [City Clerks] x", "[City Clerks] Re: x"),
        ("Re : [city clerks] x", "[City Clerks] Re: x"),
        ("Fwd: [City Clerks] Minutes", "[City Clerks] Fwd: Minutes"),
        ("FW: Minutes", "[City Clerks] Fwd: Minutes"),
        ("Re: Fwd: [City Clerks] Minutes", "[City Clerks] Re: Fwd: Minutes"),
        ("[City Clerks] Re: [City Clerks] Re: x", "[City Clerks] Re: x"),
        ("Reports: Q3", "[City Clerks] Reports: Q3"),
        ("Res: 2024-15 adopted", "[City Clerks] Res: 2024-15 adopted"),
        ("[Other List] Re: x", "[City Clerks] [Other List] Re: x"),
        ("", "[City Clerks] (no subject)"),
        ("Re:", "[City Clerks] Re:"),
        ("  spaced\t out  ", "[City Clerks] spaced out"),
    ],
)
def test_prefix_is_added_once_and_reply_chains_collapse(subject: str, expected: str) -> None:
    assert prefixed(subject, PREFIX) == expected


def test_empty_prefix_leaves_the_subject_alone() -> None:
    assert subject_field(b"Subject: Re: AW: x\r\n", "") is None


def test_subject_already_prefixed_keeps_the_senders_bytes() -> None:
    assert subject_field(b"Subject: [City Clerks] Budget\r\n", PREFIX) is None


def test_missing_subject_gets_prefix_and_placeholder() -> None:
    assert subject_field(None, PREFIX) == b"Subject: [City Clerks] (no subject)\r\n"


def test_encoded_subject_keeps_its_encoded_words_when_only_prefixed() -> None:
    raw = b"Subject: =?iso-2022-jp?B?GyRCJUYlOSVIGyhC?=\r\n"
    new = subject_field(raw, PREFIX)
    assert new == b"Subject: [City Clerks] =?iso-2022-jp?B?GyRCJUYlOSVIGyhC?=\r\n"
    assert _decoded(new) == "[City Clerks] テスト"


def test_encoded_reply_chain_is_decoded_fixed_and_re_encoded() -> None:
    raw = b"Subject: Re: =?utf-8?q?=5BCity_Clerks=5D_R=C3=A9union?=\r\n"
    new = subject_field(raw, PREFIX)
    assert new is not None
    assert _decoded(new) == "[City Clerks] Re: Réunion"
    assert new.isascii()


def test_ascii_result_is_not_encoded() -> None:
    raw = b"Subject: Re: =?utf-8?q?=5BCity_Clerks=5D_hello?=\r\n"
    assert subject_field(raw, PREFIX) == b"Subject: [City Clerks] Re: hello\r\n"


def test_raw_utf8_subject_is_decoded() -> None:
    raw_value = "Re: [City Clerks] Café".encode()
    assert decode_subject(raw_value) == "Re: [City Clerks] Café"
    new = subject_field(b"Subject: " + raw_value + b"\r\n", PREFIX)
    assert new is not None
    assert _decoded(new) == "[City Clerks] Re: Café"


def test_unknown_charset_is_kept_as_written_when_only_prefixed() -> None:
    raw = b"Subject: =?x-unknown?q?abc=E9?=\r\n"
    assert subject_field(raw, PREFIX) == b"Subject: [City Clerks] =?x-unknown?q?abc=E9?=\r\n"


def test_long_subject_is_folded_under_78_columns() -> None:
    text = "[City Clerks] " + " ".join(["ordinance"] * 40)
    field = encode_subject(text)
    assert all(len(line) <= 78 for line in field.split(b"\r\n"))
    assert _decoded(field) == text


def test_long_non_ascii_subject_folds_as_encoded_words() -> None:
    text = "[City Clerks] " + "Présentation du budget municipal " * 20
    field = encode_subject(text.strip())
    assert field.isascii()
    assert all(len(line) <= 78 for line in field.split(b"\r\n"))
    assert _decoded(field) == text.strip()


def test_a_single_word_longer_than_a_line_is_still_folded() -> None:
    field = encode_subject("[City Clerks] " + "x" * 2000)
    assert max(len(line) for line in field.split(b"\r\n")) <= 998
    assert _decoded(field) == "[City Clerks] " + "x" * 2000


def test_folded_prefix_unfolds_to_a_single_space() -> None:
    raw = b"Subject: =?utf-8?q?" + b"a" * 60 + b"?=\r\n"
    new = subject_field(raw, PREFIX)
    assert new is not None
    assert _decoded(new) == "[City Clerks] " + "a" * 60


def _decoded(field: bytes) -> str:
    message = message_from_bytes(field + b"\r\n", policy=policy.default)
    return str(message["Subject"])
