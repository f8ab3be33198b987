"""`citymail status`: one screen that tells an operator whether mail is flowing."""

from __future__ import annotations

import datetime as dt
import json

from ops_scene import build_scene, run_cli
from sqlalchemy import Engine, insert, update

from citymail.status_cli import gather, render
from mailer.db import reading, utcnow, writing
from mailer.models import Inbound, MailingList
from newsletters.models import Issue


def test_status_shows_workers_queues_held_posts_bounces_and_errors(
        env: dict[str, str], engine: Engine, monkeypatch, capsys) -> None:
    now = utcnow()
    scene = build_scene(engine, now)
    send_at = now + dt.timedelta(days=2)
    with writing(engine) as conn:
        advocate = conn.scalar(MailingList.__table__.select().with_only_columns(
            MailingList.id).where(MailingList.name == "advocate"))
        conn.execute(insert(Issue).values(list_id=advocate, subject="Budget week",
                                          state="scheduled", send_at=send_at))
        conn.execute(update(Inbound).where(Inbound.id == scene.old_rejected)
                     .values(state="failed", error="ValueError: bad header"))
    shown = json.loads(run_cli(env, monkeypatch, capsys, "status", "--json").stdout)
    assert [(w["host"], w["processes"]) for w in shown["workers"]] == [("mx1", 2)]
    assert shown["inbound_waiting"]["messages"] == 1
    states = shown["deliveries"]["states"]
    assert (states["sent"], states["pending"], states["deferred"], states["failed"]) == (
        5, 1, 1, 2)
    [sending] = shown["deliveries"]["sending"]
    assert (sending["id"], sending["list"], sending["remaining"]) == (
        scene.live_outbound, "city-clerks", 2)
    assert sending["eta_seconds"] is not None  # two copies went out in the last minute
    assert shown["held"] == {"city-clerks": 1}
    assert shown["bounces_24h"] == 1
    assert shown["next_issue"]["newsletter"] == "advocate"
    assert shown["next_issue"]["subject"] == "Budget week"
    assert shown["oldest_error"]["what"] == "inbound"
    assert shown["oldest_error"]["error"] == "ValueError: bad header"

    text = run_cli(env, monkeypatch, capsys, "status").stdout
    assert "workers:  mx1 2" in text
    assert "1 waiting" in text
    assert "1 on city-clerks" in text
    assert "1 in the last 24 h" in text
    assert "advocate" in text and "Budget week" in text
    assert "ValueError: bad header" in text
    assert len(text.splitlines()) <= 24  # one screen


def test_status_of_a_quiet_installation_says_so(engine: Engine) -> None:
    with reading(engine) as conn:
        text = render(gather(conn))
    assert "workers:  NONE ALIVE" in text
    assert "held:     none" in text
    assert "next issue: none scheduled" in text
    assert "oldest error: none" in text
