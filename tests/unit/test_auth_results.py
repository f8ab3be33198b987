"""Authentication-Results: parsing, trusting only our authserv-ids, and DMARC alignment."""

from __future__ import annotations

from email import message_from_bytes, message_from_string, policy
from email.message import Message
from pathlib import Path

import pytest

from mailer.authorship import aligned, author_domain, organisational_domain
from mailer.authresults import (
    AuthResult,
    AuthVerdict,
    merge_verdicts,
    parse_authentication_results,
    verdict_from_authres,
)

INBOUND = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "inbound"
OURS = frozenset({"mx.lists.cacities.org"})


def corpus_message(name: str) -> Message:
    path = INBOUND / name
    if not path.is_file():
        pytest.fail(f"the shared corpus is missing {path}")
    return message_from_bytes(path.read_bytes(), policy=policy.default)


def post(*auth_results: str, sender: str = "pat@ci.berkeley.ca.us") -> Message:
    head = "".join(f"Authentication-Results: {v}\n" for v in auth_results)
    return message_from_string(
        f"{head}From: Pat <{sender}>\nTo: city-clerks@lists.cacities.org\nSubject: hi\n\nHi.\n",
        policy=policy.default,
    )


# ---- parsing -------------------------------------------------------------------------------


def test_parses_the_rfc_8601_example_with_comments_and_properties() -> None:
    header = parse_authentication_results(
        "example.com; spf=pass smtp.mailfrom=example.net; "
        'dkim=pass (good signature) reason="it checks out" header.d=example.net '
        "header.i=@mail-router.example.net; dmarc=fail policy.dmarc=reject header.from=example.com"
    )
    assert header is not None
    assert header.authserv_id == "example.com"
    assert header.results == (
        AuthResult("spf", "pass", None, (("smtp.mailfrom", "example.net"),)),
        AuthResult(
            "dkim",
            "pass",
            "it checks out",
            (("header.d", "example.net"), ("header.i", "@mail-router.example.net")),
        ),
        AuthResult(
            "dmarc", "fail", None, (("policy.dmarc", "reject"), ("header.from", "example.com"))
        ),
    )


@pytest.mark.parametrize(
    ("value", "authserv_id", "methods"),
    [
        ("example.org 1; none", "example.org", ()),
        ("Example.ORG.; auth=pass (cram-md5) smtp.auth=a@example.net", "example.org", ("auth",)),
        ('"quoted.id" ; dkim=pass header.d=x.org', "quoted.id", ("dkim",)),
        ("mx (comment ; with; semicolons); spf=pass (a (nested) one) smtp.mailfrom=a@b.c",
         "mx", ("spf",)),
        # mail.ru forgot a ';' (corpus: djmailbox koi8r message): no result may hide there
        ("emx.mail.ru; spf=pass smtp.mailfrom=x@hse.ru\n\t dkim=pass header.i=hse.ru",
         "emx.mail.ru", ("spf",)),
        ("", None, None),
        (";;;", None, None),
    ],
)  # fmt: skip
def test_parsing_is_tolerant(value: str, authserv_id: str | None, methods: tuple | None) -> None:
    header = parse_authentication_results(value)
    if authserv_id is None:
        assert header is None
        return
    assert header is not None
    assert header.authserv_id == authserv_id
    assert tuple(r.method for r in header.results) == methods


# ---- trust ---------------------------------------------------------------------------------


def test_results_from_an_untrusted_authserv_id_are_ignored() -> None:
    msg = post(
        "evil.example; dkim=pass header.d=berkeley.ca.us; "
        "spf=pass smtp.mailfrom=x@berkeley.ca.us; dmarc=pass"
    )
    verdict = verdict_from_authres(msg, trusted_ids=OURS)
    assert verdict == AuthVerdict(from_domain="ci.berkeley.ca.us")
    assert not verdict.authenticated


def test_corpus_authheaders_messages_only_count_when_their_authserv_id_is_trusted() -> None:
    msg = corpus_message("authheaders__test.bad.message.eml")
    assert verdict_from_authres(msg, trusted_ids=OURS).source == "none"
    trusting = verdict_from_authres(msg, trusted_ids={"LISTS.example.org"})
    assert (trusting.source, trusting.dmarc, trusting.authenticated) == ("authres", "pass", True)
    # ...whose spf and dkim identities (d1.example) are not aligned with bad.example.com:
    assert not trusting.dkim_aligned and not trusting.spf_aligned


