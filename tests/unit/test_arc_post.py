"""List posts are ARC-sealed when the DKIM key is configured; dkimpy's arc_verify checks it.

The post goes through the worker (stored inbound row → stored outbound copy); DNS is
injected, both for our own public key and for nothing else.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import dkim
import pytest
from sqlalchemy import Engine, insert, select
from test_dkim_sign import DOMAIN, TEST_RSA_PEM, TEST_RSA_PUBLIC

from listservs.commands import Decision
from listservs.moderation import plan_decision
from listservs.post_content import PostDns
from mailer.arc_seal import Sealer
from mailer.db import reading, utcnow, writing
from mailer.dkim_verify import static_dns
from mailer.league import load_league
from mailer.models import Held, Inbound, Outbound
from mailer.settings import Settings
from mailer.welcome import join
from workers.inbound import InboundProcessor

pytest.importorskip("authres", reason="dkimpy's ARC code needs authres")

DNS = static_dns({f"cm-rsa._domainkey.{DOMAIN}": f"v=DKIM1; k=rsa; p={TEST_RSA_PUBLIC}"})
POST = (b"Authentication-Results: mx.cacities.org; dkim=pass header.d=fresno.gov "
        b"header.s=s1; spf=pass smtp.mailfrom=fresno.gov; dmarc=pass header.from=fresno.gov\r\n"
        b"From: Pat Lee <pat@fresno.gov>\r\nTo: city-clerks@lists.cacities.org\r\n"
        b"Subject: Agenda\r\nMessage-ID: <arc-1@fresno.gov>\r\n\r\nSee you Tuesday.\r\n")


def sealer() -> Sealer:
    return Sealer(authserv_id=DOMAIN, domain=DOMAIN, selector="cm-rsa", pem=TEST_RSA_PEM,
                  dnsfunc=DNS)


def sent_copy(engine: Engine, settings: Settings, raw: bytes) -> bytes:
    with writing(engine) as conn:
        join(conn, settings, load_league(), email="pat@fresno.gov", name="Pat Lee",
             city="Fresno", role="City Clerk", welcome=False)
        inbound_id = conn.execute(insert(Inbound).values(
            mail_from="pat@fresno.gov", rcpt_to=[["city-clerks", "post", None]],
            size=len(raw), raw=raw, state="received").returning(Inbound.id)).scalar_one()
    InboundProcessor(engine, settings, dispatch=lambda *_: None, threads=1,
                     post_dns=PostDns(None, sealer(), settings.trusted_authserv_ids)
                     ).process(inbound_id)
    with reading(engine) as conn:
        return conn.scalars(select(Outbound.body).where(Outbound.kind == "post")).one()


def aar(message: bytes) -> str:
    found = re.search(rb"^ARC-Authentication-Results:(.*?)(?=\r\n\S)", message, re.S | re.M)
    assert found is not None
    return " ".join(found.group(1).decode().split())


def test_a_post_is_sealed_with_what_the_border_mta_verified(settings: Settings,
                                                             engine: Engine) -> None:
    trusting = dataclasses.replace(settings, trusted_authserv_ids=("mx.cacities.org",))
    copy = sent_copy(engine, trusting, POST)
    assert dkim.arc_verify(copy, dnsfunc=DNS)[0] == dkim.CV_Pass
    results = aar(copy)
    assert results.startswith(f"i=1; {DOMAIN};")
    for word in ("dkim=pass header.d=fresno.gov", "spf=pass smtp.mailfrom=fresno.gov",
                 "dmarc=pass header.from=fresno.gov", "arc=none"):
        assert word in results
    assert b"[City Clerks] Agenda" in copy  # sealed after decoration


def test_without_a_trusted_verifier_the_seal_records_our_own_dkim_check(
        settings: Settings, engine: Engine) -> None:
    copy = sent_copy(engine, settings, POST.split(b"\r\n", 1)[1])  # no Authentication-Results
    assert dkim.arc_verify(copy, dnsfunc=DNS)[0] == dkim.CV_Pass
    assert "dkim=none" in aar(copy)


def test_a_change_after_sealing_breaks_the_chain(settings: Settings, engine: Engine) -> None:
    copy = sent_copy(engine, settings, POST)
    assert dkim.arc_verify(copy.replace(b"See you Tuesday", b"See you Friday"),
                           dnsfunc=DNS)[0] == dkim.CV_Fail


def test_sealing_follows_the_dkim_key(tmp_path: Path, settings: Settings) -> None:
    assert PostDns.from_settings(settings).sealer is None  # no key: no seal
    key = tmp_path / "rsa.key"
    key.write_bytes(TEST_RSA_PEM)
    key.chmod(0o600)
    signing = dataclasses.replace(settings, dkim_key=key, dkim_selector="cm-rsa")
    built = PostDns.from_settings(signing).sealer
    assert built is not None and (built.domain, built.selector) == (DOMAIN, "cm-rsa")
    off = dataclasses.replace(signing, arc_seal=False)
    assert PostDns.from_settings(off).sealer is None


def test_an_approved_post_is_sealed_too(tmp_path: Path, settings: Settings,
                                        engine: Engine) -> None:
    key = tmp_path / "rsa.key"
    key.write_bytes(TEST_RSA_PEM)
    key.chmod(0o600)
    signing = dataclasses.replace(settings, dkim_key=key, dkim_selector="cm-rsa",
                                  trusted_authserv_ids=("mx.cacities.org",))
    stranger = POST.replace(b"pat@fresno.gov", b"ann@sacramento.gov")
    with writing(engine) as conn:  # not a member: held for a moderator
        inbound_id = conn.execute(insert(Inbound).values(
            mail_from="ann@sacramento.gov", rcpt_to=[["city-clerks", "post", None]],
            size=len(stranger), raw=stranger, state="received").returning(Inbound.id)
        ).scalar_one()
    InboundProcessor(engine, signing, dispatch=lambda *_: None, threads=1,
                     post_dns=PostDns(None, sealer())).process(inbound_id)
    with reading(engine) as conn:
        outcome = plan_decision(conn, held_id=conn.scalars(select(Held.id)).one(),
                                decision=Decision("approve"), decided_by="mod@cacities.org",
                                settings=signing)
    with writing(engine) as conn:
        assert outcome.apply(conn, now=utcnow())
    with reading(engine) as conn:
        copy = conn.scalars(select(Outbound.body).where(Outbound.kind == "post")).one()
    assert dkim.arc_verify(copy, dnsfunc=DNS)[0] == dkim.CV_Pass
    assert "dkim=pass header.d=fresno.gov" in aar(copy)
