"""DKIM signing of outgoing copies: every shape the delivery engine sends must verify.

dkimpy's own verifier checks each signature, with the public keys given through an
injected ``dnsfunc`` (never the internet), after the personal lines are spliced in, after
the outbox relay heads the file, and after a real SMTP hop with dot-stuffing.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import re
from pathlib import Path

import dkim
import pytest

from mailer import dkim_sign
from mailer.dkim_sign import (
    PreparedMessage,
    Signer,
    SigningError,
    SigningKey,
    load_key,
    rsa_key,
)
from mailer.dkim_verify import static_dns
from mailer.listheaders import personal_headers
from mailer.settings import Relay
from mailer.transport import Copy, OutboxSender, SmtpSender

NACL = importlib.util.find_spec("nacl") is not None
CRYPTOGRAPHY = importlib.util.find_spec("cryptography") is not None
needs_nacl = pytest.mark.skipif(not NACL, reason="Ed25519 needs PyNaCl")

# A 2048-bit RSA key made for these tests only (openssl genrsa -traditional 2048): never
# publish it.  The armour is built so that secret scanners do not take it for a leak.
_ARMOUR = "RSA PRIVATE KEY"
TEST_RSA_BODY = """\
MIIEpAIBAAKCAQEA1lJu38mvE70CCwGj2vehTYyzlTx5gsK4ZANxC/o2cgSub2R4
vHvQ7+uvFrjfc9pxJ7YHP1Gn87gxLsJXIw5qxUIi5BxcJKDP82VcvbqUCZ1SGQSH
u27CXtD/BivCe214eYFbyrJlr1ANAKdj4g41+GNcjCXsLxSk+Ma6IEqk8c6huxig
P8/UU1MWjKCXHN2UEsSZjTPrZeFZ0C5I5d8ZtkHLJMmGXgDi34hEu6tep4QHeVCR
yPx9iieHGEKQF71CIWsZJGJWBgvULJpBRhsDXkvbzhDj8pUB3iLli+aguBCWx+9h
pufaEIesdKtW2ip6XWyg8ayq6/tLqO21Im7JkwIDAQABAoIBAGMTSF37hgvB3Cfq
YizfPJn06S+b/TANg9/4F1JKINEkiN7Fu2qmcjf248HFRMbxvE13QHJs9Q8dnt7W
yCFUkNcPc8GvuojULk1+Fhk/HyAysbkO9xAWa5QZWUso/4a/XGoO+rgBMDCS+O/M
ccgWeayRgj7naP96s6itdW1oFEgTPO9bM/q0ar6bMOsmSnsh/HQA6k7mS0c0WA5r
O5hd9s2WHK68aWBMSMzdNGxwhJ5jNYJzwb851uOhVCixHV/Kk0vjXOT8IwpVtpyK
zEWOF/hZBmAb9ErkoAUBbuNiw16fgDd0YgVdCkWMOwXfI9Mm656vYx76bJGMvKZH
iFenMQECgYEA60ZNMYaRlHbOKFixIbAvxty8oSPiA5UurYATx3ZHc+eMK1AxSm6O
f/PegW/9B/noIeJaFkqrU8wSAQe/lxNIuPvfNP/bCMMusU/Dvirk+Wk2kQgYtOQ6
1wmH05m6NLIGjEjgEIqmiJ5hV76YLEG/J8lap5KIZdIWvfuoLpvGZAMCgYEA6TOg
nR1a3Z0Pg4tqgpgs5Ht6bk6LngR7hJvJkl99j6wf3zKvJkN+NQK7QqO4vXBdeCpj
FGDyz1DGBzr8vHDAFgmSTnlbfzrywpTmZCSFFXZkmOiyLlJ8JTS4YB48DEptBEk2
LJd/T2Vi0+qDkgDnt2PHVCv9TXMuUeSrARdTNzECgYEAwOjb0ofsRjdDwoE2e9Di
28OSRu4NG7LumwQxM5Mf80EgBUOzprwPy4pCHw+cATY/x8i45R5EbGkfOgkIZu9A
6axb0DEZf43Kc0hbz0mMhZRnUXO6Dlg0hq0h2bZqn1p5U/1M+0M0WUDDwBZe36ro
+c53rn7Pp+0jCJOXyt+fQ9ECgYEAgigAgvB5YKtil0be4ZjRpYyNXreUEVPrJK5W
qM2HJQMqnsaJH1AYRroJjj4WxBTM9l6iAiPCIZexjyOLIBnF/AbHk+kD+lUKXTQC
Cu6fIMV9jCKEIHqFM7bjGTKGzU1U30mFZQoBUm0B5clEOd8rdR3JiN8sd2fL+IUq
NGeyWGECgYAzlvhJOpvfqVA+4qvFEEKq5+KQI5WPfNEyM0X7g1qfCsA62ARY2CG0
JxpT1qqcAiE0hcQ9HAtoVyUmxQZmNGIxUPs2vwgmK5sjsKAE2SLxf9Kvy9nxRhum
gZIsbNUMN93I0HIp/dYw+FiGi5wyHcWA1CnJ0malGryD144vwbA0rg==
"""
TEST_RSA_PEM = f"-----BEGIN {_ARMOUR}-----\n{TEST_RSA_BODY}-----END {_ARMOUR}-----\n".encode()
TEST_RSA_PUBLIC = (
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA1lJu38mvE70CCwGj2vehTYyzlTx5"
    "gsK4ZANxC/o2cgSub2R4vHvQ7+uvFrjfc9pxJ7YHP1Gn87gxLsJXIw5qxUIi5BxcJKDP82Vc"
    "vbqUCZ1SGQSHu27CXtD/BivCe214eYFbyrJlr1ANAKdj4g41+GNcjCXsLxSk+Ma6IEqk8c6h"
    "uxigP8/UU1MWjKCXHN2UEsSZjTPrZeFZ0C5I5d8ZtkHLJMmGXgDi34hEu6tep4QHeVCRyPx9"
    "iieHGEKQF71CIWsZJGJWBgvULJpBRhsDXkvbzhDj8pUB3iLli+aguBCWx+9hpufaEIesdKtW"
    "2ip6XWyg8ayq6/tLqO21Im7JkwIDAQAB"
)
# RFC 8463 appendix A's published Ed25519 test key (seed and public key).
RFC_ED25519_SEED = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="
RFC_ED25519_PUBLIC = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
# 512 bits: too weak to be accepted (RFC 8301); only here to be refused.
WEAK_RSA_PEM = (f"-----BEGIN {_ARMOUR}-----\n" """\
MIIBOgIBAAJBANMIKxPqTMbwxnaFSjX8BuKXW8nDbHB+nL2jAnaQk98HgMC7Y/IM
3Ohks0F5dxKweqDuuShMBYrry5Urm1TGkx0CAwEAAQJALY905W7PNqAi6NGsDO2l
euQcn/m9/qeHJXX9ASYDlsG+UNp+4Erc9UUGb1X1+evBYWGHj+l00kYW7l9iZx0Y
wQIhAPlmSdjmF6Wgp0Kgb642FTtiAgks18QWSyqNjk1G1oyNAiEA2J3vNHmNhQGJ
88L97Y6KEjpCFo/7AA3AXFb7wVXCJNECIQC6UPBaWYrQ8XQDElhcjYrPEijzMcz/
cKg24gmtMX6XAQIgQJTdo0R2J+hsi6tf73pmucZ6u6VTjRGMfztDtcFur3ECIHTZ
oB4O0iLqbRsI0+gy+Ng+R49KuOkgBHltjFTGsQG+
""" f"-----END {_ARMOUR}-----\n").encode()

DOMAIN = "lists.cacities.org"
DNS = static_dns({
    f"cm-rsa._domainkey.{DOMAIN}": f"v=DKIM1; k=rsa; p={TEST_RSA_PUBLIC}",
    f"cm-ed._domainkey.{DOMAIN}": f"v=DKIM1; k=ed25519; p={RFC_ED25519_PUBLIC}",
})
NOW = 1_790_000_000  # 2026-09: a fixed t= for byte-for-byte comparisons


def personal(token: str = "tok-1") -> bytes:
    return personal_headers(f"https://lists.cacities.org/u/{token}",
                            f"mailto:city-clerks-leave@{DOMAIN}")


def post(body: bytes, *, bulk: bool = False) -> bytes:
    """A decorated list post as the delivery engine holds it (CRLF wire form)."""
    lines = [
        b"Received: from mx.city.example by gateway; Mon, 2 Nov 2026 09:00:00 -0800",
        'From: "Ana Pérez" <ana@sanmateo.example>'.encode(),
        b"To: city-clerks@lists.cacities.org",
        b"Subject: [City Clerks] Records  retention\r\n  schedule question",
        b"Date: Mon, 2 Nov 2026 09:00:00 -0800",
        b"Message-ID: <q1@sanmateo.example>",
        b"MIME-Version: 1.0",
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Transfer-Encoding: 8bit",
        b'List-Id: "City Clerks department" <city-clerks.lists.cacities.org>',
        b"List-Post: <mailto:city-clerks@lists.cacities.org>",
        b"X-BeenThere: city-clerks@lists.cacities.org",
        b"Precedence: list",
    ]
    if bulk:
        lines.insert(10, b"List-Unsubscribe: <https://lists.cacities.org/lists/city-clerks>,\r\n"
                         b" <mailto:city-clerks-leave@lists.cacities.org>")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


TEXT = "Hello clerks,\r\n\r\nDoes anyone keep café permits   past 7 years?  \r\n".encode()
SHARED = post(TEXT + b".\r\n..leading dots\r\n-- \r\nfooter\r\n")
BULK = post(TEXT, bulk=True)


def results(message: bytes) -> list[bool]:
    """dkimpy's verdict on each DKIM-Signature, topmost first, with the injected DNS."""
    count = sum(1 for name, _ in dkim.DKIM(message).headers
                if name.lower() == b"dkim-signature")
    return [_verify(message, i) for i in range(count)]


