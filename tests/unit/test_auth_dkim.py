"""DKIM verification through dkimpy with injected DNS records; never the internet."""

from __future__ import annotations

import importlib.util
from email import message_from_bytes, policy
from pathlib import Path

import dkim
import pytest

from mailer.authresults import AuthVerdict
from mailer.dkim_verify import (
    DkimResult,
    DnsFunc,
    authenticate,
    dkim_verdict,
    static_dns,
    verdict_from_dkim,
    verify_signatures,
)

INBOUND = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "inbound"

# The public test keys of RFC 8463 appendix A (also dkimpy's and authheaders' test keys).
# Published test vectors: never use them for real mail.
RFC_RSA_RECORD = (
    "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWR"
    "iGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutAC"
    "DfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3"
    "Ip3G+2kryOTIKT+l/K4w3QIDAQAB"
)
RFC_ED25519_RECORD = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
RFC_RSA_PRIVATE_BODY = """\
MIICXQIBAAKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQi
Y/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqM
KrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB
AoGAH0cxOhFZDgzXWhDhnAJDw5s4roOXN4OhjiXa8W7Y3rhX3FJqmJSPuC8N9vQm
6SVbaLAE4SG5mLMueHlh4KXffEpuLEiNp9Ss3O4YfLiQpbRqE7Tm5SxKjvvQoZZe
zHorimOaChRL2it47iuWxzxSiRMv4c+j70GiWdxXnxe4UoECQQDzJB/0U58W7RZy
6enGVj2kWF732CoWFZWzi1FicudrBFoy63QwcowpoCazKtvZGMNlPWnC7x/6o8Gc
uSe0ga2xAkEA8C7PipPm1/1fTRQvj1o/dDmZp243044ZNyxjg+/OPN0oWCbXIGxy
WvmZbXriOWoSALJTjExEgraHEgnXssuk7QJBALl5ICsYMu6hMxO73gnfNayNgPxd
WFV6Z7ULnKyV7HSVYF0hgYOHjeYe9gaMtiJYoo0zGN+L3AAtNP9huqkWlzECQE1a
licIeVlo1e+qJ6Mgqr0Q7Aa7falZ448ccbSFYEPD6oFxiOl9Y9se9iYHZKKfIcst
o7DUw1/hz2Ck4N5JrgUCQQCyKveNvjzkkd8HjYs0SwM0fPjK16//5qDZ2UiDGnOe
uEzxBDAr518Z8VFbR41in3W4Y3yCDgQlLlcETrS+zYcL
"""
_ARMOUR = "RSA PRIVATE KEY"
RFC_RSA_PRIVATE = f"-----BEGIN {_ARMOUR}-----\n{RFC_RSA_PRIVATE_BODY}-----END {_ARMOUR}-----\n"

FOOTBALL_DNS = static_dns(
    {
        "test._domainkey.football.example.com": RFC_RSA_RECORD,
        "brisbane._domainkey.football.example.com": RFC_ED25519_RECORD,
    }
)
NACL = importlib.util.find_spec("nacl") is not None

CITY_POST = b"""\
From: Pat Clerk <pat@ci.berkeley.ca.us>
To: city-clerks@lists.cacities.org
Subject: Agenda posting deadlines
Date: Thu, 26 Nov 2026 09:30:00 -0800
Message-ID: <agenda-1@ci.berkeley.ca.us>

How early do you post agendas?
"""


def corpus_bytes(name: str) -> bytes:
    path = INBOUND / name
    if not path.is_file():
        pytest.fail(f"the shared corpus is missing {path}")
    return path.read_bytes()


def signed(message: bytes, domain: str, *, length: bool = False) -> bytes:
    signature = dkim.sign(
        message,
        b"test",
        domain.encode(),
        RFC_RSA_PRIVATE.encode(),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
        length=length,
    )
    return signature + message


def dns_for(*domains: str) -> DnsFunc:
    return static_dns({f"test._domainkey.{d}": RFC_RSA_RECORD for d in domains})


# ---- the corpus's signed messages --------------------------------------------------------


def test_rfc_6376_rsa_message_verifies_and_is_aligned() -> None:
    raw = corpus_bytes("dkimpy__rfc6376.signed.rsa.msg")
    assert verify_signatures(raw, dnsfunc=FOOTBALL_DNS) == (
        DkimResult("football.example.com", "test", "pass"),
    )
    assert dkim_verdict(raw, dnsfunc=FOOTBALL_DNS) == AuthVerdict(
        dkim_aligned=True, source="dkim", from_domain="football.example.com"
    )


def test_rfc_8463_message_with_ed25519_and_rsa_signatures() -> None:
    raw = corpus_bytes("dkimpy__rfc6376.signed.msg")
    ed25519, rsa = verify_signatures(raw, dnsfunc=FOOTBALL_DNS)
    assert rsa.result == "pass"
    assert ed25519.result == ("pass" if NACL else "permerror")  # PyNaCl is optional
    assert dkim_verdict(raw, dnsfunc=FOOTBALL_DNS).dkim_aligned


def test_the_dns_function_is_asked_for_the_selector_record() -> None:
    asked: list[bytes] = []

    def dnsfunc(name: bytes, timeout: int = 5) -> str | None:
        asked.append(name)
        return RFC_RSA_RECORD

    verify_signatures(corpus_bytes("dkimpy__rfc6376.signed.rsa.msg"), dnsfunc=dnsfunc)
    assert asked == [b"test._domainkey.football.example.com."]


