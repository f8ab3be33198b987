"""``citymail bounces show``: every step of a person's bounce handling is visible."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_bounce_events import SPAM, World, day, dsn, make_world

from citymail.bounces_cli import add_bounce_verbs
from mailer.bounce_duties import run_bounce_duties
from mailer.bounce_view import bounce_view
from mailer.db import reading, utcnow, writing
from mailer.errors import NotFound

ALICE = "alice@example.org"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = make_world(tmp_path)
    yield w
    w.engine.dispose()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="citymail")
    bounces = p.add_subparsers(dest="verb").add_parser("bounces").add_subparsers(
        dest="bounces_verb")
    add_bounce_verbs(bounces)
    return p


def test_show_lists_events_scores_status_warnings_and_the_next_step(world: World) -> None:
    for n in range(5):
        ids = world.send("city-clerks", at=day(n))
        world.bounce(dsn(ALICE), "city-clerks", token=world.verp(ids[ALICE]), at=day(n))
        world.bounce(dsn(ALICE, status="5.7.1", diagnostic=SPAM), "city-clerks",
                     token=world.verp(ids[ALICE]), at=day(n))
    ids = world.send("advocate", at=day(4))
    world.bounce(dsn(ALICE), "advocate", token=world.verp(ids[ALICE]), at=day(4))
    with writing(world.engine) as conn:
        run_bounce_duties(conn, world.settings, now=day(4))
    with reading(world.engine) as conn:
        data = bounce_view(conn, "Alice@Example.org", now=day(5))

    assert data["email"] == ALICE
    subs = {s["name"]: s for s in data["subscriptions"]}
    clerks, advocate = subs["city-clerks"], subs["advocate"]
    assert (clerks["delivery_status"], clerks["score"], clerks["warnings_sent"]) == (
        "disabled_bounce", 5.0, 1)
    assert clerks["next_action"] == {"action": "warn", "number": 2, "of": 3,
                                     "at": day(11).isoformat()}
    assert (advocate["delivery_status"], advocate["score"]) == ("enabled", 1.0)
    assert advocate["next_action"]["action"] == "score_halves"
    assert advocate["next_action"]["bouncing_days_to_disable"] == 4
    assert subs["western-city"]["next_action"] is None
    events = data["events"]
    assert len(events) == 11
    assert [(e["kind"], e["status"], e["points"]) for e in events[:2]] == [
        ("permanent", "5.1.1", 1.0), ("policy", "5.7.1", 0.0)]
    assert events[1]["why"] == "policy rejection: never counts"
    assert events[0]["date"] == day(0).date().isoformat()
    assert events[0]["list"] == "city-clerks"
    assert "User unknown" in events[0]["diagnostic"]
    assert data["policy"]["threshold"] == 5.0


def test_the_verb_prints_json_or_text(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    now = utcnow()  # the verb scores at the real time
    ids = world.send("city-clerks", at=now)
    world.bounce(dsn(ALICE), "city-clerks", token=world.verp(ids[ALICE]), at=now)

    args = parser().parse_args(["bounces", "show", ALICE, "--json"])
    assert args.func(args, world.settings) == 0
    data = json.loads(capsys.readouterr().out)
    assert [e["kind"] for e in data["events"]] == ["permanent"]

    args = parser().parse_args(["bounces", "show", ALICE])
    assert args.func(args, world.settings) == 0
    text = capsys.readouterr().out
    assert "city-clerks" in text and "permanent" in text and "5.1.1" in text
    assert "score halves to 0.5" in text


def test_an_unknown_address_is_a_one_line_error(world: World) -> None:
    with reading(world.engine) as conn, pytest.raises(NotFound, match="no member"):
        bounce_view(conn, "nobody@example.org", now=day(0))
