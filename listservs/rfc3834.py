"""RFC 3834 hygiene: which mail must never be answered, and how answers are marked.

Mail that a program sent (Auto-Submitted other than "no", the X-Autoreply family, Microsoft's
X-Auto-Response-Suppress), list or bulk mail (Precedence bulk/junk/list, List-Id), delivery
and read reports, the null envelope sender and mailer daemons, and anything from our own
list domain (a loop) is neither answered nor acted on: a vacation reply to a confirmation
address must not confirm anything.  Everything citymail sends is marked: answers to a
person's message ``Auto-Submitted: auto-replied``, other notices ``auto-generated``.
"""

from __future__ import annotations

from email.message import Message

from mailer.authorship import domain_of, header_values

__all__ = ["AUTO_GENERATED", "AUTO_REPLIED", "never_answer"]

AUTO_REPLIED = "auto-replied"
AUTO_GENERATED = "auto-generated"

_BULK = frozenset({"bulk", "junk", "list"})
_DAEMONS = ("mailer-daemon", "postmaster", "listserv", "majordomo", "noreply", "no-reply")


def _first_word(value: str) -> str:
    return value.strip().split(";")[0].split()[0].lower() if value.strip() else ""


def never_answer(msg: Message, *, envelope_sender: str, list_domain: str) -> str | None:
    """Why this message must not be answered or acted on, or None when it may be."""
    for value in header_values(msg, "Auto-Submitted"):
        if _first_word(value) not in ("", "no"):
            return f"Auto-Submitted: {value[:60]}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"):
        for value in header_values(msg, name):
            if _first_word(value) not in ("", "no", "false", "none"):
                return f"{name}: {value[:60]}"
    for value in header_values(msg, "Precedence"):
        if _first_word(value) in _BULK:
            return f"Precedence: {value[:60]}"
    if header_values(msg, "List-Id"):
        return "sent by a mailing list (List-Id)"
    try:
        content_type = msg.get_content_type()
    except Exception:
        content_type = "text/plain"
    if content_type in ("multipart/report", "message/delivery-status"):
        return f"a delivery or read report ({content_type})"
    sender = envelope_sender.strip().strip("<>").strip().lower()
    if not sender:
        return "null envelope sender <>"
    if sender.partition("@")[0] in _DAEMONS:
        return f"sent by a daemon ({sender})"
    if domain_of(sender) == list_domain.lower():
        return f"sent from the list domain ({sender}): a loop"
    return None
