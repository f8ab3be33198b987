"""DMARC: posts from p=reject/quarantine domains go out From the list, the author reachable.

DNS answers are injected (``static_txt``); nothing here asks the internet.
"""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from sqlalchemy import Engine, insert, select

from listservs.commands import Decision
from listservs.facts import Membership
from listservs.lists import ListInfo
from listservs.moderation import plan_decision
from listservs.post_content import PostDns, PostLookups
from listservs.posting import PostPlan, plan_post
from mailer.db import reading, utcnow, writing
from mailer.dmarc_policy import DmarcPolicies, parse_record, static_txt
from mailer.league import load_league
from mailer.models import Held, Inbound, Outbound
from mailer.settings import Settings
from mailer.welcome import join
from workers.inbound import InboundProcessor

DNS = static_txt({
    "_dmarc.yahoo.com": "v=DMARC1; p=reject; pct=100; rua=mailto:d@yahoo.com",
    "_dmarc.aol.com": "v=DMARC1; p=quarantine",
    "_dmarc.gmail.com": "v=DMARC1; p=none; sp=quarantine",
    "_dmarc.berkeley.ca.us": "v=DMARC1; p=none; sp=reject",
    "_dmarc.twice.example": ["v=DMARC1; p=reject", "v=DMARC1; p=none"],
    "_dmarc.noise.example": ["google-site-verification=x", "v=DMARC1; p=reject"],
}, failing=frozenset({"_dmarc.slow.example"}))
SETTINGS = Settings(secret_keys=("test-secret-key-0123456789",), base_url="https://l.example")
POST = (b"From: =?utf-8?q?Jos=C3=A9_Garc=C3=ADa?= <jgarcia@yahoo.com>\r\n"
        b"To: city-clerks@lists.cacities.org\r\nSubject: Agenda\r\n"
        b"Message-ID: <agenda-1@yahoo.com>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nSee the agenda.\r\n")


def listinfo(**config: object) -> ListInfo:
    return ListInfo(7, "city-clerks", "list", "City Clerks department", "City Clerks", "",
                    None, False, "personalised", "", dict(config))


def post(raw: bytes, policy_word: str | None, **config: object) -> PostPlan:
    return plan_post(raw, info=listinfo(**config), settings=SETTINGS,
                     envelope_sender="jgarcia@yahoo.com",
                     lookup=lambda _s: Membership(is_member=True), seen=lambda _m: False,
                     now=utcnow(), lookups=PostLookups(policy_word))


def parse(raw: bytes | None) -> EmailMessage:
    assert raw is not None
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


# -- the policy lookup --------------------------------------------------------------------
@pytest.mark.parametrize(("domain", "expected"), [
    ("yahoo.com", "reject"),
    ("aol.com", "quarantine"),
    ("gmail.com", "none"),
    ("mail.yahoo.com", "reject"),  # no record of its own: the organisational domain's p=
    ("mail.gmail.com", "quarantine"),  # ... whose sp= applies to subdomains
    ("ci.berkeley.ca.us", "reject"),  # the Public Suffix List knows ca.us
    ("fresno.gov", None),  # no record anywhere: no policy
    ("twice.example", None),  # two DMARC records: none counts (RFC 7489 6.6.3)
    ("noise.example", "reject"),  # other TXT records beside it are ignored
    ("slow.example", None),  # a failed lookup means no policy, never a delay
    ("", None),
])
def test_policy_of_the_author_domain(domain: str, expected: str | None) -> None:
    assert DmarcPolicies(DNS).policy_for(domain) == expected


def test_answers_are_cached_for_their_ttl() -> None:
    asked: list[str] = []
    now = [0.0]

    def counting(name: str) -> tuple[list[str], float] | None:
        asked.append(name)
        return DNS(name)

    policies = DmarcPolicies(counting, clock=lambda: now[0])
    for _ in range(3):
        assert policies.policy_for("yahoo.com") == "reject"
    assert asked == ["_dmarc.yahoo.com"]
    now[0] = 3601.0  # static_txt's TTL is an hour
    policies.policy_for("yahoo.com")
    assert asked == ["_dmarc.yahoo.com"] * 2


def test_a_record_is_read_tag_by_tag() -> None:
    assert parse_record(["v=DMARC1;p=reject; sp=none"]) == {
        "v": "dmarc1", "p": "reject", "sp": "none"}
    assert parse_record(["v=spf1 -all"]) is None


# -- the post members get -----------------------------------------------------------------
def test_a_post_from_a_reject_domain_comes_from_the_list_and_replies_reach_the_author() -> None:
    plan = post(POST, "reject")
    assert plan.action == "accept"
    sent = parse(plan.body)
    (sender,) = sent["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (
        "José García via City Clerks department", "city-clerks@lists.cacities.org")
    assert [a.addr_spec for a in sent["Reply-To"].addresses] == ["jgarcia@yahoo.com"]
    assert sent.get_content().startswith("See the agenda.")


