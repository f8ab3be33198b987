"""Retention: old delivery rows and raw bytes go, archived posts and live work stay."""

from __future__ import annotations

import datetime as dt
import json

from ops_scene import RAW, build_scene, run_cli
from sqlalchemy import Engine, func, select

from mailer.db import reading, utcnow
from mailer.models import Delivery, Inbound
from mailer.retention import prune

KEEP = {"keep_deliveries": dt.timedelta(days=90), "keep_raw": dt.timedelta(days=30)}


def raw_of(engine: Engine, inbound_id: int) -> bytes:
    with reading(engine) as conn:
        return bytes(conn.scalar(select(Inbound.raw).where(Inbound.id == inbound_id)))


def deliveries_of(engine: Engine, outbound_id: int) -> int:
    with reading(engine) as conn:
        return conn.scalar(select(func.count()).select_from(Delivery)
                           .where(Delivery.outbound_id == outbound_id))


def test_prune_keeps_archived_posts_and_recent_or_unfinished_work(engine: Engine) -> None:
    scene = build_scene(engine, utcnow())
    dry = prune(engine, dry_run=True, **KEEP)
    assert (dry.deliveries, dry.raw_messages, dry.raw_bytes) == (4, 1, len(RAW))
    assert deliveries_of(engine, scene.old_outbound) == 4  # a dry run changes nothing

    done = prune(engine, batch=2, pause=0, **KEEP)  # several small batches
    assert (done.deliveries, done.raw_messages) == (4, 1)
    assert deliveries_of(engine, scene.old_outbound) == 0
    assert deliveries_of(engine, scene.live_outbound) == 5
    assert raw_of(engine, scene.old_rejected) == b""
    assert raw_of(engine, scene.old_post) == RAW  # archived: never pruned
    for recent in (scene.posted, scene.held, scene.waiting):
        assert raw_of(engine, recent) == RAW
    again = prune(engine, **KEEP)
    assert (again.deliveries, again.raw_messages) == (0, 0)


def test_nothing_is_pruned_before_its_time(engine: Engine) -> None:
    scene = build_scene(engine, utcnow())
    result = prune(engine, keep_deliveries=dt.timedelta(days=200),
                   keep_raw=dt.timedelta(days=200))
    assert (result.deliveries, result.raw_messages) == (0, 0)
    assert raw_of(engine, scene.old_rejected) == RAW


def test_prune_command_reports_and_honours_the_settings(env: dict[str, str], engine: Engine,
                                                        monkeypatch, capsys) -> None:
    build_scene(engine, utcnow())
    dry = json.loads(run_cli(env, monkeypatch, capsys, "prune", "--dry-run", "--json").stdout)
    assert dry == {"deliveries": 4, "raw_messages": 1, "raw_bytes": len(RAW), "dry_run": True,
                   "keep_deliveries_days": 90, "keep_raw_days": 30}
    longer = {**env, "CITYMAIL_KEEP_DELIVERIES_DAYS": "365", "CITYMAIL_KEEP_RAW_DAYS": "365"}
    assert "pruned 0 delivery rows" in run_cli(longer, monkeypatch, capsys, "prune").stdout
    out = run_cli(env, monkeypatch, capsys, "prune").stdout
    assert "pruned 4 delivery rows older than 90 days" in out
    assert "archived posts are kept" in out
    bad = run_cli({**env, "CITYMAIL_KEEP_RAW_DAYS": "soon"}, monkeypatch, capsys, "prune")
    assert bad.returncode == 2 and "CITYMAIL_KEEP_RAW_DAYS must be a whole number" in bad.stderr
