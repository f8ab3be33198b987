"""Bounce intake on a real SQLite database: VERP, DSNs, complaints, scores and disabling."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select, update

from mailer import delivery, schema
from mailer.addresses import Target
from mailer.bounce_events import (
    apply_bounce,
    complaints_by_outbound,
    events_from_failed_deliveries,
    intake_counts,
    plan_bounce,
)
from mailer.db import make_engine, reading, writing
from mailer.league import load_league, seed_lists
from mailer.models import Delivery, MailingList, Member, Outbound, Subscription
from mailer.models_bounces import BounceEvent, BounceIntake, BounceState, delivery_enabled
from mailer.people import add_member
from mailer.settings import Settings
from mailer.verp import verp_token

KEY = "test-secret-key-0123456789abcdef"
DOMAIN = "lists.cacities.org"
DAY0 = dt.datetime(2026, 11, 2, 17, 0, tzinfo=dt.UTC)


def day(n: float) -> dt.datetime:
    return DAY0 + dt.timedelta(days=n)


@dataclass
class World:
    engine: Engine
    settings: Settings
    members: dict[str, int]
    lists: dict[str, int]

    def sub_id(self, email: str, list_name: str) -> int:
        with reading(self.engine) as conn:
            return conn.execute(select(Subscription.id).where(
                Subscription.member_id == self.members[email],
                Subscription.list_id == self.lists[list_name])).scalar_one()

    def send(self, list_name: str, *, at: dt.datetime = DAY0, kind: str = "post") -> dict[str, int]:
        """An outbound message fanned out to the list: delivery id per recipient."""
        with writing(self.engine) as conn:
            outbound_id = conn.execute(insert(Outbound).values(
                kind=kind, list_id=self.lists[list_name], personal=True, body=b"Subject: x\r\n",
                bounce_local=f"{list_name}-bounces", created_at=at, dispatched_at=at)
                .returning(Outbound.id)).scalar_one()
            delivery.fan_out(conn, outbound_id=outbound_id, list_id=self.lists[list_name],
                             now=at)
            rows = conn.execute(select(Delivery.recipient, Delivery.id)
                                .where(Delivery.outbound_id == outbound_id)).all()
        return {r.recipient: r.id for r in rows}

    def bounce(self, raw: bytes, list_name: str, *, token: str | None = None,
               at: dt.datetime = DAY0, inbound_id: int | None = None):
        target = Target(list_name, "bounces", token)
        with reading(self.engine) as conn:
            plan = plan_bounce(conn, self.settings, target, raw, now=at, inbound_id=inbound_id)
        with writing(self.engine) as conn:
            applied = apply_bounce(conn, plan, now=at)
        return plan, applied

    def verp(self, delivery_id: int) -> str:
        return verp_token(KEY.encode(), delivery_id)

    def state(self, email: str, list_name: str):
        with reading(self.engine) as conn:
            return conn.execute(select(BounceState.__table__).where(
                BounceState.subscription_id == self.sub_id(email, list_name))).first()

    def subscription(self, email: str, list_name: str):
        with reading(self.engine) as conn:
            return conn.execute(select(Subscription.status, Subscription.source).where(
                Subscription.id == self.sub_id(email, list_name))).one()

    def events(self) -> list:
        with reading(self.engine) as conn:
            return conn.execute(select(BounceEvent.__table__)
                                .order_by(BounceEvent.id)).all()

    def count(self, model) -> int:
        with reading(self.engine) as conn:
            return conn.execute(select(func.count()).select_from(model)).scalar_one()


PEOPLE = (("alice@example.org", "City Clerk"), ("bob@example.net", "City Clerk"),
          ("carol@example.com", "Fire Chief"))


def _settings(path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{path}", secret_keys=(KEY,),
                    var_dir=path.parent / "var", sqlite_synchronous="NORMAL")


def _template(folder: Path) -> Path:
    """A database made once per test session: schema, the league's lists, three people."""
    path = folder / "bounces-template.db"
    if not path.exists():
        engine = make_engine(_settings(path))
        schema.upgrade(engine)
        league = load_league()
        with writing(engine) as conn:
            seed_lists(conn, league)
            for email, role in PEOPLE:
                add_member(conn, league, email=email, name=email[:5].title(),
                           city="Sacramento", role=role)
        engine.dispose()  # the last connection checkpoints the WAL into the file
    return path


