"""Moderation and commands against a real SQLite database, without servers.

``World.receive`` does what the gateway and ``InboundProcessor`` do with a message (store,
plan in a read transaction, apply in one write transaction); ``World.new_mail`` returns what
was queued for sending since the last call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select, update

from listservs.effects import Outcome
from listservs.facts import Membership
from listservs.lists import get_list, subscriber_status
from listservs.models_moderation import ListRequest
from listservs.moderation import expire_due
from listservs.posting import plan_post
from mailer import schema
from mailer.addresses import AddressTable, Target
from mailer.db import make_engine, reading, utcnow, writing
from mailer.league import load_league, seed_lists
from mailer.models import Delivery, Held, Inbound, ListRole, MailingList, Outbound, Post
from mailer.people import add_member
from mailer.settings import Settings, load_settings
from workers.roles import plan_hold, plan_role

# mailer.people.subscribe still calls Result.tuples(), deprecated in SQLAlchemy 2.1.
pytestmark = pytest.mark.filterwarnings("ignore:The Result.tuples:DeprecationWarning")

DOMAIN = "lists.cacities.org"
SUBSCRIBERS = ["alice@example.org", "bob@example.org"]
AUTH = "Authentication-Results: mx.test; dmarc=pass header.from={domain}\r\n"


@dataclass
class Mail:
    recipients: list[str]
    message: EmailMessage

    @property
    def reply_to(self) -> str:
        return str(self.message["Reply-To"])

    @property
    def text(self) -> str:
        return self.message.get_content()


@dataclass
class World:
    settings: Settings
    engine: Engine
    table: AddressTable
    seen_outbound: int = 0
    counter: list[int] = field(default_factory=lambda: [0])

    def receive(self, rcpt: str, sender: str, body: str, *, subject: str = "hello",
                auth: bool = False, headers: str = "") -> Outcome | None:
        self.counter[0] += 1
        head = AUTH.format(domain=sender.rpartition("@")[2]) if auth else ""
        raw = (f"{head}From: {sender}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
               f"Message-ID: <m{self.counter[0]}@example.net>\r\n{headers}"
               f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()
        target = self.table.resolve(rcpt)
        assert isinstance(target, Target), target
        now = utcnow()
        with writing(self.engine) as conn:
            inbound_id = conn.execute(insert(Inbound).values(
                mail_from=sender, rcpt_to=[target.to_json()], size=len(raw), raw=raw,
                state="received", received_at=now).returning(Inbound.id)).scalar_one()
        hold = None
        with reading(self.engine) as conn:
            info = get_list(conn, target.list_name)
            if target.role == "post":
                plan = plan_post(raw, info=info, settings=self.settings, envelope_sender=sender,
                                 lookup=lambda s: Membership(is_member=subscriber_status(
                                     conn, info.id, s or "") == "active"),
                                 seen=lambda _m: False, now=now)
                assert plan.action == "hold", plan
                hold = plan
                outcome = plan_hold(conn, inbound_id=inbound_id, info=info, plan=plan, raw=raw,
                                    settings=self.settings, now=now)
            else:
                outcome = plan_role(conn, target, info=info, inbound_id=inbound_id, raw=raw,
                                    mail_from=sender, settings=self.settings, now=now)
        with writing(self.engine) as conn:
            conn.execute(update(Inbound).where(Inbound.id == inbound_id).values(state="done"))
            if hold is not None:
                conn.execute(insert(Held).values(
                    inbound_id=inbound_id, list_id=info.id, sender=hold.headers.sender,
                    subject=hold.headers.subject, reasons=list(hold.reasons), state="held",
                    received_at=now))
            assert outcome.apply_isolated(conn, now=now) or "already" in outcome.note
        assert outcome.error is None, outcome.error
        return outcome

    def new_mail(self) -> list[Mail]:
        with reading(self.engine) as conn:
            rows = conn.execute(select(Outbound.id, Outbound.body, Outbound.kind)
                                .where(Outbound.id > self.seen_outbound)
                                .order_by(Outbound.id)).all()
            out = []
            for row in rows:
                rcpts = list(conn.scalars(select(Delivery.recipient)
                                          .where(Delivery.outbound_id == row.id)))
                msg = message_from_bytes(bytes(row.body), policy=policy.default)
                out.append(Mail(sorted(rcpts), msg))  # type: ignore[arg-type]
                self.seen_outbound = row.id
        return out

    def held(self) -> list[tuple[int, str]]:
        with reading(self.engine) as conn:
            return [(r.id, r.state) for r in conn.execute(select(Held.id, Held.state)
                                                          .order_by(Held.id))]

    def subscription(self, email: str, list_name: str = "city-clerks") -> str | None:
        with reading(self.engine) as conn:
            return subscriber_status(conn, get_list(conn, list_name).id, email)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    settings = load_settings({
        "CITYMAIL_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "CITYMAIL_VAR_DIR": str(tmp_path / "var"),
        "CITYMAIL_SECRET_KEY": "test-secret-key-0123456789abcdef",
        "CITYMAIL_TRUSTED_AUTHSERV_IDS": "mx.test",
        "CITYMAIL_VERIFY_DKIM": "0",
    })
    engine = make_engine(settings)
    schema.upgrade(engine)
    league = load_league()
    with writing(engine) as conn:
        seed_lists(conn, league)
        for address in SUBSCRIBERS:
            add_member(conn, league, email=address, name=address[:3], city="Sacramento",
                       role="City Clerk")
        list_id = conn.execute(select(MailingList.id)
                               .where(MailingList.name == "city-clerks")).scalar_one()
        conn.execute(insert(ListRole), [
            {"list_id": list_id, "email": "mod@example.org", "role": "moderator"},
            {"list_id": list_id, "email": "boss@example.org", "role": "owner"}])
        names = [(r.name, r.kind) for r in conn.execute(select(MailingList.name,
                                                                MailingList.kind))]
    w = World(settings, engine, AddressTable(DOMAIN, names))
    yield w
    engine.dispose()


LIST = f"city-clerks@{DOMAIN}"


def test_held_post_notifies_moderators_and_an_authenticated_poster_once(world: World) -> None:
    world.receive(LIST, "outsider@example.com", "Buy <b>now</b>\n", subject="Offer", auth=True)
    notice, poster = world.new_mail()
    assert notice.recipients == ["mod@example.org"]
    assert notice.message["Auto-Submitted"] == "auto-generated"
    assert notice.reply_to.startswith("city-clerks-confirm+m")
    token = notice.reply_to.partition("+")[2].partition("@")[0]
    assert f"(confirm {token})" in str(notice.message["Subject"])
    assert "outsider@example.com" in notice.text and "not a member" in notice.text
    assert "| Buy <b>now</b>" in notice.text  # shown as text, never rendered
    assert poster.recipients == ["outsider@example.com"]
    assert poster.message["Auto-Submitted"] == "auto-replied"
    assert poster.message["In-Reply-To"] == "<m1@example.net>"
    world.receive(LIST, "outsider@example.com", "Again\n", subject="Offer 2", auth=True)
    assert [m.recipients for m in world.new_mail()] == [["mod@example.org"]]  # told once


def test_unauthenticated_poster_is_never_told(world: World) -> None:
    world.receive(LIST, "forged@example.com", "x")
    assert [m.recipients for m in world.new_mail()] == [["mod@example.org"]]


def test_reply_approve_delivers_once_and_a_second_decision_is_refused(world: World) -> None:
    world.receive(LIST, "outsider@example.com", "Useful news\n", subject="News", auth=True)
    notice = world.new_mail()[0]
    reply = "approve\n\nOn Mon, the list wrote:\n> discard\n"
    world.receive(notice.reply_to, "mod@example.org", reply, subject="Re: held")
    assert world.held() == [(1, "approved")]
    with reading(world.engine) as conn:
        outbound = conn.execute(select(Outbound.id, Outbound.dispatched_at, Outbound.body)
                                .where(Outbound.kind == "post")).one()
        rcpts = sorted(conn.scalars(select(Delivery.recipient)
                                    .where(Delivery.outbound_id == outbound.id)))
        assert conn.execute(select(Post.subject)).scalar_one() == "News"
    assert outbound.dispatched_at is None  # the clock dispatches it
    assert rcpts == SUBSCRIBERS
    assert b"[City Clerks] News" in outbound.body and b"List-Id:" in outbound.body
    acks = [m for m in world.new_mail() if m.recipients == ["mod@example.org"]]
    assert acks and "approved" in str(acks[-1].message["Subject"])
    world.receive(notice.reply_to, "mod@example.org", "approve", subject="Re: held")
    with reading(world.engine) as conn:
        assert conn.execute(select(Post.id)).all() == [(1,)]
    [answer] = world.new_mail()
    assert "already approved" in answer.text


def test_forged_or_foreign_tokens_decide_nothing(world: World) -> None:
    world.receive(LIST, "outsider@example.com", "x", auth=True)
    notice = world.new_mail()[0]
    token = notice.reply_to.partition("+")[2].partition("@")[0]
    kind_id, expiry, _mac = token.split("-")
    forged = f"city-clerks-confirm+{kind_id}-{expiry}-{'a' * 13}@{DOMAIN}"
    world.receive(forged, "attacker@example.net", "approve")
    other_list = f"fire-chiefs-confirm+{token}@{DOMAIN}"
    world.receive(other_list, "attacker@example.net", "approve")
    assert world.held() == [(1, "held")]
    answers = world.new_mail()
    assert [a.recipients for a in answers] == [["attacker@example.net"]] * 2
    assert "not valid" in answers[0].text


def test_reject_tells_an_authenticated_poster_the_reason(world: World) -> None:
    world.receive(LIST, "outsider@example.com", "x", subject="Off", auth=True)
    notice = world.new_mail()[0]
    world.receive(notice.reply_to, "mod@example.org", "reject Ce n'est pas le bon endroit")
    assert world.held() == [(1, "rejected")]
    mails = world.new_mail()
    [to_poster] = [m for m in mails if m.recipients == ["outsider@example.com"]]
    assert "Ce n'est pas le bon endroit" in to_poster.text


def test_reject_of_an_unauthenticated_poster_is_a_silent_discard(world: World) -> None:
    world.receive(LIST, "forged@example.com", "x")
    notice = world.new_mail()[0]
    world.receive(notice.reply_to, "mod@example.org", "reject spam")
    assert world.held() == [(1, "discarded")]
    assert [m.recipients for m in world.new_mail()] == [["mod@example.org"]]


def test_unclear_reply_and_automatic_reply_decide_nothing(world: World) -> None:
    world.receive(LIST, "outsider@example.com", "x", auth=True)
    notice = world.new_mail()[0]
    world.receive(notice.reply_to, "mod@example.org", "I am not sure about this one")
    world.receive(notice.reply_to, "mod@example.org", "approve",
                  headers="Auto-Submitted: auto-replied\r\n")
    assert world.held() == [(1, "held")]
    [answer] = world.new_mail()
    assert "no decision" in str(answer.message["Subject"])


def test_held_posts_expire_with_a_notice_to_an_authenticated_poster(world: World) -> None:
    world.receive(LIST, "outsider@example.com", "x", subject="Old", auth=True)
    world.new_mail()
    assert expire_due(world.engine, world.settings) == 0
    later = utcnow() + dt.timedelta(days=14, minutes=1)
    assert expire_due(world.engine, world.settings, now=later) == 1
    assert world.held() == [(1, "expired")]
    [notice] = world.new_mail()
    assert notice.recipients == ["outsider@example.com"] and "dropped" in notice.text
    assert expire_due(world.engine, world.settings, now=later) == 0


def test_non_member_join_needs_email_confirmation(world: World) -> None:
    world.receive(f"city-clerks-join@{DOMAIN}", "newbie@example.net", "please add me")
    [confirm] = world.new_mail()
    assert confirm.recipients == ["newbie@example.net"]
    assert confirm.reply_to.startswith("city-clerks-confirm+r")
    assert confirm.message["Auto-Submitted"] == "auto-replied"
    assert world.subscription("newbie@example.net") is None
    world.receive(confirm.reply_to, "newbie@example.net", "yes\n> quoted", subject="Re: x")
    assert world.subscription("newbie@example.net") == "active"
    [welcome] = world.new_mail()
    assert "Welcome" in str(welcome.message["Subject"])
    world.receive(confirm.reply_to, "newbie@example.net", "yes")  # single use
    assert "nothing to confirm" in str(world.new_mail()[0].message["Subject"])


def test_join_needing_approval_waits_for_an_owner(world: World) -> None:
    with writing(world.engine) as conn:
        conn.execute(update(MailingList).where(MailingList.name == "city-clerks")
                     .values(config={"join_needs_approval": True}))
    world.receive(f"city-clerks-request@{DOMAIN}", "newbie@example.net", "subscribe digest")
    [confirm] = world.new_mail()
    world.receive(confirm.reply_to, "newbie@example.net", "ok")
    approval, waiting = world.new_mail()
    assert approval.recipients == ["boss@example.org"]
    assert approval.reply_to.startswith("city-clerks-confirm+a")
    assert waiting.recipients == ["newbie@example.net"]
    assert world.subscription("newbie@example.net") is None
    world.receive(approval.reply_to, "boss@example.org", "approve")
    assert world.subscription("newbie@example.net") == "active"
    with reading(world.engine) as conn:
        assert conn.execute(select(ListRequest.state, ListRequest.mode)).one() == (
            "done", "digest")


def test_league_member_joins_at_once_and_leaves_when_authenticated(world: World) -> None:
    with writing(world.engine) as conn:
        league = load_league()
        add_member(conn, league, email="carol@example.org", name="Carol", city="Fresno",
                   role="Fire Chief")
    world.receive(f"city-clerks-join@{DOMAIN}", "carol@example.org", "")
    assert world.subscription("carol@example.org") == "active"
    world.new_mail()
    world.receive(f"city-clerks-leave@{DOMAIN}", "carol@example.org", "", auth=True)
    assert world.subscription("carol@example.org") == "left"
    [goodbye] = world.new_mail()
    assert "left" in str(goodbye.message["Subject"])
    # Coming back after leaving takes their own, proven opt-in.
    world.receive(f"city-clerks-join@{DOMAIN}", "carol@example.org", "")
    assert world.subscription("carol@example.org") == "left"
    [confirm] = world.new_mail()
    world.receive(confirm.reply_to, "carol@example.org", "yes")
    assert world.subscription("carol@example.org") == "active"


def test_unauthenticated_leave_asks_for_confirmation(world: World) -> None:
    world.receive(f"city-clerks-request@{DOMAIN}", "alice@example.org", "unsubscribe")
    assert world.subscription("alice@example.org") == "active"
    [confirm] = world.new_mail()
    assert "confirm" in str(confirm.message["Subject"])
    world.receive(confirm.reply_to, "alice@example.org", "cancel")
    assert world.subscription("alice@example.org") == "active"


def test_request_commands_answer_in_one_message(world: World) -> None:
    world.receive(f"city-clerks-request@{DOMAIN}", "alice@example.org",
                  "help\nwho\ndigest on\n-- \nAlice", auth=True)
    [answer] = world.new_mail()
    assert answer.message["Auto-Submitted"] == "auto-replied"
    assert "Only the list's owners" in answer.text and "Delivery is now: digest" in answer.text
    assert "join" in answer.text  # the help text
    world.receive(f"city-clerks-request@{DOMAIN}", "boss@example.org", "who")
    [roster] = world.new_mail()
    assert "alice@example.org (digest)" in roster.text and "bob@example.org" in roster.text


def test_automatic_mail_to_request_is_ignored(world: World) -> None:
    world.receive(f"city-clerks-request@{DOMAIN}", "alice@example.org", "leave",
                  headers="Precedence: bulk\r\n", auth=True)
    assert world.new_mail() == []
    assert world.subscription("alice@example.org") == "active"


def test_owner_address_forwards_unchanged_and_drops_loops(world: World) -> None:
    world.receive(f"city-clerks-owner@{DOMAIN}", "someone@example.net", "Hi owners")
    [forward] = world.new_mail()
    assert forward.recipients == ["boss@example.org"]
    assert forward.message["Delivered-To"] == f"city-clerks-owner@{DOMAIN}"
    assert forward.message["From"] == "someone@example.net"
    world.receive(f"city-clerks-owner@{DOMAIN}", "someone@example.net", "x",
                  headers=f"Delivered-To: city-clerks-owner@{DOMAIN}\r\n")
    assert world.new_mail() == []


def test_cli_decisions_use_held_ids_and_are_single_use(world: World) -> None:
    from citymail.moderation_cli import decide, held_detail, held_list

    world.receive(LIST, "outsider@example.com", "hello", subject="Via CLI", auth=True)
    world.new_mail()
    [row] = held_list(world.settings, "city-clerks")
    assert row["subject"] == "Via CLI" and held_detail(world.settings, row["id"])[
        "authenticated_sender"]
    decide(world.settings, row["id"], "approve")
    with pytest.raises(Exception, match="already approved"):
        decide(world.settings, row["id"], "discard")
    assert held_list(world.settings) == []
    assert len([m for m in world.new_mail() if m.recipients == SUBSCRIBERS]) == 1  # the post
    with reading(world.engine) as conn:
        assert conn.execute(select(Post.subject)).scalar_one() == "Via CLI"
