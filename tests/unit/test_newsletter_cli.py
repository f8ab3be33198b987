"""``citymail newsletters …`` verbs, run in-process against a real database."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import test_newsletter_support as support

from citymail.newsletters_cli import add_bench_newsletter, add_newsletter_verbs
from mailer.errors import CitymailError
from mailer.settings import Settings

settings, engine = support.settings, support.engine  # fixtures


def run(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="citymail")
    sub = parser.add_subparsers(dest="verb", required=True)
    add_newsletter_verbs(sub)
    add_bench_newsletter(sub.add_parser("bench").add_subparsers(dest="bench_verb"))
    args = parser.parse_args(argv)
    return int(args.func(args, settings))


def out_json(capsys: pytest.CaptureFixture[str]) -> object:
    return json.loads(capsys.readouterr().out)


def test_an_editor_creates_previews_schedules_and_follows_an_issue(
        settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    block = tmp_path / "intro.md"
    block.write_text("# Budget week\n\nSee **the numbers**.<script>x()</script>\n")
    run(settings, "newsletters", "issue", "create", "advocate", "--subject", "Budget week",
        "--block", str(block))
    assert "issue #1 of advocate created" in capsys.readouterr().out
    run(settings, "newsletters", "issue", "preview", "1")
    html = capsys.readouterr().out
    assert "<strong>the numbers</strong>" in html and "<script" not in html
    assert "Hello Pat Example," in html and "/u/PREVIEW" in html
    run(settings, "newsletters", "issue", "preview", "1", "--text", "--out",
        str(tmp_path / "p.txt"))
    assert "the numbers" in (tmp_path / "p.txt").read_text()
    run(settings, "newsletters", "issue", "schedule", "1", "--at", "2099-12-01 09:00")
    assert "2099-12-01 09:00 PST (2099-12-01 17:00 UTC)" in capsys.readouterr().out
    run(settings, "newsletters", "issue", "status", "1", "--json")
    status = out_json(capsys)
    assert isinstance(status, dict)
    assert (status["state"], status["send_local"]) == ("scheduled", "2099-12-01T09:00")
    run(settings, "newsletters", "issue", "list", "--json")
    [row] = out_json(capsys)  # type: ignore[misc]
    assert row["subject"] == "Budget week" and row["newsletter"] == "advocate"
    run(settings, "newsletters", "issue", "cancel", "1")
    assert "issue #1 cancelled" in capsys.readouterr().out


def test_errors_are_one_line_with_the_fix(settings: Settings) -> None:
    with pytest.raises(CitymailError, match="no newsletter called 'gazette'"):
        run(settings, "newsletters", "issue", "create", "gazette", "--subject", "x")
    with pytest.raises(CitymailError, match="no issue #9"):
        run(settings, "newsletters", "issue", "pause", "9")
    run(settings, "newsletters", "issue", "create", "western-city", "--subject", "Monthly")
    with pytest.raises(CitymailError, match="is draft; only sending issues can pause"):
        run(settings, "newsletters", "issue", "pause", "1")
    with pytest.raises(CitymailError, match="local time like"):
        run(settings, "newsletters", "issue", "schedule", "1", "--at", "tomorrow")
    with pytest.raises(CitymailError, match="no such file"):
        run(settings, "newsletters", "issue", "create", "advocate", "--subject", "x",
            "--block", "/nonexistent.md")


def test_feeds_add_and_list(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    run(settings, "newsletters", "feeds", "add", "western-city", "https://news.example/f.xml")
    assert "feed #1 added to western-city" in capsys.readouterr().out
    run(settings, "newsletters", "feeds", "list", "--json")
    [feed] = out_json(capsys)  # type: ignore[misc]
    assert (feed["status"], feed["items"], feed["last_error"]) == ("new", 0, None)