def make_world(tmp_path: Path) -> World:
    path = tmp_path / "citymail.db"
    shutil.copyfile(_template(tmp_path.parent), path)
    settings = _settings(path)
    engine = make_engine(settings)
    with reading(engine) as conn:
        members = dict(conn.execute(select(Member.email, Member.id)).all())
        lists = dict(conn.execute(select(MailingList.name, MailingList.id)).all())
    return World(engine, settings, members, lists)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = make_world(tmp_path)
    yield w
    w.engine.dispose()


def dsn(recipient: str, *, status: str = "5.1.1", action: str = "failed",
        diagnostic: str = "smtp; 550 5.1.1 <{r}>: Recipient address rejected: User unknown",
        to: str = f"city-clerks-bounces@{DOMAIN}") -> bytes:
    """An RFC 3464 delivery status notification from a remote MTA."""
    return (
        f"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        f"To: {to}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\n"
        f"Auto-Submitted: auto-replied\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="BND"\r\n'
        f"\r\n--BND\r\nContent-Type: text/plain\r\n\r\n"
        f"I'm sorry to have to inform you that your message could not be delivered.\r\n"
        f"\r\n--BND\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: {diagnostic.format(r=recipient)}\r\n"
        f"\r\n--BND\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: city-clerks@{DOMAIN}\r\nTo: {recipient}\r\nSubject: [City Clerks] Agenda\r\n"
        f"\r\n--BND--\r\n"
    ).encode()


def arf(complainer: str, *, to: str = f"city-clerks-bounces@{DOMAIN}") -> bytes:
    """An RFC 5965 abuse report (a mailbox provider's feedback loop)."""
    return (
        f"From: feedback@fbl.example.com\r\nTo: {to}\r\nSubject: Abuse report\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=feedback-report; boundary="FB"\r\n'
        f"\r\n--FB\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
        f"\r\n--FB\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: abuse\r\nUser-Agent: FBL/1.0\r\nVersion: 1\r\n"
        f"Original-Rcpt-To: {complainer}\r\n"
        f"\r\n--FB\r\nContent-Type: message/rfc822\r\n\r\n"
        f"From: city-clerks@{DOMAIN}\r\nTo: {complainer}\r\nSubject: [City Clerks] Agenda\r\n"
        f"\r\nHello\r\n--FB--\r\n"
    ).encode()


AUTOREPLY = (
    b"From: Alice <alice@example.org>\r\nTo: city-clerks-bounces@lists.cacities.org\r\n"
    b"Subject: Out of office: [City Clerks] Agenda\r\nAuto-Submitted: auto-replied\r\n\r\n"
    b"I am out of the office until Monday and will reply when I return.\r\n"
)
SPAM = "smtp; 550 5.7.1 Message rejected as spam by Content Filtering"


# -- VERP ----------------------------------------------------------------------------------

def test_a_verp_bounce_records_a_permanent_event_for_that_delivery(world: World) -> None:
    ids = world.send("city-clerks")
    plan, applied = world.bounce(dsn("alice@example.org"), "city-clerks",
                                 token=world.verp(ids["alice@example.org"]), inbound_id=7)

    assert (plan.source, plan.outcome, applied.events) == ("verp", "recorded", 1)
    [event] = world.events()
    assert event.subscription_id == world.sub_id("alice@example.org", "city-clerks")
    assert (event.kind, event.status, event.source) == ("permanent", "5.1.1", "verp")
    assert event.delivery_id == ids["alice@example.org"]
    assert event.inbound_id == 7
    assert "User unknown" in event.diagnostic
    state = world.state("alice@example.org", "city-clerks")
    assert (state.delivery_status, state.score) == ("enabled", 1.0)
    assert world.state("bob@example.net", "city-clerks") is None


def test_five_bouncing_days_disable_delivery_and_fan_out_skips_the_member(world: World) -> None:
    for n in range(5):
        ids = world.send("city-clerks", at=day(n))
        _plan, applied = world.bounce(dsn("alice@example.org"), "city-clerks",
                                      token=world.verp(ids["alice@example.org"]), at=day(n))
        assert applied.disabled == ((world.sub_id("alice@example.org", "city-clerks"),)
                                    if n == 4 else ())
    state = world.state("alice@example.org", "city-clerks")
    assert (state.delivery_status, state.score) == ("disabled_bounce", 5.0)
    assert state.disabled_at == day(4)
    assert state.next_action_at == day(4)  # the clock sends warning 1 now
    assert world.subscription("alice@example.org", "city-clerks") == ("active", "cli")
    # Only this list: her newsletters still go to her.
    assert world.state("alice@example.org", "advocate") is None
    with reading(world.engine) as conn:
        deliverable = set(conn.scalars(
            select(Member.email).join(Subscription, Subscription.member_id == Member.id)
            .where(Subscription.list_id == world.lists["city-clerks"],
                   Subscription.status == "active", delivery_enabled(Subscription.id))))
    assert deliverable == {"bob@example.net"}