def _verify(message: bytes, index: int) -> bool:
    try:
        return bool(dkim.DKIM(message).verify(idx=index, dnsfunc=DNS))
    except dkim.DKIMException:  # e.g. "body hash mismatch"
        return False


def h_names(signature_lines: bytes) -> list[bytes]:
    return re.split(rb"\s*:\s*", tags(signature_lines)[b"h"].strip())


def tags(signature_lines: bytes, index: int = 0) -> dict[bytes, bytes]:
    fields = [f for f in signature_lines.split(b"DKIM-Signature:") if f]
    return dkim.util.parse_tag_value(fields[index])


@pytest.fixture(params=["dkimpy", pytest.param("cryptography", marks=pytest.mark.skipif(
    not CRYPTOGRAPHY, reason="the OpenSSL backend needs cryptography"))])
def signer(request: pytest.FixtureRequest) -> Signer:
    return Signer(DOMAIN, [cached_rsa_key(request.param)], clock=lambda: NOW)


@functools.cache
def cached_rsa_key(backend: str = "auto") -> SigningKey:
    """The test RSA key, loaded once (OpenSSL checks an RSA key for ~0.1 s when loading)."""
    return rsa_key(TEST_RSA_PEM, "cm-rsa", backend=backend)


def test_personalised_copies_verify_after_their_own_lines_are_spliced_in(signer: Signer) -> None:
    prepared = signer.prepare(SHARED)
    copies = []
    for token in ("tok-1", "tok-2", "tok-3"):
        head = personal(token)
        signature = prepared.sign(head)
        copies.append(signature)
        assert results(signature + head + SHARED) == [True]
    assert len(set(copies)) == 3  # each recipient's List-Unsubscribe is signed


