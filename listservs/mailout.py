"""Answers and notices a list writes: rendered from ``templates/notices/``, marked per RFC 3834.

An *answer* replies to someone's message (``Auto-Submitted: auto-replied``, with
In-Reply-To and References); a *notice* is sent on citymail's own initiative
(``auto-generated``).  Both are sent with the list's ``-bounces`` envelope sender.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

from listservs.effects import Limit, SendMail
from listservs.lists import ListInfo
from listservs.mailtext import subject_text
from listservs.rfc3834 import AUTO_GENERATED, AUTO_REPLIED
from mailer.authorship import header_values
from mailer.db import utcnow
from mailer.notices import render_notice
from mailer.settings import Settings

__all__ = ["Replying", "list_context", "mail"]


@dataclass(frozen=True)
class Replying:
    """The message an answer replies to: its Message-ID, References and Subject."""

    message_id: str | None
    references: str
    subject: str

    @classmethod
    def to(cls, msg: Any) -> Replying:
        ids = header_values(msg, "Message-ID")
        refs = header_values(msg, "References")
        return cls(ids[0][:998] if ids else None, refs[0][:1900] if refs else "",
                   subject_text(msg))


def list_context(info: ListInfo, settings: Settings) -> dict[str, Any]:
    """What every template may use about the list."""
    domain = settings.list_domain
    return {
        "list_name": info.name,
        "display_name": info.display_name,
        "list_address": info.address(settings),
        "request_address": f"{info.name}-request@{domain}",
        "join_address": f"{info.name}-join@{domain}",
        "leave_address": f"{info.name}-leave@{domain}",
        "owner_address": f"{info.name}-owner@{domain}",
        "list_url": f"{settings.base_url}/lists/{info.name}",
        "is_newsletter": info.kind == "newsletter",
    }


def _one_line(text: str) -> str:
    return " ".join(text.split())


def mail(info: ListInfo, settings: Settings, *, template: str, to: Sequence[str],
         context: Mapping[str, Any], sender: str | None = None,
         replying: Replying | None = None, limit: Limit | None = None) -> SendMail:
    """Render ``notices/TEMPLATE.txt`` for ``to``; an answer when ``replying`` is given.

    ``sender`` (default ``LIST-request@``) is both From and Reply-To: a confirmation token
    address makes "Reply" act on the token.
    """
    subject, text = render_notice(template, {**list_context(info, settings), **context})
    domain = settings.list_domain
    from_address = sender or f"{info.name}-request@{domain}"
    msg = EmailMessage()
    msg["From"] = formataddr((_one_line(info.display_name), from_address))
    msg["To"] = ", ".join(to)
    msg["Subject"] = _one_line(subject)
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@{domain}>"
    msg["Reply-To"] = from_address
    msg["Auto-Submitted"] = AUTO_REPLIED if replying is not None else AUTO_GENERATED
    if replying is not None and replying.message_id:
        msg["In-Reply-To"] = replying.message_id
        msg["References"] = _one_line(f"{replying.references} {replying.message_id}")
    msg.set_content(text, cte="quoted-printable")
    data = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
    return SendMail(data, tuple(dict.fromkeys(a.lower() for a in to)),
                    bounce_local=f"{info.name}-bounces", list_id=info.id, limit=limit)