def test_several_bounces_on_one_day_are_one_hit(world: World) -> None:
    for hour in range(6):
        ids = world.send("city-clerks", at=day(0))
        world.bounce(dsn("alice@example.org"), "city-clerks",
                     token=world.verp(ids["alice@example.org"]),
                     at=day(0) + dt.timedelta(minutes=30 * hour))
    assert len(world.events()) == 6
    assert world.state("alice@example.org", "city-clerks").score == 1.0


def test_a_forged_verp_token_changes_nothing(world: World) -> None:
    ids = world.send("city-clerks")
    genuine = world.verp(ids["alice@example.org"])
    forged = [genuine[:-1] + ("a" if genuine[-1] != "a" else "b"),
              verp_token(b"some-other-key-0123456789", ids["alice@example.org"]),
              "not-a-token", "zz"]
    for token in forged:
        for _ in range(5):
            plan, applied = world.bounce(dsn("alice@example.org"), "city-clerks", token=token)
            assert (plan.outcome, plan.events, applied.events) == ("forged", (), 0)
    assert world.events() == []
    assert world.count(BounceState) == 0
    assert world.subscription("alice@example.org", "city-clerks") == ("active", "cli")
    with reading(world.engine) as conn:
        assert intake_counts(conn) == {"forged": 20}


def test_a_bounce_of_a_long_gone_delivery_is_ignored(world: World) -> None:
    ids = world.send("city-clerks", at=day(0))
    plan, _ = world.bounce(dsn("alice@example.org"), "city-clerks",
                           token=world.verp(ids["alice@example.org"]), at=day(31))
    assert plan.outcome == "stale"
    plan, _ = world.bounce(dsn("alice@example.org"), "city-clerks", token=world.verp(999_999))
    assert plan.outcome == "unmatched"
    assert world.events() == []


def test_a_newsletter_bounce_scores_the_newsletter_subscription(world: World) -> None:
    ids = world.send("advocate", kind="issue")
    plan, _ = world.bounce(dsn("carol@example.com", to=f"advocate-bounces@{DOMAIN}"),
                           "advocate", token=world.verp(ids["carol@example.com"]))
    assert plan.outcome == "recorded"
    [event] = world.events()
    assert event.subscription_id == world.sub_id("carol@example.com", "advocate")
    assert event.list_id == world.lists["advocate"]


# -- what never counts ---------------------------------------------------------------------

def test_policy_rejections_are_recorded_and_never_disable(world: World) -> None:
    for n in range(10):
        ids = world.send("city-clerks", at=day(n))
        world.bounce(dsn("alice@example.org", status="5.7.1", diagnostic=SPAM),
                     "city-clerks", token=world.verp(ids["alice@example.org"]), at=day(n))
    events = world.events()
    assert [e.kind for e in events] == ["policy"] * 10
    assert {e.status for e in events} == {"5.7.1"}
    state = world.state("alice@example.org", "city-clerks")
    assert (state.delivery_status, state.score) == ("enabled", 0.0)


def test_temporary_failures_are_recorded_and_count_nothing(world: World) -> None:
    for n in range(10):
        ids = world.send("city-clerks", at=day(n))
        world.bounce(dsn("alice@example.org", status="4.2.2", action="delayed",
                         diagnostic="smtp; 452 4.2.2 Mailbox full"),
                     "city-clerks", token=world.verp(ids["alice@example.org"]), at=day(n))
    assert [e.kind for e in world.events()] == ["temporary"] * 10
    assert world.state("alice@example.org", "city-clerks").delivery_status == "enabled"


def test_auto_replies_are_ignored_but_counted(world: World) -> None:
    ids = world.send("city-clerks")
    plan, _ = world.bounce(AUTOREPLY, "city-clerks", token=world.verp(ids["alice@example.org"]))
    assert plan.outcome == "autoreply"
    plan, _ = world.bounce(AUTOREPLY, "city-clerks")
    assert plan.outcome == "autoreply"
    plan, _ = world.bounce(b"From: someone@example.org\r\nSubject: hi\r\n\r\nthanks!\r\n",
                           "city-clerks")
    assert plan.outcome == "not_bounce"
    assert world.events() == []
    with reading(world.engine) as conn:
        assert intake_counts(conn) == {"autoreply": 2, "not_bounce": 1}
        assert intake_counts(conn, since=day(1)) == {}


