"""The gateway over real SMTP: refusals at RCPT, sizes, storage before 250."""

from __future__ import annotations

import asyncio
import smtplib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

from mailer import schema
from mailer.addresses import AddressTable
from mailer.db import make_engine
from mailer.gateway import GatewayHandler, InboundStore, start_gateway
from mailer.models import Inbound
from mailer.settings import Settings

LIST = "city-clerks@lists.cacities.org"
MSG = (b"From: Alice <alice@example.org>\r\nTo: " + LIST.encode() +
       b"\r\nSubject: hello\r\n\r\nBody line\r\n")


class Gateway:
    def __init__(self, tmp: Path, *, max_size: int = 10_000) -> None:
        self.settings = Settings(database_url=f"sqlite:///{tmp / 'g.db'}", secret_keys=("k" * 20,))
        self.engine = make_engine(self.settings)
        schema.upgrade(self.engine)
        self.stored: list[int] = []
        self.fail = False
        self.loop = asyncio.new_event_loop()
        self.max_size = max_size
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def on_stored(self, ids: list[int]) -> None:
        self.stored.extend(ids)

    def start(self) -> Gateway:
        self.thread.start()
        table = AddressTable("lists.cacities.org", [("city-clerks", "list")])

        async def boot() -> int:
            self.store = InboundStore(self.engine, on_stored=self.on_stored)
            self.store.start()
            original = self.store._write

            def write(items):  # a storage outage on demand
                if self.fail:
                    raise OSError("disk gone")
                return original(items)

            self.store._write = write  # type: ignore[method-assign]
            self.server = await start_gateway(GatewayHandler(table, self.store),
                                              host="127.0.0.1", port=0, max_size=self.max_size)
            return self.server.sockets[0].getsockname()[1]

        self.port = asyncio.run_coroutine_threadsafe(boot(), self.loop).result(10)
        return self

    def stop(self) -> None:
        async def down() -> None:
            self.server.close()
            await self.server.wait_closed()
            await self.store.stop()

        asyncio.run_coroutine_threadsafe(down(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
        self.engine.dispose()

    def rows(self) -> list:
        with self.engine.connect() as conn:
            return conn.execute(select(Inbound.__table__).order_by(Inbound.id)).all()

    def client(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, timeout=10)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(tmp_path).start()
    yield gw
    gw.stop()


def test_a_post_is_stored_exactly_as_received_before_250(gateway: Gateway) -> None:
    with gateway.client() as smtp:
        smtp.ehlo("mua.example")
        code, reply = smtp.mail("alice@example.org")
        assert code == 250
        assert smtp.rcpt(LIST)[0] == 250
        code, reply = smtp.data(MSG)
    assert code == 250 and b"queued as" in reply
    rows = gateway.rows()
    assert len(rows) == 1
    assert bytes(rows[0].raw) == MSG
    assert rows[0].mail_from == "alice@example.org"
    assert rows[0].rcpt_to == [["city-clerks", "post", None]]
    assert gateway.stored == [rows[0].id]


def test_unknown_list_gets_550_5_1_1(gateway: Gateway) -> None:
    with gateway.client() as smtp:
        smtp.ehlo()
        smtp.mail("alice@example.org")
        code, reply = smtp.rcpt("no-such-list@lists.cacities.org")
    assert code == 550 and reply.startswith(b"5.1.1")


def test_foreign_domain_gets_550_5_7_1_never_relayed(gateway: Gateway) -> None:
    with gateway.client() as smtp:
        smtp.ehlo()
        smtp.mail("alice@example.org")
        code, reply = smtp.rcpt("victim@gmail.com")
        assert code == 550 and reply.startswith(b"5.7.1")
        smtp.rset()
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("alice@example.org", ["victim@gmail.com"], MSG)
    assert gateway.rows() == []


def test_oversized_message_gets_552_and_nothing_is_stored(tmp_path: Path) -> None:
    gw = Gateway(tmp_path, max_size=2000).start()
    try:
        big = MSG + b"x" * 70 + b"\r\n"
        big = big * 60
        with gw.client() as smtp:
            smtp.ehlo()
            # Declared size over the limit: refused at MAIL FROM.
            code, _ = smtp.mail("alice@example.org", ["SIZE=50000"])
            assert code == 552
            smtp.rset()
            # Undeclared: refused at the end of DATA, without storing.
            smtp.mail("alice@example.org")
            smtp.rcpt(LIST)
            code, _ = smtp.data(big)
            assert code == 552
        assert gw.rows() == []
    finally:
        gw.stop()


def test_long_lines_8bit_and_smtputf8_are_accepted(gateway: Gateway) -> None:
    long_line = b"<p>" + b"a" * 5000 + b"</p>"
    body = ("From: Zoë <zoe@exämple.org>\r\nTo: " + LIST + "\r\nSubject: café\r\n"
            "Content-Type: text/html; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\nGrüße\r\n").encode() + long_line + b"\r\n"
    with gateway.client() as smtp:
        smtp.ehlo()
        assert smtp.has_extn("smtputf8") and smtp.has_extn("8bitmime")
        smtp.sendmail("zoë@exämple.org", [LIST], body, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    rows = gateway.rows()
    assert bytes(rows[0].raw) == body


def test_storage_failure_answers_451_so_the_sender_retries(gateway: Gateway) -> None:
    gateway.fail = True
    with gateway.client() as smtp:
        smtp.ehlo()
        smtp.mail("alice@example.org")
        smtp.rcpt(LIST)
        code, _ = smtp.data(MSG)
    assert code == 451
    gateway.fail = False
    with gateway.client() as smtp:
        smtp.sendmail("alice@example.org", [LIST], MSG)
    assert len(gateway.rows()) == 1


def test_concurrent_senders_share_commits_and_every_message_is_stored(gateway: Gateway) -> None:
    def send(i: int) -> None:
        with gateway.client() as smtp:
            for j in range(10):
                smtp.sendmail("alice@example.org", [LIST], MSG + f"{i}-{j}\r\n".encode())

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(send, range(10)))
    rows = gateway.rows()
    assert len(rows) == 100
    assert {bytes(r.raw).rsplit(b"\r\n", 2)[-2] for r in rows} == {
        f"{i}-{j}".encode() for i in range(10) for j in range(10)}


def test_a_writer_stuck_on_the_lock_gets_451_not_a_hang(tmp_path: Path, monkeypatch) -> None:
    import fcntl
    import os

    from mailer import db

    monkeypatch.setattr(db, "LOCK_TIMEOUT", 1.0)
    gw = Gateway(tmp_path).start()
    holder = os.open(str(tmp_path / "g.db.writelock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another process, stopped while holding the lock
    try:
        with gw.client() as smtp:
            smtp.ehlo()
            smtp.mail("alice@example.org")
            smtp.rcpt(LIST)
            code, _ = smtp.data(MSG)
        assert code == 451
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
        gw.stop()


def test_each_250_names_the_row_that_holds_that_message(gateway: Gateway) -> None:
    # Many messages share a commit; the id in each reply must still be its own row's.
    def send(i: int) -> list[tuple[int, bytes]]:
        got = []
        with gateway.client() as smtp:
            smtp.ehlo()
            for j in range(5):
                body = MSG + f"{i}-{j}\r\n".encode()
                smtp.mail("alice@example.org")
                smtp.rcpt(LIST)
                code, reply = smtp.data(body)
                assert code == 250
                got.append((int(reply.rsplit(b" ", 1)[1]), body))
        return got

    with ThreadPoolExecutor(8) as pool:
        sent = [pair for chunk in pool.map(send, range(8)) for pair in chunk]
    rows = {r.id: bytes(r.raw) for r in gateway.rows()}
    assert len(rows) == 40
    for ident, body in sent:
        assert rows[ident] == body


def test_the_store_says_busy_while_messages_wait_and_idle_after(tmp_path: Path) -> None:
    states: list[bool] = []
    gw = Gateway(tmp_path)
    gw.thread.start()
    table = AddressTable("lists.cacities.org", [("city-clerks", "list")])

    async def boot() -> int:
        gw.store = InboundStore(gw.engine, on_stored=gw.on_stored, on_busy=states.append)
        gw.store.start()
        gw.server = await start_gateway(GatewayHandler(table, gw.store), host="127.0.0.1",
                                        port=0, max_size=10_000)
        return gw.server.sockets[0].getsockname()[1]

    gw.port = asyncio.run_coroutine_threadsafe(boot(), gw.loop).result(10)
    try:
        with gw.client() as smtp:
            smtp.sendmail("alice@example.org", [LIST], MSG)
        deadline = time.monotonic() + 5
        while states[-1:] != [False] and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        gw.stop()
    assert states == [True, False]


def test_background_writers_give_way_while_the_gateway_is_busy(tmp_path: Path) -> None:
    from sqlalchemy import text

    from mailer import db

    class Gate:
        def __init__(self) -> None:
            self.waits: list[float | None] = []

        def wait(self, timeout: float | None = None) -> bool:
            self.waits.append(timeout)
            return False  # shut: the writer waited its patience and goes on anyway

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'w.db'}", secret_keys=("k" * 20,))
    engine = make_engine(settings)
    gate = Gate()
    db.yield_writes_to(engine, gate)
    with db.writing(engine) as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    with db.writing(engine) as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
    with db.reading(engine) as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
    assert gate.waits == [db.GATE_PATIENCE, db.GATE_PATIENCE]
    engine.dispose()