def test_a_newsletter_copy_with_its_own_to_line_is_signed_over_it(signer: Signer) -> None:
    shared = SHARED.replace(b"To: city-clerks@lists.cacities.org\r\n", b"")
    prepared = signer.prepare(shared)
    head = "To: \"Ana Pérez\" <ana@sanmateo.example>\r\n".encode() + personal()
    signature = prepared.sign(head)
    assert h_names(signature).count(b"to") == 1
    assert results(signature + head + shared) == [True]
    other = head.replace(b"ana@sanmateo.example", b"bo@sanmateo.example")
    assert results(signature + other + shared) == [False]


def test_bulk_copy_carries_one_signature_for_every_recipient(signer: Signer) -> None:
    signature = signer.prepare(BULK).sign()
    assert results(signature + BULK) == [True]
    assert signature == signer.sign(BULK)


def test_signature_lists_the_fields_present_and_oversigns_the_ones_readers_act_on(
        signer: Signer) -> None:
    head = personal()
    names = h_names(signer.prepare(SHARED).sign(head))
    assert names == [b"from", b"from", b"reply-to", b"to", b"subject", b"subject", b"date",
                     b"message-id", b"mime-version", b"content-type", b"content-type",
                     b"content-transfer-encoding", b"list-id", b"list-unsubscribe",
                     b"list-unsubscribe", b"list-unsubscribe-post", b"list-unsubscribe-post",
                     b"list-post"]
    # Bulk: the list-level List-Unsubscribe is signed; a one-click pair may not be added.
    bulk = h_names(signer.sign(BULK))
    assert bulk.count(b"list-unsubscribe") == 2 and bulk.count(b"list-unsubscribe-post") == 1
    assert b"cc" not in bulk and b"received" not in bulk and b"x-beenthere" not in bulk