# -- plain -bounces@ ------------------------------------------------------------------------

def test_a_plain_dsn_is_matched_to_the_subscriber_it_names(world: World) -> None:
    plan, applied = world.bounce(dsn("Bob@Example.NET"), "city-clerks")
    assert (plan.source, plan.outcome, applied.events) == ("plain", "recorded", 1)
    [event] = world.events()
    assert event.subscription_id == world.sub_id("bob@example.net", "city-clerks")
    assert (event.source, event.delivery_id) == ("dsn", None)


def test_a_plain_dsn_for_a_stranger_or_another_list_matches_nobody(world: World) -> None:
    plan, _ = world.bounce(dsn("stranger@example.org"), "city-clerks")
    assert plan.outcome == "unmatched"
    plan, _ = world.bounce(dsn("carol@example.com"), "city-clerks")  # not on city-clerks
    assert plan.outcome == "unmatched"
    assert world.events() == []


# -- complaints ----------------------------------------------------------------------------

def test_a_complaint_unsubscribes_at_once_and_counts_for_its_message(world: World) -> None:
    ids = world.send("city-clerks")
    plan, applied = world.bounce(arf("alice@example.org"), "city-clerks",
                                 token=world.verp(ids["alice@example.org"]))

    assert plan.outcome == "complaint"
    sub_id = world.sub_id("alice@example.org", "city-clerks")
    assert applied.unsubscribed == (sub_id,)
    assert world.subscription("alice@example.org", "city-clerks") == ("left", "complaint")
    assert world.subscription("alice@example.org", "advocate") == ("active", "cli")
    [event] = world.events()
    assert (event.kind, event.diagnostic) == ("complaint", "abuse")
    with reading(world.engine) as conn:
        outbound_id = conn.scalar(select(Delivery.outbound_id)
                                  .where(Delivery.id == ids["alice@example.org"]))
        assert complaints_by_outbound(conn) == {outbound_id: 1}
    # Imports never bring her back.
    with writing(world.engine) as conn:
        again = add_member(conn, load_league(), email="alice@example.org", role="City Clerk")
    assert "city-clerks" in again.kept_out


def test_a_complaint_to_the_plain_address_finds_the_complainer(world: World) -> None:
    plan, applied = world.bounce(arf("bob@example.net"), "city-clerks")
    assert (plan.outcome, len(applied.unsubscribed)) == ("complaint", 1)
    assert world.subscription("bob@example.net", "city-clerks") == ("left", "complaint")


# -- failures at SMTP time -----------------------------------------------------------------

def _fail(world: World, delivery_ids: list[int], error: str) -> int:
    with writing(world.engine) as conn:
        conn.execute(update(Delivery).where(Delivery.id.in_(delivery_ids))
                     .values(state="failed", last_error=error))
        return events_from_failed_deliveries(conn, delivery_ids, now=DAY0)


def test_a_5xx_from_the_relay_is_the_same_bounce_event(world: World) -> None:
    ids = world.send("city-clerks")
    alice = ids["alice@example.org"]

    assert _fail(world, [alice], "550 5.1.1 <alice@example.org>: User unknown") == 1
    [event] = world.events()
    assert (event.kind, event.status, event.source, event.delivery_id) == (
        "permanent", "5.1.1", "smtp", alice)
    assert world.state("alice@example.org", "city-clerks").score == 1.0
    # Recording the same failure again adds nothing.
    with writing(world.engine) as conn:
        assert events_from_failed_deliveries(conn, [alice], now=DAY0) == 0
    assert len(world.events()) == 1


def test_relay_trouble_and_unfailed_deliveries_are_not_bounces(world: World) -> None:
    ids = world.send("city-clerks")
    assert _fail(world, [ids["alice@example.org"]],
                 "gave up after retries: 0 relay 127.0.0.1:25: Connection refused") == 0
    with writing(world.engine) as conn:  # still pending: not a failure
        assert events_from_failed_deliveries(conn, [ids["bob@example.net"]]) == 0
    assert _fail(world, [ids["bob@example.net"]], "554 5.7.1 Rejected by DMARC policy") == 1
    assert [e.kind for e in world.events()] == ["policy"]
    assert world.count(BounceIntake) == 0
