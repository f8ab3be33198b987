"""Digests end to end without servers: collected posts become the right digest at the
right local time, to the right members, through the real delivery engine."""

from __future__ import annotations

import datetime as dt

import pytest
import test_digest_support as support
from sqlalchemy import select, update
from test_digest_support import World, digests_for, utc

from listservs.digests import digest_status, send_due_digests
from mailer.db import reading, writing
from mailer.models import MailingList, Subscription
from mailer.models_digests import Digest

world = support.world  # fixture
BOB, CHO, ANN = "bob@example.net", "cho@example.com", "ann@example.org"


def test_a_day_of_posts_becomes_one_digest_at_seven_local_for_digest_members_only(
        world: World) -> None:
    # Wednesday 14 January 2026 in Sacramento (PST, UTC-8): 08:00, 11:30 and 18:00.
    for subject, at in [("Agenda deadline", "2026-01-14T16:00"),
                        ("Records request", "2026-01-14T19:30"),
                        ("Brown Act question", "2026-01-15T02:00")]:
        world.post(subject, utc(at))
    singles = world.deliver()
    assert sorted({m.rcpt for m in singles}) == [ANN]  # digest readers get no single posts
    assert len(singles) == 3

    assert send_due_digests(world.engine, world.settings, utc("2026-01-15T14:59")) == 0
    assert world.deliver() == []
    assert send_due_digests(world.engine, world.settings, utc("2026-01-15T15:00")) == 1
    mails = world.deliver()
    assert sorted(m.rcpt for m in mails) == [BOB, CHO]  # one each, none for ann

    [mime] = digests_for(mails, BOB)
    msg = mime.message
    assert msg["Subject"] == "[City Clerks] Digest, Vol 1, Issue 1"
    assert msg["From"].addresses[0].addr_spec == "city-clerks-request@lists.cacities.org"
    assert msg.get_content_type() == "multipart/mixed"
    toc, digest, _footer = msg.iter_parts()
    contents = toc.get_content().replace("\r\n", "\n")
    assert "Today's Topics:\n\n   1. Agenda deadline (Ann Lee)\n" in contents
    assert "   3. Brown Act question (Ann Lee)" in contents
    assert digest.get_content_type() == "multipart/digest"
    inner = [part.get_content() for part in digest.iter_parts()]
    assert [str(m["Subject"]) for m in inner] == [
        "[City Clerks] Agenda deadline", "[City Clerks] Records request",
        "[City Clerks] Brown Act question"]
    assert all("Hello clerks." in m.get_body(("plain",)).get_content() for m in inner)

    [plain] = digests_for(mails, CHO)
    text = plain.message.get_content().replace("\r\n", "\n")
    assert plain.message.get_content_type() == "text/plain"
    assert "Today's Topics:" in text and "Message: 3" in text
    assert text.rstrip().endswith("End of City Clerks Digest, Vol 1, Issue 1\n"
                                  + "*" * len("End of City Clerks Digest, Vol 1, Issue 1"))


def test_digest_carries_the_reduced_list_headers_and_its_readers_own_unsubscribe(
        world: World) -> None:
    world.post("Agenda deadline", utc("2026-01-14T16:00"))
    world.deliver()
    send_due_digests(world.engine, world.settings, utc("2026-01-15T15:00"))
    [mail] = digests_for(world.deliver(), BOB)
    msg = mail.message
    assert msg["List-Id"] == '"City Clerks department" <city-clerks.lists.cacities.org>'
    assert msg["List-Post"] == "<mailto:city-clerks@lists.cacities.org>"
    assert "help" in msg["List-Help"] and msg["List-Subscribe"] and msg["List-Archive"]
    assert msg["List-Unsubscribe"].startswith("<https://lists.example.org/u/")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Precedence"] == "list"
    assert msg["Archived-At"] is None and msg["List-Owner"] is None
    assert mail.mail_from.startswith("city-clerks-bounces+")  # VERP names this delivery
    assert len(msg.get_all("List-Unsubscribe")) == 1


