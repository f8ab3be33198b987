"""After a disable: warnings with a re-enable link, owner notices, removal, re-enabling."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, update
from test_bounce_events import World, day, dsn, make_world

from mailer.bounce_duties import (
    bounce_duties_due,
    reenable,
    reenable_token,
    run_bounce_duties,
)
from mailer.db import reading, writing
from mailer.league import load_league
from mailer.models import Delivery, ListRole, Member, Outbound
from mailer.models_bounces import BounceState, delivery_enabled
from mailer.people import add_member, subscribe

ALICE = "alice@example.org"
OWNER = "owner@cacities.org"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = make_world(tmp_path)
    with writing(w.engine) as conn:
        conn.execute(insert(ListRole).values(list_id=w.lists["city-clerks"], email=OWNER,
                                             role="owner"))
    yield w
    w.engine.dispose()


def disable_alice(world: World) -> None:
    for n in range(5):
        ids = world.send("city-clerks", at=day(n))
        world.bounce(dsn(ALICE), "city-clerks", token=world.verp(ids[ALICE]), at=day(n))
    assert world.state(ALICE, "city-clerks").delivery_status == "disabled_bounce"


def duties(world: World, at: dt.datetime) -> int:
    with reading(world.engine) as conn:
        due = bounce_duties_due(conn, now=at)
    with writing(world.engine) as conn:
        queued = run_bounce_duties(conn, world.settings, now=at)
    if queued:
        assert due
    return queued


def notices(world: World) -> list[tuple[tuple[str, ...], object]]:
    """Queued notices: (recipients, parsed message), oldest first."""
    with reading(world.engine) as conn:
        rows = conn.execute(select(Outbound.id, Outbound.body)
                            .where(Outbound.kind == "notice").order_by(Outbound.id)).all()
        out = []
        for row in rows:
            to = tuple(conn.scalars(select(Delivery.recipient)
                                    .where(Delivery.outbound_id == row.id)))
            out.append((to, message_from_bytes(bytes(row.body), policy=policy.default)))
    return out


def link(message) -> str:
    match = re.search(r"http://127\.0\.0\.1:8000/r/(\S+)", message.get_content())
    assert match, message.get_content()
    return match.group(1)


def test_disabling_sends_a_warning_with_a_link_and_tells_the_owners(world: World) -> None:
    disable_alice(world)
    assert duties(world, day(4)) == 2

    (warn_to, warning), (owner_to, owner) = notices(world)
    assert warn_to == (ALICE,)
    assert warning["Subject"].strip() == ("City Clerks department: delivery to "
                                          "alice@example.org is paused (notice 1 of 3)")
    assert warning["From"].addresses[0].addr_spec == "city-clerks-owner@lists.cacities.org"
    assert warning["Auto-Submitted"] == "auto-generated"
    body = warning.get_content()
    assert "5.1.1" in body and "User unknown" in body
    assert "on or after Friday 27 November 2026" in body  # 21 days after the disable
    assert link(warning)
    assert owner_to == (OWNER,)
    assert owner["Subject"].strip() == ("City Clerks department: delivery to "
                                        "alice@example.org paused after bounces")
    assert "bounce score reached 5" in owner.get_content()
    state = world.state(ALICE, "city-clerks")
    assert (state.warnings_sent, state.last_warning_at, state.next_action_at) == (
        1, day(4), day(11))
    # Nothing more is due until a week later; a second clock finds nothing to do.
    assert duties(world, day(4)) == 0
    assert duties(world, day(10)) == 0
    assert len(notices(world)) == 2


def test_three_warnings_a_week_apart_then_removal_and_the_owners_hear(world: World) -> None:
    disable_alice(world)
    assert duties(world, day(4)) == 2
    assert duties(world, day(11)) == 1
    assert duties(world, day(18)) == 1
    assert duties(world, day(24)) == 0
    assert world.subscription(ALICE, "city-clerks") == ("active", "cli")
    assert duties(world, day(25)) == 1

    sent = notices(world)
    subjects = [m["Subject"].strip() for _to, m in sent]
    assert [s[-15:] for s in subjects[:1] + subjects[2:4]] == [
        "(notice 1 of 3)", "(notice 2 of 3)", "(notice 3 of 3)"]
    removed_to, removed = sent[-1]
    assert removed_to == (OWNER,)
    assert removed["Subject"].strip() == ("City Clerks department: alice@example.org "
                                          "removed after bounces")
    assert "3 warning(s)" in removed.get_content()
    assert world.subscription(ALICE, "city-clerks") == ("removed", "bounces")
    assert world.state(ALICE, "city-clerks").removed_at == day(25)
    assert duties(world, day(60)) == 0
    # An import does not add her back; her own opt-in does, and she gets mail again.
    with writing(world.engine) as conn:
        again = add_member(conn, load_league(), email=ALICE, role="City Clerk")
        assert "city-clerks" in again.kept_out
        subscribe(conn, world.members[ALICE], ["city-clerks"], source="self")
    ids = world.send("city-clerks", at=day(61))
    assert ALICE in ids  # fan_out itself is unchanged here; the state no longer holds her
    with reading(world.engine) as conn:
        enabled = conn.scalar(select(delivery_enabled(world.sub_id(ALICE, "city-clerks"))))
    assert enabled


def test_the_reenable_link_turns_delivery_back_on_and_the_score_starts_over(
        world: World) -> None:
    disable_alice(world)
    duties(world, day(4))
    token = link(notices(world)[0][1])

    with writing(world.engine) as conn:
        result = reenable(conn, token, settings=world.settings, now=day(6))
    assert (result.outcome, result.list_name, result.email) == ("reenabled", "city-clerks",
                                                                ALICE)
    state = world.state(ALICE, "city-clerks")
    assert (state.delivery_status, state.score, state.reenabled_at) == ("enabled", 0.0, day(6))
    assert duties(world, day(11)) == 0  # no more warnings
    # The old bounces never count again: one new bounce is one point.
    ids = world.send("city-clerks", at=day(7))
    world.bounce(dsn(ALICE), "city-clerks", token=world.verp(ids[ALICE]), at=day(7))
    assert world.state(ALICE, "city-clerks").score == 1.0
    with writing(world.engine) as conn:
        again = reenable(conn, token, settings=world.settings, now=day(8))
    assert again.outcome == "already_enabled"


def test_forged_expired_and_spent_links_do_nothing(world: World) -> None:
    disable_alice(world)
    sub_id = world.sub_id(ALICE, "city-clerks")
    genuine = reenable_token(world.settings, sub_id, day(4))
    forged = genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB")
    other_episode = reenable_token(world.settings, sub_id, day(1))
    with writing(world.engine) as conn:
        assert reenable(conn, forged, settings=world.settings, now=day(5)).outcome == "invalid"
        assert reenable(conn, "junk", settings=world.settings, now=day(5)).outcome == "invalid"
        assert reenable(conn, other_episode, settings=world.settings,
                        now=day(5)).outcome == "invalid"
        assert reenable(conn, genuine, settings=world.settings,
                        now=day(70)).outcome == "invalid"  # expired after 60 days
    assert world.state(ALICE, "city-clerks").delivery_status == "disabled_bounce"
    for n in (4, 11, 18, 25):
        duties(world, day(n))
    with writing(world.engine) as conn:
        assert reenable(conn, genuine, settings=world.settings,
                        now=day(26)).outcome == "removed"


def test_warnings_stop_when_the_person_leaves_or_is_erased(world: World) -> None:
    disable_alice(world)
    with writing(world.engine) as conn:
        conn.execute(update(Member).where(Member.email == ALICE).values(status="erased"))
    assert duties(world, day(4)) == 0
    assert notices(world) == []
    assert world.state(ALICE, "city-clerks").delivery_status == "enabled"


def test_a_list_without_owners_still_warns_the_member(world: World) -> None:
    with writing(world.engine) as conn:
        conn.execute(delete(ListRole))
    disable_alice(world)
    assert duties(world, day(4)) == 1
    [(to, _warning)] = notices(world)
    assert to == (ALICE,)


def test_a_late_clock_keeps_a_full_week_between_warnings(world: World) -> None:
    disable_alice(world)
    assert duties(world, day(30)) == 2  # the clock was down for weeks: warning 1 only
    assert duties(world, day(36)) == 0
    assert duties(world, day(37)) == 1
    with reading(world.engine) as conn:
        state = conn.execute(select(BounceState.__table__)).one()
    assert (state.warnings_sent, state.next_action_at) == (2, day(44))
    assert state.disabled_at == day(4)