def test_quarantine_is_mitigated_too_and_none_is_left_alone() -> None:
    assert "via City Clerks" in str(parse(post(POST, "quarantine").body)["From"])
    for word in ("none", None):
        assert str(parse(post(POST, word).body)["From"]) == "José García <jgarcia@yahoo.com>"


def test_a_list_whose_replies_go_to_the_list_puts_the_author_in_cc() -> None:
    sent = parse(post(POST, "reject", reply_to="list").body)
    assert [a.addr_spec for a in sent["Reply-To"].addresses] == [
        "city-clerks@lists.cacities.org"]
    assert [a.addr_spec for a in sent["Cc"].addresses] == ["jgarcia@yahoo.com"]


def test_mitigation_none_sends_the_authors_from() -> None:
    sent = parse(post(POST, "reject", dmarc_mitigation="none").body)
    assert str(sent["From"]) == "José García <jgarcia@yahoo.com>"


def test_wrap_message_carries_the_original_byte_for_byte() -> None:
    body = post(POST, "reject", dmarc_mitigation="wrap_message").body
    sent = parse(body)
    assert sent["From"].addresses[0].addr_spec == "city-clerks@lists.cacities.org"
    assert [a.addr_spec for a in sent["Reply-To"].addresses] == ["jgarcia@yahoo.com"]
    assert sent["Subject"] == "[City Clerks] Agenda"
    assert sent["Message-ID"] == "<agenda-1@yahoo.com>"  # threading and the archive agree
    kinds = [p.get_content_type() for p in sent.walk()]
    assert kinds[:3] == ["multipart/mixed", "text/plain", "message/rfc822"]
    assert body is not None and POST in body  # the author's bytes untouched: DKIM holds
    assert "City Clerks department mailing list" in sent.get_body(("plain",)).get_content()


# -- through the worker, DNS outside the transaction --------------------------------------
def test_the_worker_looks_the_policy_up_and_stores_the_mitigated_copy(
        settings: Settings, engine: Engine) -> None:
    with writing(engine) as conn:
        join(conn, settings, load_league(), email="jgarcia@yahoo.com", name="José García",
             city="Fresno", role="City Clerk", welcome=False)
        inbound_id = conn.execute(insert(Inbound).values(
            mail_from="jgarcia@yahoo.com", rcpt_to=[["city-clerks", "post", None]],
            size=len(POST), raw=POST, state="received").returning(Inbound.id)).scalar_one()
    asked: list[str] = []

    def recording(name: str) -> tuple[list[str], float] | None:
        assert engine.pool.checkedout() == 0, "DNS asked inside a database transaction"
        asked.append(name)
        return DNS(name)

    InboundProcessor(engine, settings, dispatch=lambda *_: None, threads=1,
                     post_dns=PostDns(DmarcPolicies(recording))).process(inbound_id)
    assert asked == ["_dmarc.yahoo.com"]
    with reading(engine) as conn:
        (body,) = conn.scalars(select(Outbound.body).where(Outbound.kind == "post")).all()
    sent = parse(body)
    assert str(sent["From"]) == ("José García via City Clerks department "
                                 "<city-clerks@lists.cacities.org>")
    assert [a.addr_spec for a in sent["Reply-To"].addresses] == ["jgarcia@yahoo.com"]


def test_a_held_post_approved_later_is_mitigated_without_asking_dns_again(
        settings: Settings, engine: Engine) -> None:
    with writing(engine) as conn:  # jgarcia is no member: the post waits for a moderator
        inbound_id = conn.execute(insert(Inbound).values(
            mail_from="jgarcia@yahoo.com", rcpt_to=[["city-clerks", "post", None]],
            size=len(POST), raw=POST, state="received").returning(Inbound.id)).scalar_one()
    InboundProcessor(engine, settings, dispatch=lambda *_: None, threads=1,
                     post_dns=PostDns(DmarcPolicies(DNS))).process(inbound_id)
    with reading(engine) as conn:
        held_id = conn.scalars(select(Held.id)).one()
        outcome = plan_decision(conn, held_id=held_id, decision=Decision("approve"),
                                decided_by="moderator@cacities.org", settings=settings)
    with writing(engine) as conn:
        assert outcome.apply(conn, now=utcnow())
    with reading(engine) as conn:
        (body,) = conn.scalars(select(Outbound.body).where(Outbound.kind == "post")).all()
    assert parse(body)["From"].addresses[0].addr_spec == "city-clerks@lists.cacities.org"
