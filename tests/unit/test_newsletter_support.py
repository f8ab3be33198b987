"""Shared set-up for the newsletter unit tests (no tests here).

A database with the schema, the league's lists and a few subscribers is built once per
session and copied for each test: migrations take seconds, a file copy milliseconds.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select, text

from mailer import delivery, schema
from mailer.db import make_engine, reading, writing
from mailer.league import load_league, seed_lists
from mailer.models import MailingList, Member, Subscription
from mailer.people import add_member
from mailer.settings import Settings
from mailer.transport import MemorySender
from newsletters.dispatch import IssueCopies

PEOPLE = [
    ("ann@example.org", "Ann Lee", "Davis"),
    ("bob@example.net", "Bob O'Brien <&>", "Eureka"),
    ("cho@example.com", "Chō Müller", "San José"),
]
_template: dict[str, Path] = {}


def make_settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path}/citymail.db", var_dir=tmp_path,
                    secret_keys=("k" * 32,), base_url="https://lists.example.org",
                    list_domain="lists.cacities.org")


def _build_template(folder: Path) -> Path:
    settings = make_settings(folder)
    engine = make_engine(settings)
    schema.upgrade(engine)
    with writing(engine) as conn:
        seed_lists(conn, load_league())
        for email, name, city in PEOPLE:
            add_member(conn, load_league(), email=email, name=name, city=city,
                       role="City Clerk")
    engine.dispose()
    return folder / "citymail.db"


@pytest.fixture
def settings(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    if "db" not in _template:
        _template["db"] = _build_template(tmp_path_factory.mktemp("newsletter-template"))
    shutil.copy(_template["db"], tmp_path / "citymail.db")
    return make_settings(tmp_path)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings, synchronous="OFF")
    yield engine
    engine.dispose()


def newsletter_id(engine: Engine, name: str = "advocate") -> int:
    with reading(engine) as conn:
        return conn.execute(select(MailingList.id).where(MailingList.name == name)).scalar_one()


def add_subscribers(engine: Engine, count: int, name: str = "advocate") -> None:
    """``count`` more active subscribers of the newsletter, in one statement each."""
    list_id = newsletter_id(engine, name)
    with writing(engine) as conn:
        first = conn.execute(select(func.coalesce(func.max(Member.id), 0))).scalar_one() + 1
        conn.execute(insert(Member), [
            {"email": f"reader{i}@city{i % 7}.example", "name": f"Reader {i}",
             "is_league_member": True, "status": "active"} for i in range(first, first + count)])
        conn.execute(insert(Subscription).from_select(
            ["member_id", "list_id", "mode", "status", "source", "created_at", "updated_at"],
            select(Member.id, text(str(list_id)), text("'regular'"), text("'active'"),
                   text("'test'"), func.current_timestamp(), func.current_timestamp())
            .where(Member.id >= first)))


def deliver(engine: Engine, settings: Settings, sender: MemorySender, outbound_id: int, *,
            chunk: int = 50, limit: int | None = None, worker: str = "w1") -> int:
    """What the workers do with the hook wired: claim chunks, personalise, send, record.

    ``limit`` stops after that many chunks (a worker interrupted by a pause)."""
    copies = IssueCopies(engine, settings)
    with reading(engine) as conn:
        ranges = delivery.pending_ranges(conn, outbound_id, chunk)
        body, bounce_local, _ = delivery.outbound_body(conn, outbound_id)
    sent = 0
    for first, last in ranges[:limit]:
        claimed = delivery.claim(engine, outbound_id=outbound_id, first=first, last=last,
                                 worker=worker)
        if not claimed:
            continue
        results = sender.send(copies(claimed, body, bounce_local))
        sent += delivery.record_results(engine, results, claimed, worker=worker)["sent"]
    return sent
