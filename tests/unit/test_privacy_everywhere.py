"""Forget means forget: after ``members forget`` no table's text names the person.

The walk reads the live schema, so a table added later by any part is covered too.
"""

from __future__ import annotations

import datetime as dt
import re

from helpers import cli
from sqlalchemy import JSON, Engine, MetaData, String, Text, cast, insert, select

from listservs.models_moderation import ListRequest, ResponseSent
from mailer.db import reading, utcnow, writing
from mailer.league import load_league
from mailer.models import Held, Inbound, MailingList, Member, Subscription
from mailer.models_bounces import BounceEvent, BounceIntake
from mailer.settings import Settings
from mailer.welcome import join

ADDRESS = "kim.nunez@fresno.ca.gov"
NAME = "Kim Núñez"
# Columns kept exactly as received (DESIGN.md principle 2): the raw message and envelope.
AS_RECEIVED = {("inbound", "raw"), ("inbound", "mail_from"), ("inbound", "rcpt_to")}


def seed(engine: Engine, settings: Settings) -> None:
    """Kim, with traces in the tables of bounces, commands, answers and moderation."""
    now = utcnow()
    with writing(engine) as conn:
        member = join(conn, settings, load_league(), email=ADDRESS, name=NAME, city="Fresno",
                      role="City Clerk").member_id
        clerks = conn.scalar(select(MailingList.id).where(MailingList.name == "city-clerks"))
        sub = conn.scalar(select(Subscription.id).where(Subscription.member_id == member,
                                                        Subscription.list_id == clerks))
        raw = f"From: {NAME} <{ADDRESS}>\r\nSubject: join\r\n\r\njoin\r\n".encode()
        inbound = conn.scalar(insert(Inbound).values(
            mail_from=ADDRESS, rcpt_to=[["city-clerks", "request", None]], size=len(raw),
            raw=raw, state="done", received_at=now,
            error=f"city-clerks-request: answered {ADDRESS.upper()}").returning(Inbound.id))
        conn.execute(insert(BounceEvent).values(
            subscription_id=sub, member_id=member, list_id=clerks, kind="temporary",
            source="dsn", address=ADDRESS, status="4.2.2",
            diagnostic=f"452 4.2.2 <{ADDRESS}>: mailbox full", occurred_at=now))
        conn.execute(insert(BounceIntake).values(
            inbound_id=inbound, list_id=clerks, source="plain", outcome="recorded",
            detail=f"1 address(es) reported: {ADDRESS}", created_at=now))
        conn.execute(insert(ListRequest).values(
            inbound_id=inbound, list_id=clerks, email=ADDRESS, name=NAME, action="join",
            expires_at=now + dt.timedelta(days=3), created_at=now))
        conn.execute(insert(ResponseSent).values(list_id=clerks, address=ADDRESS,
                                                 kind="answer", day="2026-11-26"))
        conn.execute(insert(Held).values(
            inbound_id=inbound, list_id=clerks, sender=ADDRESS, subject="join",
            reasons=[f"non-member post from {ADDRESS} ({NAME})"], state="held",
            received_at=now))


def traces(engine: Engine) -> list[str]:
    """Every (table.column) whose text still names Kim, outside the received bytes."""
    found = []
    meta = MetaData()
    with reading(engine) as conn:
        meta.reflect(conn)
        for table in meta.sorted_tables:
            for column in table.columns:
                if (table.name, column.name) in AS_RECEIVED or table.name == "suppressions":
                    continue
                if not isinstance(column.type, String | Text | JSON):
                    continue
                text = cast(column, Text) if isinstance(column.type, JSON) else column
                for needle in (ADDRESS, NAME, "Núñez"):
                    whole = re.compile(r"(?<![\w.])" + re.escape(needle), re.IGNORECASE)
                    for (value,) in conn.execute(select(column).where(
                            text.ilike(f"%{needle}%"))):
                        if whole.search(str(value)):  # not a.kim.nunez@, a colleague
                            found.append(f"{table.name}.{column.name}: {value!r}")
    return found


def test_forget_leaves_the_address_and_name_in_no_table(env, settings, engine) -> None:
    seed(engine, settings)
    before = traces(engine)
    for where in ("members.email", "bounce_events.address", "bounce_events.diagnostic",
                  "bounce_intake.detail", "list_requests.email", "list_requests.name",
                  "responses_sent.address", "held.reasons", "inbound.error"):
        assert any(t.startswith(where + ":") for t in before), where

    with writing(engine) as conn:  # a colleague with a similar name and address
        join(conn, settings, load_league(), email="a.kim.nunez@fresno.ca.gov",
             name="Kim Nunez-Lee", city="Fresno", role="City Clerk", welcome=False)

    cli(env, "members", "forget", ADDRESS)

    assert traces(engine) == []
    with reading(engine) as conn:  # nobody else is touched
        assert conn.execute(select(Member.email, Member.name).where(
            Member.status == "active")).all() == [("a.kim.nunez@fresno.ca.gov",
                                                   "Kim Nunez-Lee")]
    with reading(engine) as conn:  # the received bytes stay as they were
        assert NAME.encode() in conn.scalar(select(Inbound.raw))
        assert conn.scalar(select(Inbound.mail_from)) == ADDRESS