@pytest.mark.parametrize(
    ("records", "why"),
    [
        ({}, "no key published"),
        ({"test._domainkey.football.example.com": "v=DKIM1; k=rsa; p="}, "key revoked"),
        ({"test._domainkey.football.example.com": "v=DKIM1; p=not base64!"}, "junk key"),
    ],
)
def test_without_the_right_key_nothing_passes(records: dict[str, str], why: str) -> None:
    raw = corpus_bytes("dkimpy__rfc6376.signed.rsa.msg")
    (result,) = verify_signatures(raw, dnsfunc=static_dns(records))
    assert result.result in {"fail", "permerror"}, why
    assert not dkim_verdict(raw, dnsfunc=static_dns(records)).authenticated


def test_a_changed_body_fails() -> None:
    raw = corpus_bytes("dkimpy__rfc6376.signed.rsa.msg").replace(b"lost", b"won")
    assert verify_signatures(raw, dnsfunc=FOOTBALL_DNS)[0].result == "fail"


def test_authheaders_messages_whose_from_was_changed_after_signing_fail() -> None:
    dns = dns_for("example.com", "example.biz")
    for name in ("message_sub", "message_np1", "message_multi"):
        raw = corpus_bytes(f"authheaders__test.{name}.eml")
        assert [r.result for r in verify_signatures(raw, dnsfunc=dns)] == ["fail"], name
        # Their own Authentication-Results claim dmarc=pass, from an id we do not trust:
        msg = message_from_bytes(raw, policy=policy.default)
        verdict = authenticate(
            raw, msg, trusted_authserv_ids={"mx.lists.cacities.org"}, dnsfunc=dns
        )
        assert not verdict.authenticated, name


# ---- fresh signatures with the RFC test key -----------------------------------------------


@pytest.mark.parametrize(
    ("signing_domain", "is_aligned"),
    [
        ("berkeley.ca.us", True),  # the city's organisational domain
        ("ci.berkeley.ca.us", True),
        ("mail.berkeley.ca.us", True),
        ("ca.us", False),  # a public suffix
        ("oakland.ca.us", False),  # another city
        ("esp-mailer.example", False),  # a third-party sender signing as itself
    ],
)
def test_a_valid_signature_counts_only_when_aligned(signing_domain: str, is_aligned: bool) -> None:
    raw = signed(CITY_POST, signing_domain)
    (result,) = verify_signatures(raw, dnsfunc=dns_for(signing_domain))
    assert result == DkimResult(signing_domain, "test", "pass")
    assert dkim_verdict(raw, dnsfunc=dns_for(signing_domain)).dkim_aligned is is_aligned


def test_a_body_length_limit_is_no_pass() -> None:
    raw = signed(CITY_POST, "berkeley.ca.us", length=True) + b"\nBuy cheap watches!\n"
    (result,) = verify_signatures(raw, dnsfunc=dns_for("berkeley.ca.us"))
    assert result.result == "policy"
    assert not dkim_verdict(raw, dnsfunc=dns_for("berkeley.ca.us")).authenticated


def test_only_the_topmost_signatures_are_checked() -> None:
    raw = signed(signed(CITY_POST, "esp-mailer.example"), "berkeley.ca.us")
    both = dns_for("esp-mailer.example", "berkeley.ca.us")
    assert [r.domain for r in verify_signatures(raw, dnsfunc=both)] == [
        "berkeley.ca.us",
        "esp-mailer.example",
    ]
    assert len(verify_signatures(raw, dnsfunc=both, max_signatures=1)) == 1


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff" * 100,
        b"DKIM-Signature: v=1; a=rsa-sha256; d=x.org; s=s; h=from; bh=; b=\n\nbody\n",
        b"DKIM-Signature: garbage\nFrom: a@x.org\n\nbody\n",
        b"DKIM-Signature: v=1; a=rsa-sha256; d=; s=; h=; bh=!!; b=!!\nFrom: a@x.org\n\nbody\n",
    ],
)
def test_junk_never_raises_and_never_passes(raw: bytes) -> None:
    assert all(r.result != "pass" for r in verify_signatures(raw, dnsfunc=static_dns({})))
    assert not dkim_verdict(raw, dnsfunc=static_dns({})).authenticated


def test_verdict_from_results_is_pure() -> None:
    results = [DkimResult("berkeley.ca.us", "s1", "pass"), DkimResult("evil.example", "s", "fail")]
    assert verdict_from_dkim(results, "ci.berkeley.ca.us").dkim_aligned
    assert not verdict_from_dkim(results, None).dkim_aligned
    assert verdict_from_dkim([], "ci.berkeley.ca.us").source == "none"


# ---- authenticate: trusted headers first, then our own DKIM check ---------------------------


def test_a_trusted_pass_needs_no_dns_lookup() -> None:
    raw = b"Authentication-Results: mx.lists.cacities.org; dkim=pass header.d=berkeley.ca.us\n"
    raw += CITY_POST
    msg = message_from_bytes(raw, policy=policy.default)

    def no_dns(name: bytes, timeout: int = 5) -> None:
        raise AssertionError(f"looked up {name!r}")

    verdict = authenticate(raw, msg, trusted_authserv_ids={"mx.lists.cacities.org"}, dnsfunc=no_dns)
    assert (verdict.authenticated, verdict.source) == (True, "authres")


def test_our_own_dkim_check_backs_up_silent_headers() -> None:
    raw = signed(CITY_POST, "berkeley.ca.us")
    msg = message_from_bytes(raw, policy=policy.default)
    dns = dns_for("berkeley.ca.us")
    verdict = authenticate(raw, msg, trusted_authserv_ids={"mx.lists.cacities.org"}, dnsfunc=dns)
    assert (verdict.authenticated, verdict.source) == (True, "dkim")
    off = authenticate(raw, msg, trusted_authserv_ids=(), dnsfunc=dns, verify_dkim=False)
    assert off == AuthVerdict(from_domain="ci.berkeley.ca.us")
