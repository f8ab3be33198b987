"""Leaving digest mode yields one last digest; several clocks never send a digest twice."""

from __future__ import annotations

import threading

import pytest
import test_digest_support as support
from sqlalchemy import func, select
from test_digest_support import World, digests_for, utc

from listservs import digests
from listservs.commands import parse_command
from listservs.effects import SetMode
from listservs.handlers import _mode_of
from mailer import preferences
from mailer.db import reading, writing
from mailer.models import Member
from mailer.models_digests import Digest

world = support.world  # fixture
BOB, CHO, ANN = "bob@example.net", "cho@example.com", "ann@example.org"
MORNING = utc("2026-01-15T15:00")  # 07:00 PST


def _member(world: World, email: str) -> int:
    with reading(world.engine) as conn:
        return conn.execute(select(Member.id).where(Member.email == email)).scalar_one()


def _topics(mail: support.Mail) -> list[str]:
    toc = next(iter(mail.message.iter_parts())).get_content()
    return [line.strip() for line in toc.splitlines() if line.strip()[:2] in ("1.", "2.", "3.")]


def test_switching_back_to_regular_sends_one_last_digest_for_that_member_alone(
        world: World) -> None:
    world.post("Agenda deadline", utc("2026-01-14T16:00"))
    world.post("Records request", utc("2026-01-14T17:00"))
    world.deliver()
    with writing(world.engine) as conn:
        assert preferences.set_mode(conn, _member(world, BOB), world.list_id, "regular")
    assert digests.send_due_digests(world.engine, world.settings, utc("2026-01-14T18:00")) == 1
    mails = world.deliver()
    [last] = digests_for(mails, BOB)
    assert [m.rcpt for m in mails] == [BOB]
    assert _topics(last) == ["1. Agenda deadline (Ann Lee)", "2. Records request (Ann Lee)"]
    assert last.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    world.post("Brown Act question", utc("2026-01-14T19:00"))  # bob now reads it at once
    assert sorted(m.rcpt for m in world.deliver()) == [ANN, BOB]
    assert digests.send_due_digests(world.engine, world.settings, MORNING) == 1
    mails = world.deliver()
    assert [m.rcpt for m in mails] == [CHO]  # the regular digest: three posts, not for bob
    assert "Message: 3" in mails[0].message.get_content()
    assert digests.send_due_digests(world.engine, world.settings, MORNING) == 0


def test_digest_off_by_email_owes_a_last_digest_and_nomail_does_not(world: World) -> None:
    command = parse_command("set digest off")
    assert command is not None and _mode_of(command) == "regular"
    plain = parse_command("digest plain")
    assert plain is not None and _mode_of(plain) == "digest-plain"
    world.post("Agenda deadline", utc("2026-01-14T16:00"))
    world.deliver()
    with writing(world.engine) as conn:
        SetMode(world.list_id, BOB, "regular").apply(conn, now=utc("2026-01-14T17:00"))
        SetMode(world.list_id, CHO, "nomail").apply(conn, now=utc("2026-01-14T17:00"))
    digests.send_due_digests(world.engine, world.settings, utc("2026-01-14T18:00"))
    assert [m.rcpt for m in world.deliver()] == [BOB]


def test_two_clocks_racing_on_one_digest_send_it_once(world: World,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    world.post("Agenda deadline", utc("2026-01-14T16:00"))
    world.deliver()
    real_render = digests.render
    raced: list[object] = []

    def render_while_another_clock_sends(*args, **kwargs):  # type: ignore[no-untyped-def]
        if not raced:  # the other clock does the whole job between our read and write
            raced.append(None)
            raced[0] = digests.send_due_digests(world.engine, world.settings, MORNING)
        return real_render(*args, **kwargs)

    monkeypatch.setattr(digests, "render", render_while_another_clock_sends)
    assert digests.send_due_digests(world.engine, world.settings, MORNING) == 0  # lost
    assert raced == [1]
    assert sorted(m.rcpt for m in world.deliver()) == [BOB, CHO]  # once each


def test_clocks_in_threads_send_each_digest_once(world: World) -> None:
    world.post("Agenda deadline", utc("2026-01-14T16:00"))
    world.deliver()
    counts: list[int] = []
    threads = [threading.Thread(target=lambda: counts.append(digests.send_due_digests(
        world.engine, world.settings, MORNING))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 1
    with reading(world.engine) as conn:
        assert conn.execute(select(func.count()).select_from(Digest)).scalar_one() == 1
    assert sorted(m.rcpt for m in world.deliver()) == [BOB, CHO]
