"""The SMTP sender against a real aiosmtpd relay, with and without PIPELINING."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import Sink, SinkHandler, free_port

from mailer.settings import Relay
from mailer.transport import Copy, SmtpSender

BODY = (b"From: a@example.org\r\nSubject: t\r\n\r\nline one\r\n.starts with a dot\r\n"
        b"..two dots\r\n.\r\nend\r\n")


class PickyHandler(SinkHandler):
    """Refuses bad-* recipients for good (550) and busy-* for now (450)."""

    pipelining = True

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("bad-"):
            return "550 5.1.1 no such user"
        if address.startswith("busy-"):
            return "450 4.2.1 try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture(params=[True, False], ids=["pipelining", "one-by-one"])
def relay(request: pytest.FixtureRequest) -> Iterator[Sink]:
    handler = PickyHandler()
    handler.pipelining = request.param
    sink = Sink(handler).start()
    yield sink
    sink.stop()


def sender_for(sink: Sink) -> SmtpSender:
    return SmtpSender(Relay("smtp", host="127.0.0.1", port=sink.port), timeout=5)


def test_personal_copies_arrive_intact_with_their_own_head(relay: Sink) -> None:
    sender = sender_for(relay)
    copies = [Copy(f"list-bounces+{i}@lists.example", ((i, f"m{i}@example.org"),), BODY,
                   f"X-Personal: {i}\r\n".encode()) for i in range(5)]
    results = sender.send(copies)
    sender.close()
    assert [r.outcome for r in results] == ["sent"] * 5
    got = relay.wait_for(5)
    for i, message in enumerate(got):
        assert message.mail_from == f"list-bounces+{i}@lists.example"
        assert message.rcpt_tos == [f"m{i}@example.org"]
        assert message.data == f"X-Personal: {i}\r\n".encode() + BODY  # dots un-stuffed


def test_bulk_copy_reports_each_recipient(relay: Sink) -> None:
    sender = sender_for(relay)
    rcpts = ((1, "ok1@example.org"), (2, "bad-2@example.org"), (3, "busy-3@example.org"),
             (4, "ok4@example.org"))
    results = {r.delivery_id: r for r in sender.send([Copy("l-bounces@x.example", rcpts, BODY)])}
    sender.close()
    assert results[1].outcome == "sent" and results[4].outcome == "sent"
    assert results[2].outcome == "failed" and results[2].code == 550
    assert results[3].outcome == "deferred" and results[3].code == 450
    assert relay.wait_for(1)[0].rcpt_tos == ["ok1@example.org", "ok4@example.org"]


def test_every_recipient_refused_sends_nothing(relay: Sink) -> None:
    sender = sender_for(relay)
    results = sender.send([Copy("l@x.example", ((1, "bad-1@example.org"),), BODY),
                           Copy("l@x.example", ((2, "ok@example.org"),), BODY)])
    sender.close()
    assert [r.outcome for r in results] == ["failed", "sent"]
    assert [m.rcpt_tos for m in relay.wait_for(1)] == [["ok@example.org"]]


def test_a_dead_relay_defers_everyone_and_fails_nobody() -> None:
    sender = SmtpSender(Relay("smtp", host="127.0.0.1", port=free_port()), timeout=2)
    results = sender.send([Copy("l@x.example", ((i, f"m{i}@example.org"),), BODY)
                           for i in range(3)])
    assert [r.outcome for r in results] == ["deferred"] * 3
    assert "cannot connect" in results[0].text


def test_the_connection_is_reused_and_survives_a_relay_restart(relay: Sink) -> None:
    sender = sender_for(relay)
    assert sender.send([Copy("l@x.example", ((1, "a@example.org"),), BODY)])[0].outcome == "sent"
    first = sender._conn
    assert sender.send([Copy("l@x.example", ((2, "b@example.org"),), BODY)])[0].outcome == "sent"
    assert sender._conn is first
    relay.stop()
    dropped = sender.send([Copy("l@x.example", ((3, "c@example.org"),), BODY)])
    assert dropped[0].outcome == "deferred"
    again = Sink(relay.handler, port=relay.port).start()
    try:
        assert sender.send([Copy("l@x.example", ((3, "c@example.org"),), BODY)]
                           )[0].outcome == "sent"
        sender.close()
    finally:
        again.stop()
