"""``citymail lists digest`` and ``citymail members mode``, in-process on a real database."""

from __future__ import annotations

import argparse
import json

import pytest
import test_digest_support as support
from test_digest_support import World, digests_for, utc

from citymail.digests_cli import add_digest_verbs, add_member_mode_verb
from mailer.errors import CitymailError

world = support.world  # fixture


def run(world: World, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="citymail")
    sub = parser.add_subparsers(dest="verb", required=True)
    add_digest_verbs(sub.add_parser("lists").add_subparsers(dest="lists_verb"))
    add_member_mode_verb(sub.add_parser("members").add_subparsers(dest="members_verb"))
    args = parser.parse_args(argv)
    return int(args.func(args, world.settings))


def test_an_owner_checks_changes_and_sends_a_digest_now(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    run(world, "lists", "digest", "city-clerks", "--frequency", "weekly", "--weekday",
        "friday", "--at", "16:30")
    assert "digest settings saved" in capsys.readouterr().out
    world.post("Agenda deadline", utc("2026-01-14T16:00"))
    run(world, "lists", "digest", "city-clerks", "--status", "--json")
    status = json.loads(capsys.readouterr().out)
    assert status["frequency"] == "weekly" and status["weekday"] == "friday"
    assert status["waiting"]["posts"] == 1
    assert status["next_due"]["local"] == "2026-01-16 16:30 PST"
    run(world, "lists", "digest", "city-clerks", "--status")
    assert "next due: 2026-01-16 16:30 PST" in capsys.readouterr().out

    run(world, "lists", "digest", "city-clerks", "--send-now")
    assert "sent Vol 1, Issue 1 (1 posts) to 2 members" in capsys.readouterr().out
    assert len(digests_for(world.deliver(), "bob@example.net")) == 1
    run(world, "lists", "digest", "city-clerks", "--send-now")
    assert "no posts are waiting" in capsys.readouterr().out


def test_members_mode_switches_and_bad_values_are_one_clear_error(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    run(world, "members", "mode", "ann@example.org", "city-clerks", "digest-plain")
    assert "ann@example.org on city-clerks: digest-plain" in capsys.readouterr().out
    with pytest.raises(CitymailError, match="offers the modes regular, nomail"):
        run(world, "members", "mode", "ann@example.org", "advocate", "digest")
    with pytest.raises(CitymailError, match="no member"):
        run(world, "members", "mode", "zed@example.org", "city-clerks", "digest")
    with pytest.raises(CitymailError, match="like '07:00'"):
        run(world, "lists", "digest", "city-clerks", "--at", "7pm")