def test_signature_tags_are_relaxed_without_a_length_limit(signer: Signer) -> None:
    signature = signer.sign(SHARED)
    fields = tags(signature)
    assert fields[b"c"] == b"relaxed/relaxed" and fields[b"a"] == b"rsa-sha256"
    assert fields[b"d"] == DOMAIN.encode() and fields[b"s"] == b"cm-rsa"
    assert fields[b"t"] == str(NOW).encode() and b"l" not in fields
    assert signature.endswith(b"\r\n")
    assert all(len(line) <= 78 for line in signature.split(b"\r\n"))


@pytest.mark.parametrize("body", [
    "Grüße aus Sacramento — ñandú\r\n".encode() * 40,
    "Latin-1 bytes: caf\xe9 na\xefve\r\n".encode("latin-1"),
    b"x" * 5000 + b"\r\n" + b"A" * 1200 + b"\r\n",
    b"no final line end",
    b"",
    b"\r\n\r\n\r\n",
    b"trailing blanks   \t\r\n\r\n\r\n",
], ids=["utf8", "latin1", "long-lines", "no-final-crlf", "empty", "blank-lines", "trailing-ws"])
def test_8bit_and_long_line_bodies_verify(signer: Signer, body: bytes) -> None:
    head = personal()
    for shared in (post(body), post(body, bulk=True)):
        signature = signer.prepare(shared).sign(head)
        assert results(signature + head + shared) == [True]


def test_a_list_unsubscribe_changed_after_signing_fails(signer: Signer) -> None:
    head = personal("tok-1")
    signature = signer.prepare(SHARED).sign(head)
    assert results(signature + personal("tok-2") + SHARED) == [False]
    bulk_signature = signer.sign(BULK)
    changed = BULK.replace(b"/lists/city-clerks>", b"/lists/evil>")
    assert results(bulk_signature + changed) == [False]


@pytest.mark.parametrize("added", [
    b"List-Unsubscribe: <https://evil.example/u/x>\r\n",
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
    b"From: ceo@cacities.org\r\n",
    b"Subject: urgent wire transfer\r\n",
])
def test_a_field_added_on_top_after_signing_fails(signer: Signer, added: bytes) -> None:
    head = personal()
    signature = signer.prepare(SHARED).sign(head)
    assert results(signature + added + head + SHARED) == [False]
    assert results(signer.sign(BULK) + added + BULK) == [False]


def test_fields_relays_add_and_a_reformatted_header_keep_the_signature(signer: Signer) -> None:
    head = personal()
    signature = signer.prepare(SHARED).sign(head)
    relayed = (b"Received: by relay.cacities.org; Mon, 2 Nov 2026 09:00:01 -0800\r\n"
               b"X-Spam-Score: 0.1\r\n" + signature + head + SHARED)
    assert results(relayed) == [True]
    refolded = SHARED.replace(b"Records  retention\r\n  schedule", b"Records retention schedule")
    assert results(signature + head + refolded) == [True]  # relaxed header canonicalisation


def test_a_changed_body_fails(signer: Signer) -> None:
    signature = signer.sign(SHARED)
    assert results(signature + SHARED + b"appended footer\r\n") == [False]