def test_a_forgery_under_our_authserv_id_loses_to_our_mta_header_on_top() -> None:
    ours = "mx.lists.cacities.org; dkim=fail header.d=berkeley.ca.us; dmarc=fail"
    forged = "mx.lists.cacities.org; dkim=pass header.d=berkeley.ca.us; dmarc=pass"
    verdict = verdict_from_authres(post(ours, forged), trusted_ids=OURS)
    assert (verdict.dkim_aligned, verdict.dmarc, verdict.authenticated) == (False, "fail", False)


@pytest.mark.parametrize(
    "value",
    [
        "mx.lists.cacities.org; spf=fail smtp.mailfrom=x dkim=pass header.d=berkeley.ca.us",
        'mx.lists.cacities.org; spf=fail smtp.mailfrom="x; dkim=pass header.d=berkeley.ca.us"@e.x',
        "mx.lists.cacities.org; spf=fail (; dkim=pass header.d=berkeley.ca.us) smtp.mailfrom=e.x",
    ],
    ids=["unquoted", "quoted", "comment"],
)
def test_sender_controlled_text_in_our_header_cannot_add_a_result(value: str) -> None:
    verdict = verdict_from_authres(post(value), trusted_ids=OURS)
    assert (verdict.source, verdict.authenticated) == ("authres", False)


def test_separate_trusted_headers_per_method_are_combined() -> None:
    msg = post(
        "mx.lists.cacities.org; dmarc=pass header.from=ci.berkeley.ca.us",
        "mx.lists.cacities.org; spf=pass smtp.mailfrom=bounces@ci.berkeley.ca.us",
        "mx.lists.cacities.org; dkim=pass header.d=berkeley.ca.us",
    )
    verdict = verdict_from_authres(msg, trusted_ids=OURS)
    assert verdict == AuthVerdict(True, True, "pass", "authres", "ci.berkeley.ca.us")


# ---- alignment -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "is_aligned"),
    [
        ("dkim=pass header.d=berkeley.ca.us", True),
        ("dkim=pass header.d=CI.Berkeley.CA.US", True),
        ("dkim=pass header.i=@mail.berkeley.ca.us", True),
        ("dkim=pass header.d=ca.us", False),  # a public suffix aligns with nothing
        ("dkim=pass header.d=oakland.ca.us", False),
        ("dkim=fail header.d=berkeley.ca.us", False),
        ("dkim=policy header.d=berkeley.ca.us", False),
        ("spf=pass smtp.mailfrom=bounce@lists.berkeley.ca.us", True),
        ("spf=pass smtp.mailfrom=bounce@sendgrid.net", False),
        ("spf=pass smtp.helo=mx.berkeley.ca.us", True),
        ("spf=softfail smtp.mailfrom=x@berkeley.ca.us", False),
        ("dmarc=pass header.from=ci.berkeley.ca.us", True),
        ("dmarc=pass header.from=evil.example", False),  # about another From: not ours
        ("dmarc=pass", True),
    ],
)
def test_alignment_uses_the_organisational_domain(result: str, is_aligned: bool) -> None:
    msg = post(f"mx.lists.cacities.org; {result}")
    assert verdict_from_authres(msg, trusted_ids=OURS).authenticated is is_aligned


def test_several_authors_cannot_be_vouched_for() -> None:
    msg = corpus_message("authheaders__test.message_multi.eml")
    assert author_domain(msg) is None
    verdict = verdict_from_authres(msg, trusted_ids={"lists.example.org"})
    assert (verdict.dmarc, verdict.authenticated) == ("permerror", False)


@pytest.mark.parametrize(
    ("domain", "org"),
    [
        ("ci.berkeley.ca.us", "berkeley.ca.us"),
        ("lists.cacities.org", "cacities.org"),
        ("a.b.example.co.uk", "example.co.uk"),
        ("ca.us", "ca.us"),
        ("D1.Example.", "d1.example"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("not a domain", ""),
    ],
)
def test_organisational_domains(domain: str, org: str) -> None:
    assert organisational_domain(domain) == org


def test_alignment_needs_two_domains() -> None:
    assert aligned("berkeley.ca.us", "ci.berkeley.ca.us")
    assert not aligned(None, "ci.berkeley.ca.us")
    assert not aligned("berkeley.ca.us", "")


def test_merged_verdicts_keep_any_proof_and_name_its_source() -> None:
    headers = AuthVerdict(dmarc="fail", source="authres", from_domain="city.gov")
    dkim = AuthVerdict(dkim_aligned=True, source="dkim", from_domain="city.gov")
    merged = merge_verdicts(headers, dkim)
    assert merged == AuthVerdict(True, False, "fail", "dkim", "city.gov")
    assert merge_verdicts(headers, AuthVerdict(source="dkim")).source == "authres"
    assert merge_verdicts(AuthVerdict(), AuthVerdict()).source == "none"
