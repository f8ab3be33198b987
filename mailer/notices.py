"""Notices: single messages citymail writes itself (welcome, moderation, confirmations).

``queue_notice`` stores the message and its deliveries in the caller's transaction; the
workers' clock dispatches it within a tick, so the CLI and the web can queue mail without
reaching the broker.  Bodies come from Jinja2 templates under ``templates/notices/``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import Connection, insert

from mailer import delivery
from mailer.db import utcnow
from mailer.models import Outbound

__all__ = ["build_notice", "queue_notice", "render_notice", "templates"]

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
_env: Environment | None = None


def templates() -> Environment:
    """The Jinja2 environment for mail templates (text: no HTML autoescaping)."""
    global _env
    if _env is None:
        _env = Environment(loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined,
                           keep_trailing_newline=True, autoescape=False)
    return _env


def render_notice(name: str, context: Mapping[str, Any]) -> tuple[str, str]:
    """Render ``notices/NAME.txt``: its first line is ``Subject: …``, then a blank line."""
    text = templates().get_template(f"notices/{name}.txt").render(**context)
    head, _, body = text.partition("\n\n")
    if not head.startswith("Subject:"):
        raise ValueError(f"template notices/{name}.txt must start with 'Subject: ...'")
    return head.removeprefix("Subject:").strip(), body


def build_notice(*, sender: str, sender_name: str, to: str, subject: str, text: str,
                 domain: str, headers: Mapping[str, str] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = formataddr((sender_name, sender))
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@{domain}>"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: nobody should auto-reply to it
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(text, cte="quoted-printable")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def queue_notice(conn: Connection, *, data: bytes, recipients: Iterable[str],
                 bounce_local: str, list_id: int | None = None, kind: str = "notice") -> int:
    """Store a ready message for ``recipients``; returns the outbound id."""
    outbound_id = conn.execute(insert(Outbound).values(
        kind=kind, list_id=list_id, personal=False, body=data, bounce_local=bounce_local,
        created_at=utcnow(), dispatched_at=None).returning(Outbound.id)).scalar_one()
    delivery.add_recipients(conn, outbound_id=outbound_id, recipients=recipients,
                            list_id=list_id)
    return outbound_id