@pytest.mark.parametrize(("posted", "early", "due"), [
    # Saturday 7 March (PST) -> Sunday 8 March 07:00 PDT, the day clocks spring forward.
    ("2026-03-07T17:00", "2026-03-08T13:59", "2026-03-08T14:00"),
    # Saturday 31 October (PDT) -> Sunday 1 November 07:00 PST, the day they fall back:
    # 14:00 UTC would be 07:00 in summer, but that morning it is 06:00.
    ("2026-10-31T17:00", "2026-11-01T14:00", "2026-11-01T15:00"),
])
def test_seven_local_follows_the_clocks_across_daylight_saving_changes(
        world: World, posted: str, early: str, due: str) -> None:
    world.post("Council minutes", utc(posted))
    world.post("Election calendar", utc(posted) + dt.timedelta(hours=3))
    world.deliver()
    assert send_due_digests(world.engine, world.settings, utc(early)) == 0
    assert send_due_digests(world.engine, world.settings, utc(due)) == 1
    [mail] = digests_for(world.deliver(), BOB)
    assert len(list(list(mail.message.iter_parts())[1].iter_parts())) == 2
    with reading(world.engine) as conn:
        assert conn.execute(select(Digest.sent_at)).scalar_one() == utc(due)


def test_count_and_size_thresholds_send_before_the_scheduled_time(world: World) -> None:
    with writing(world.engine) as conn:
        conn.execute(update(MailingList).where(MailingList.name == "city-clerks")
                     .values(config={"digest": {"count": 3, "size_kb": 4}}))
    noon = utc("2026-01-14T20:00")  # 12:00 PST, long before tomorrow's 07:00
    world.post("One", noon)
    world.post("Two", noon)
    assert send_due_digests(world.engine, world.settings, noon) == 0
    world.post("Three", noon)
    assert send_due_digests(world.engine, world.settings, noon) == 1  # count reached
    world.post("Big", noon, body="x" * 5000)  # over 4 KB on its own
    assert send_due_digests(world.engine, world.settings, noon) == 1
    mails = digests_for(world.deliver(), BOB)
    assert [str(m.message["Subject"]) for m in mails] == [
        "[City Clerks] Digest, Vol 1, Issue 1", "[City Clerks] Digest, Vol 1, Issue 2"]
    with reading(world.engine) as conn:
        assert list(conn.scalars(select(Digest.reason).order_by(Digest.id))) == [
            "count", "size"]


def test_status_shows_what_waits_and_when_it_goes(world: World) -> None:
    world.post("Agenda deadline", utc("2026-07-14T16:00"))
    status = digest_status(world.engine, world.settings, "city-clerks",
                           now=utc("2026-07-14T17:00"))
    assert status["waiting"]["posts"] == 1
    assert status["next_due"] == {"utc": "2026-07-15T14:00:00+00:00",
                                  "local": "2026-07-15 07:00 PDT", "reason": None}
    assert status["subscribers"] == {"digest": 1, "digest-plain": 1}
    send_due_digests(world.engine, world.settings, utc("2026-07-15T14:00"))
    status = digest_status(world.engine, world.settings, "city-clerks")
    assert status["last"]["issue"] == 1 and status["waiting"]["posts"] == 0
    assert status["next_due"]["utc"] is None


def test_an_idle_clock_takes_no_write_lock(world: World,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from listservs import digests

    def no_writes(_engine: object) -> None:
        raise AssertionError("the clock took the write lock with nothing due")

    monkeypatch.setattr(digests, "writing", no_writes)
    assert send_due_digests(world.engine, world.settings, utc("2026-01-14T16:00")) == 0
    world.post("Agenda deadline", utc("2026-01-14T16:00"))  # waiting, due tomorrow 07:00
    assert send_due_digests(world.engine, world.settings, utc("2026-01-14T23:00")) == 0


def test_a_list_nobody_reads_as_digests_collects_nothing_and_sends_nothing(
        world: World) -> None:
    with writing(world.engine) as conn:
        conn.execute(update(Subscription).where(Subscription.list_id == world.list_id)
                     .values(mode="regular"))
    world.post("Agenda deadline", utc("2026-01-14T16:00"))
    assert len(world.deliver()) == 3  # everyone reads it at once
    assert send_due_digests(world.engine, world.settings, utc("2026-01-20T15:00")) == 0
    status = digest_status(world.engine, world.settings, "city-clerks")
    assert status["waiting"]["posts"] == 0 and status["last"]["issue"] is None
