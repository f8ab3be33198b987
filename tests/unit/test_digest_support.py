"""Shared set-up for the digest tests (no tests here).

A database with the league's lists and three City Clerks is built once per session and
copied per test.  ``World.post`` runs a message through the real ``InboundProcessor`` (the
path every accepted post takes) and then dates it, so a test can lay out a day of posts;
``World.deliver`` does what the workers do with every pending delivery and returns what a
relay would receive.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select, update

from listservs.lists import get_list
from mailer import delivery, schema
from mailer.db import make_engine, reading, writing
from mailer.league import load_league, seed_lists
from mailer.models import Delivery, Inbound, MailingList, Member, Post, Subscription
from mailer.models_digests import DigestItem
from mailer.people import add_member
from mailer.sending import ChunkSender
from mailer.settings import Settings
from mailer.transport import MemorySender
from workers.inbound import InboundProcessor

LIST = "city-clerks"
DOMAIN = "lists.cacities.org"
# ann reads every post, bob MIME digests, cho RFC 1153 plain digests.
MODES = {"ann@example.org": "regular", "bob@example.net": "digest",
         "cho@example.com": "digest-plain"}
_template: dict[str, Path] = {}


def make_settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path}/citymail.db", var_dir=tmp_path,
                    secret_keys=("k" * 32,), base_url="https://lists.example.org",
                    list_domain=DOMAIN, verify_dkim=False)


def _build_template(folder: Path) -> Path:
    settings = make_settings(folder)
    engine = make_engine(settings)
    schema.upgrade(engine)
    with writing(engine) as conn:
        seed_lists(conn, load_league())
        for email in MODES:
            add_member(conn, load_league(), email=email, name=email.split("@")[0].title(),
                       city="Davis", role="City Clerk")
        list_id = conn.execute(select(MailingList.id)
                               .where(MailingList.name == LIST)).scalar_one()
        for email, mode in MODES.items():
            member = conn.execute(select(Member.id).where(Member.email == email)).scalar_one()
            conn.execute(update(Subscription).where(Subscription.member_id == member,
                                                    Subscription.list_id == list_id)
                         .values(mode=mode))
    engine.dispose()
    return folder / "citymail.db"


@dataclass
class Mail:
    mail_from: str
    rcpt: str
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


@dataclass
class World:
    settings: Settings
    engine: Engine
    counter: list[int] = field(default_factory=lambda: [0])

    @property
    def list_id(self) -> int:
        with reading(self.engine) as conn:
            return get_list(conn, LIST).id

    def post(self, subject: str, at: dt.datetime, *, body: str = "Hello clerks.",
             sender: str = "ann@example.org", extra: bytes = b"") -> None:
        """``sender`` posts to the list at ``at`` (processed as the workers do)."""
        self.counter[0] += 1
        raw = (f"From: Ann Lee <{sender}>\r\nTo: {LIST}@{DOMAIN}\r\nSubject: {subject}\r\n"
               f"Date: {at.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n"
               f"Message-ID: <p{self.counter[0]}@example.org>\r\n").encode() + extra + (
                   f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n".encode()
                   if not extra else b"")
        with writing(self.engine) as conn:
            inbound_id = conn.execute(insert(Inbound).values(
                mail_from=sender, rcpt_to=[[LIST, "post", None]], size=len(raw), raw=raw,
                state="received").returning(Inbound.id)).scalar_one()
        InboundProcessor(self.engine, self.settings, dispatch=lambda *_: None,
                         threads=1).process(inbound_id)
        with writing(self.engine) as conn:  # the post arrived at ``at``
            post_id = conn.execute(select(Post.id).where(Post.inbound_id == inbound_id)
                                   ).scalar_one()
            conn.execute(update(DigestItem).where(DigestItem.post_id == post_id)
                         .values(added_at=at))

    def deliver(self) -> list[Mail]:
        """Send every pending delivery as the workers would; what the relay received."""
        sender = MemorySender()
        chunks = ChunkSender(self.engine, self.settings, worker_id="w1",
                             sender_for_thread=lambda: sender)
        with reading(self.engine) as conn:
            outbound = sorted(set(conn.scalars(select(Delivery.outbound_id)
                                               .where(Delivery.state == "pending"))))
            ranges = {o: delivery.pending_ranges(conn, o, 100) for o in outbound}
        for outbound_id, pieces in ranges.items():
            for first, last in pieces:
                chunks.send_chunk(outbound_id, first, last)
        return [Mail(*sent) for sent in sender.sent]


@pytest.fixture
def world(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if "db" not in _template:
        _template["db"] = _build_template(tmp_path_factory.mktemp("digest-template"))
    shutil.copy(_template["db"], tmp_path / "citymail.db")
    settings = make_settings(tmp_path)
    engine = make_engine(settings, synchronous="OFF")
    yield World(settings, engine)
    engine.dispose()


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def digests_for(mails: list[Mail], rcpt: str) -> list[Mail]:
    return [m for m in mails if m.rcpt == rcpt and "Digest, Vol" in str(m.message["Subject"])]
