"""Structured logs: with CITYMAIL_LOG_FORMAT=json each record is a JSON line that names the
message (inbound_id) or the delivery chunk (outbound_id, chunk) being worked on."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import Engine, insert, select

from mailer.db import reading, writing
from mailer.league import load_league
from mailer.logfmt import JsonFormatter, log_context, log_ids
from mailer.models import Delivery, Inbound
from mailer.people import add_member
from mailer.settings import Settings, load_settings
from workers.runtime import build_runtime

MEMBER = "clerk@sacramento.example"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # Other tests may have quietened or disabled logging (logging.disable is process-wide).
    disabled_below = logging.root.manager.disable
    logging.disable(logging.NOTSET)
    named = [logging.getLogger(n) for n in ("workers.inbound", "mailer.sending")]
    saved = [(lg.level, lg.disabled, lg.propagate) for lg in named]
    for lg in named:
        lg.setLevel(logging.NOTSET)
        lg.disabled, lg.propagate = False, True
    yield out
    for lg, (level, disabled, propagate) in zip(named, saved, strict=True):
        lg.setLevel(level)
        lg.disabled, lg.propagate = disabled, propagate
    root.removeHandler(handler)
    root.setLevel(old_level)
    logging.disable(disabled_below)


def records(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_post_and_its_delivery_are_logged_with_their_ids(
        engine: Engine, settings: Settings, json_log: io.StringIO) -> None:
    raw = (f"From: {MEMBER}\r\nTo: city-clerks@lists.cacities.org\r\nSubject: Agenda\r\n"
           "Message-ID: <agenda-1@sacramento.example>\r\n\r\nSee you Tuesday.\r\n").encode()
    with writing(engine) as conn:
        add_member(conn, load_league(), email=MEMBER, name="Clerk", city="Sacramento",
                   role="City Clerk")
        inbound_id = conn.execute(insert(Inbound).values(
            mail_from=MEMBER, rcpt_to=[["city-clerks", "post", None]], size=len(raw),
            raw=raw, state="received").returning(Inbound.id)).scalar_one()
    rt = build_runtime(settings, engine, StubBroker(), threads=1)
    rt.processor.process([inbound_id])
    with reading(engine) as conn:
        outbound_id, first = conn.execute(select(Delivery.outbound_id, Delivery.id)).one()
    rt.chunks.send_chunk(outbound_id, first, first)

    logged = records(json_log)
    accepted = next(r for r in logged if "accepted on city-clerks" in str(r["message"]))
    assert accepted["inbound_id"] == inbound_id
    assert accepted["level"] == "info" and accepted["logger"] == "workers.inbound"
    assert str(accepted["time"]).endswith("+00:00")
    sent = next(r for r in logged if "chunk" in str(r["message"]))
    assert (sent["outbound_id"], sent["chunk"]) == (outbound_id, f"{first}-{first}")
    assert "inbound_id" not in sent  # each context ends with its work


def test_context_nests_and_exceptions_are_one_json_line(json_log: io.StringIO) -> None:
    log = logging.getLogger("citymail.test")

    @log_ids(outbound_id="outbound_id")
    def work(outbound_id: int) -> None:
        try:
            raise ValueError("relay said no")
        except ValueError:
            log.exception("chunk failed")

    with log_context(inbound_id=7):
        work(12)
    log.info("after")
    failed, after = records(json_log)
    assert (failed["inbound_id"], failed["outbound_id"]) == (7, 12)
    assert "ValueError: relay said no" in str(failed["exception"])
    assert "inbound_id" not in after and "outbound_id" not in after


def test_the_log_format_is_a_setting(tmp_path) -> None:
    from helpers import base_env

    assert load_settings(base_env(tmp_path)).log_format == "text"
    assert load_settings(base_env(tmp_path, CITYMAIL_LOG_FORMAT="JSON")).log_format == "json"
    from mailer.errors import SettingsError

    with pytest.raises(SettingsError, match="CITYMAIL_LOG_FORMAT must be one of text, json"):
        load_settings(base_env(tmp_path, CITYMAIL_LOG_FORMAT="xml"))
