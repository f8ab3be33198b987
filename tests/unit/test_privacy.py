"""A person can see everything held about them, and be forgotten for good."""

from __future__ import annotations

import json
import sqlite3

import pytest
from helpers import cli
from sqlalchemy import Engine, insert, select

from mailer.db import reading, utcnow, writing
from mailer.league import load_league
from mailer.models import Held, Inbound, MailingList, Post
from mailer.privacy import Suppressed, forget, is_suppressed, unsuppress
from mailer.roster import import_roster
from mailer.settings import Settings
from mailer.welcome import join

ADDRESS = "kim.nunez@fresno.ca.gov"


@pytest.fixture
def kim(settings: Settings, engine: Engine) -> int:
    """Kim: a member with a welcome, a post on city-clerks and a message held there."""
    with writing(engine) as conn:
        member = join(conn, settings, load_league(), email=ADDRESS, name="Kim Núñez",
                      city="Fresno", role="City Clerk", title="Deputy City Clerk")
        clerks = conn.scalar(select(MailingList.id).where(MailingList.name == "city-clerks"))
        raw = f"From: Kim Núñez <{ADDRESS}>\r\nSubject: Agenda\r\n\r\nHi\r\n".encode()
        inbound = [conn.scalar(insert(Inbound).values(
            mail_from=ADDRESS, rcpt_to=[["city-clerks", "post", None]], size=len(raw),
            raw=raw, state="done", received_at=utcnow()).returning(Inbound.id))
            for _ in range(2)]
        conn.execute(insert(Post).values(inbound_id=inbound[0], list_id=clerks,
                                         message_id="<a@fresno>", subject="Agenda deadlines",
                                         sender=ADDRESS, created_at=utcnow()))
        conn.execute(insert(Held).values(inbound_id=inbound[1], list_id=clerks, sender=ADDRESS,
                                         subject="Big attachment", reasons=["too big"],
                                         state="held", received_at=utcnow()))
    return member.member_id


def everything_but_raw_mail(env: dict[str, str]) -> str:
    """Every row of every table except ``inbound`` (kept exactly as received), as text."""
    with sqlite3.connect(env["CITYMAIL_DATABASE_URL"].removeprefix("sqlite:///")) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        dump = [repr(db.execute(f"SELECT * FROM {t}").fetchall()) for t in tables
                if t != "inbound"]
    db.close()
    return "\n".join(dump)


def test_export_person_holds_everything_about_them(env, kim) -> None:
    data = json.loads(cli(env, "members", "export-person", "Kim.Nunez@Fresno.ca.gov").stdout)

    assert data["email"] == ADDRESS and data["suppressed"] is False
    assert (data["member"]["name"], data["member"]["title"], data["member"]["city"]) == (
        "Kim Núñez", "Deputy City Clerk", "Fresno")
    assert {s["list"]: s["status"] for s in data["subscriptions"]} == {
        "advocate": "active", "western-city": "active", "city-clerks": "active"}
    assert [(d["kind"], d["recipient"], d["state"]) for d in data["deliveries"]] == [
        ("notice", ADDRESS, "pending")]  # the welcome
    assert [(h["list"], h["subject"], h["state"]) for h in data["held"]] == [
        ("city-clerks", "Big attachment", "held")]
    assert [(p["list"], p["subject"]) for p in data["posts"]] == [
        ("city-clerks", "Agenda deadlines")]


def test_forget_erases_them_and_they_are_never_added_again(env, settings, engine,
                                                           kim) -> None:
    assert ADDRESS in everything_but_raw_mail(env)

    done = cli(env, "members", "forget", ADDRESS)

    assert done.stdout.startswith(f"citymail: erased {ADDRESS}: member record, "
                                  "3 subscriptions, 1 deliveries, 1 posts, 1 held messages")
    remaining = everything_but_raw_mail(env)
    for trace in (ADDRESS, "Kim", "Núñez", "Deputy City Clerk"):
        assert trace not in remaining
    shown = json.loads(cli(env, "members", "show", ADDRESS, "--json").stdout)
    assert shown == {"email": ADDRESS, "suppressed": True, "status": "erased",
                     "subscriptions": [], "left": []}
    with reading(engine) as conn:
        assert is_suppressed(conn, settings, "KIM.NUNEZ@fresno.ca.gov")
        held_state = conn.scalar(select(Held.state))
        assert held_state == "discarded"  # a moderator can no longer send it out
        raw = conn.scalars(select(Inbound.raw)).all()
        assert len(raw) == 2 and all(b"Kim" in r for r in raw)  # the original is never changed

    roster = f"email,name,role,city\n{ADDRESS},Kim,City Clerk,Fresno\nok@fresno.ca.gov,Ok,,\n"
    result = import_roster(engine, settings, load_league(), roster.encode())
    assert result.plan.suppressed == ((2, ADDRESS),)
    assert [a.email for a in result.plan.adds] == ["ok@fresno.ca.gov"]
    with writing(engine) as conn, pytest.raises(Suppressed) as refused:  # members add
        join(conn, settings, load_league(), email=ADDRESS.upper(), name="Kim", city="Fresno")
    assert str(refused.value) == f"{ADDRESS} asked to be forgotten; citymail will not add it again"
    assert ADDRESS not in everything_but_raw_mail(env)


def test_forgetting_a_stranger_suppresses_the_address_before_anyone_adds_it(
        settings, engine) -> None:
    done = forget(engine, settings, "Stranger@Example.org")
    assert (done.member, done.newly_suppressed) == (False, True)
    assert forget(engine, settings, "stranger@example.org").newly_suppressed is False
    with writing(engine) as conn, pytest.raises(Suppressed, match="asked to be forgotten"):
        join(conn, settings, load_league(), email="stranger@example.org", name="S")
    with writing(engine) as conn:  # their own confirmed opt-in lifts it
        assert unsuppress(conn, settings, "STRANGER@example.org")
        assert join(conn, settings, load_league(), email="stranger@example.org").created