def test_the_body_is_hashed_once_per_message(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = Signer(DOMAIN, [cached_rsa_key()])
    calls = []
    original = dkim_sign.Relaxed.canonicalize_body

    def counting(body: bytes) -> bytes:
        calls.append(len(body))
        return original(body)

    monkeypatch.setattr(dkim_sign.Relaxed, "canonicalize_body", staticmethod(counting))
    prepared = signer.prepare(SHARED)
    for i in range(10):
        prepared.sign(personal(f"tok-{i}"))
    assert len(calls) == 1


@pytest.mark.skipif(not CRYPTOGRAPHY, reason="needs cryptography")
def test_openssl_and_pure_python_rsa_give_the_same_bytes() -> None:
    head = personal()
    made = [Signer(DOMAIN, [cached_rsa_key(b)], clock=lambda: NOW)
            .prepare(SHARED).sign(head) for b in ("dkimpy", "cryptography")]
    assert made[0] == made[1]


@needs_nacl
def test_ed25519_signature_rides_beside_rsa_and_both_verify() -> None:
    from mailer.dkim_sign import ed25519_key

    signer = Signer(DOMAIN, [cached_rsa_key(),
                             ed25519_key(base64.b64decode(RFC_ED25519_SEED), "cm-ed")],
                    clock=lambda: NOW)
    head = personal()
    signatures = signer.prepare(SHARED).sign(head)
    assert tags(signatures, 0)[b"a"] == b"rsa-sha256"  # topmost: the one everybody checks
    assert tags(signatures, 1)[b"a"] == b"ed25519-sha256"
    assert results(signatures + head + SHARED) == [True, True]
    assert results(signatures + personal("other") + SHARED) == [False, False]
    bulk = signer.sign(BULK)
    assert results(bulk + BULK) == [True, True]


def test_outbox_file_verifies(signer: Signer, tmp_path: Path) -> None:
    head = personal()
    copy = Copy("city-clerks-bounces+x@lists.cacities.org", ((7, "bo@city.example"),),
                SHARED, signer.prepare(SHARED).sign(head) + head)
    assert OutboxSender(tmp_path).send([copy])[0].outcome == "sent"
    written = (tmp_path / "0000000007.eml").read_bytes()
    assert written.startswith(b"Return-Path: ")
    assert results(written) == [True]


def test_copies_verify_after_a_real_smtp_hop(sink, tmp_path: Path) -> None:
    signer = Signer(DOMAIN, [cached_rsa_key()])
    prepared = signer.prepare(SHARED)
    copies = [Copy(f"city-clerks-bounces+{i}@lists.cacities.org", ((i, f"m{i}@city.example"),),
                   SHARED, prepared.sign(personal(f"tok-{i}")) + personal(f"tok-{i}"))
              for i in range(3)]
    copies.append(Copy("city-clerks-bounces@lists.cacities.org",
                       ((9, "a@city.example"), (10, "b@city.example")), BULK,
                       signer.prepare(BULK).sign()))
    relay = SmtpSender(Relay("smtp", host="127.0.0.1", port=sink.port))
    try:
        assert {r.outcome for r in relay.send(copies)} == {"sent"}
    finally:
        relay.close()
    received = sink.wait_for(4)
    assert [results(m.data) for m in received] == [[True]] * 4


def test_a_header_block_dkimpy_cannot_read_is_a_signing_error(signer: Signer) -> None:
    with pytest.raises(SigningError):
        signer.prepare(b"From: a@city.example\r\nnot a header line\r\n\r\nbody\r\n")
    prepared = signer.prepare(SHARED)
    with pytest.raises(SigningError):
        prepared.sign(b"List-Unsubscribe: <https://x>\r\n\r\nbody text\r\n")
    assert isinstance(prepared, PreparedMessage)


def test_a_signer_needs_from_signed_and_distinct_selectors() -> None:
    key = cached_rsa_key()
    with pytest.raises(ValueError, match="From"):
        Signer(DOMAIN, [key], headers=("subject",))
    with pytest.raises(ValueError, match="own selector"):
        Signer(DOMAIN, [key, key])


def test_key_files_load_in_the_formats_keygen_and_dkimpy_write(tmp_path: Path) -> None:
    path = tmp_path / "cm-rsa.key"
    path.write_bytes(TEST_RSA_PEM)
    path.chmod(0o600)
    signer = Signer(DOMAIN, [load_key(path, "cm-rsa")], clock=lambda: NOW)
    assert results(signer.sign(SHARED) + SHARED) == [True]
