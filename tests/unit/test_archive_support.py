"""Shared parts of the archive tests (no tests here): posts through the real inbound path,
and a member signed in through the real emailed-link flow."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import base_env
from sqlalchemy import Engine, insert, select
from starlette.testclient import TestClient

from citymail import admin
from mailer.addresses import Target
from mailer.db import make_engine, reading, utcnow, writing
from mailer.league import load_league
from mailer.models import Inbound, Post
from mailer.people import add_member
from mailer.settings import Settings, load_settings
from mailer.tokens import sign
from web.app import create_app
from workers.inbound import InboundProcessor

# mailer.people.subscribe still calls Result.tuples(), deprecated in SQLAlchemy 2.1.
pytestmark = pytest.mark.filterwarnings("ignore:The Result.tuples:DeprecationWarning")

CLERK = "alice@example.org"  # a member of city-clerks
CHIEF = "fred@example.org"  # a member of fire-chiefs only


@dataclass
class ArchiveWorld:
    settings: Settings
    engine: Engine
    counter: list[int] = field(default_factory=lambda: [0])

    def deliver(self, raw: bytes, *, list_name: str = "city-clerks",
                sender: str = CLERK) -> int | None:
        """Store ``raw`` as the gateway would and process it; the post's id, if accepted."""
        with writing(self.engine) as conn:
            inbound_id = conn.execute(insert(Inbound).values(
                mail_from=sender, rcpt_to=[Target(list_name, "post").to_json()],
                size=len(raw), raw=raw, state="received", received_at=utcnow(),
                peer="127.0.0.1").returning(Inbound.id)).scalar_one()
        InboundProcessor(self.engine, self.settings, dispatch=lambda *_: None,
                         threads=1).process(inbound_id)
        with reading(self.engine) as conn:
            return conn.scalar(select(Post.id).where(Post.inbound_id == inbound_id))

    def post(self, subject: str, body: str, *, list_name: str = "city-clerks",
             sender: str = CLERK, message_id: str | None = None, reply_to: str | None = None,
             date: str = "Tue, 04 Mar 2025 10:00:00 -0800", extra: str = "") -> int:
        self.counter[0] += 1
        message_id = message_id or f"<p{self.counter[0]}.{time.monotonic_ns()}@example.org>"
        thread = f"In-Reply-To: {reply_to}\r\nReferences: {reply_to}\r\n" if reply_to else ""
        raw = (f"From: Alice Clerk <{sender}>\r\nTo: {list_name}@lists.cacities.org\r\n"
               f"Subject: {subject}\r\nDate: {date}\r\nMessage-ID: {message_id}\r\n{thread}"
               f"{extra or 'Content-Type: text/plain; charset=utf-8'}\r\n\r\n{body}\r\n")
        post_id = self.deliver(raw.encode(), list_name=list_name, sender=sender)
        assert post_id is not None, "the post was not accepted"
        return post_id

    def client(self) -> TestClient:
        return TestClient(create_app(self.settings, self.engine), base_url="http://testserver")


def _install(directory: Path) -> tuple[Settings, Engine]:
    settings = load_settings(base_env(directory, CITYMAIL_VERIFY_DKIM="0"))
    return settings, make_engine(settings)


def build_template(directory: Path) -> Path:
    """An initialised database with CLERK and CHIEF as members, to copy for each test
    (migrating a fresh database for every test costs about half a second)."""
    settings, engine = _install(directory)
    admin.init(settings)
    with writing(engine) as conn:
        league = load_league()
        add_member(conn, league, email=CLERK, name="Alice Clerk", city="Sacramento",
                   role="City Clerk")
        add_member(conn, league, email=CHIEF, name="Fred Chief", city="Sacramento",
                   role="Fire Chief")
    engine.dispose()  # the last connection checkpoints the WAL into the file
    return directory / "citymail.db"


def make_world(tmp_path: Path, template: Path) -> Iterator[ArchiveWorld]:
    """A fresh copy of ``template`` (use as a fixture body)."""
    shutil.copyfile(template, tmp_path / "citymail.db")
    settings, engine = _install(tmp_path)
    yield ArchiveWorld(settings, engine)
    engine.dispose()


def sign_in(http: TestClient, settings: Settings, email: str) -> None:
    """Sign ``email`` in as a member by following an emailed sign-in link's page."""
    token = sign(settings.secret_key, "member-signin", email, "", expires=int(time.time()) + 600)
    page = http.get(f"/signin/{token}")
    assert page.status_code == 200, page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    data = {"csrf_token": csrf.group(1)} if csrf else {}
    done = http.post(f"/signin/{token}", data=data, follow_redirects=False)
    assert done.status_code == 303, done.text
