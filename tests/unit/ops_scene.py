"""A small installation with mail in every state, for the operations tests (metrics,
status, retention): rows written the way the gateway and the workers write them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine, insert, select

from mailer.db import writing
from mailer.league import load_league
from mailer.models import (
    Delivery,
    Held,
    Inbound,
    MailingList,
    Outbound,
    Post,
    Subscription,
    WorkerBeat,
)
from mailer.models_bounces import BounceEvent
from mailer.people import add_member

RAW = b"From: ann@a.example\r\nSubject: hello\r\n\r\nbody\r\n"


@dataclass
class Scene:
    now: dt.datetime
    list_id: int
    waiting: int  # inbound not processed yet
    posted: int  # accepted and archived
    held: int  # waiting for a moderator
    old_rejected: int  # processed, not a post, older than any retention
    old_post: int  # an archived post just as old
    live_outbound: int  # still being delivered
    old_outbound: int  # finished long ago


def _inbound(conn, at: dt.datetime, *, state: str = "done") -> int:
    return conn.execute(insert(Inbound).values(
        received_at=at, mail_from="ann@a.example", rcpt_to=[["city-clerks", "post", None]],
        size=len(RAW), raw=RAW, state=state,
        processed_at=None if state == "received" else at).returning(Inbound.id)).scalar_one()


def _outbound(conn, list_id: int, at: dt.datetime, post_id: int | None) -> int:
    return conn.execute(insert(Outbound).values(
        kind="post", list_id=list_id, post_id=post_id, body=RAW,
        bounce_local="city-clerks-bounces", created_at=at, dispatched_at=at)
        .returning(Outbound.id)).scalar_one()


def _deliveries(conn, outbound_id: int, list_id: int, states: list[tuple[str, dt.datetime]],
                created: dt.datetime) -> None:
    conn.execute(insert(Delivery), [
        {"outbound_id": outbound_id, "list_id": list_id, "recipient": f"r{i}@b.example",
         "state": state, "attempts": 1, "due_at": due, "created_at": created,
         "sent_at": due if state == "sent" else None,
         "last_error": "550 5.1.1 no such user" if state == "failed" else None}
        for i, (state, due) in enumerate(states)])


def build_scene(engine: Engine, now: dt.datetime) -> Scene:
    old = now - dt.timedelta(days=120)
    with writing(engine) as conn:
        add_member(conn, load_league(), email="ann@a.example", name="Ann",
                   city="Sacramento", role="City Clerk")
        list_id = conn.scalar(select(MailingList.id).where(MailingList.name == "city-clerks"))
        sub = conn.execute(select(Subscription.id, Subscription.member_id)
                           .where(Subscription.list_id == list_id)).first()
        waiting = _inbound(conn, now - dt.timedelta(seconds=120), state="received")
        posted = _inbound(conn, now - dt.timedelta(minutes=5))
        post_id = conn.execute(insert(Post).values(
            inbound_id=posted, list_id=list_id, message_id="<p1@a.example>", subject="hello",
            sender="ann@a.example", created_at=now).returning(Post.id)).scalar_one()
        held = _inbound(conn, now - dt.timedelta(minutes=3))
        conn.execute(insert(Held).values(inbound_id=held, list_id=list_id,
                                         sender="zed@z.example", subject="Buy now",
                                         reasons=["not a member"], received_at=now))
        old_rejected = _inbound(conn, old)
        old_post = _inbound(conn, old)
        old_post_id = conn.execute(insert(Post).values(
            inbound_id=old_post, list_id=list_id, message_id="<p0@a.example>",
            subject="old", sender="ann@a.example", created_at=old).returning(Post.id)
        ).scalar_one()
        live = _outbound(conn, list_id, now - dt.timedelta(minutes=5), post_id)
        _deliveries(conn, live, list_id, [
            ("sent", now), ("sent", now), ("pending", now - dt.timedelta(seconds=30)),
            ("deferred", now + dt.timedelta(minutes=10)), ("failed", now)],
            now - dt.timedelta(minutes=5))
        old_out = _outbound(conn, list_id, old, old_post_id)
        _deliveries(conn, old_out, list_id, [("sent", old)] * 3 + [("failed", old)], old)
        conn.execute(insert(BounceEvent).values(
            subscription_id=sub.id, member_id=sub.member_id, list_id=list_id,
            occurred_at=now - dt.timedelta(hours=2), kind="permanent", source="smtp",
            address="r4@b.example", status="5.1.1"))
        conn.execute(insert(WorkerBeat), [
            {"id": "mx1-100", "host": "mx1", "pid": 100, "started_at": now, "beat_at": now},
            {"id": "mx1-101", "host": "mx1", "pid": 101, "started_at": now, "beat_at": now},
            {"id": "mx2-200", "host": "mx2", "pid": 200, "started_at": old, "beat_at": old}])
    return Scene(now, list_id, waiting, posted, held, old_rejected, old_post, live, old_out)


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def run_cli(env: dict[str, str], monkeypatch, capsys, *args: str) -> Ran:
    """``citymail ARGS`` in this process (a subprocess costs seconds per call)."""
    import os

    from citymail.cli import main

    for key in [k for k in os.environ if k.startswith("CITYMAIL_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("CITYMAIL_"):
            monkeypatch.setenv(key, value)
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return Ran(code, out, err)
