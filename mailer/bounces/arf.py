"""RFC 5965 abuse feedback reports (ARF): spam complaints from mailbox providers."""

from __future__ import annotations

from email.message import Message

from mailer.bounces import addresses, dsn, mime

FEEDBACK_TYPE = "message/feedback-report"
# Fields of the feedback report naming the complaining recipient, best first.
_RECIPIENT_FIELDS = ("original-rcpt-to", "removal-recipient")
# Headers of the reported message naming its recipient, best first.
_ORIGINAL_HEADERS = ("X-Original-To", "Delivered-To", "X-Apparently-To", "To")


def is_feedback_report(msg: Message) -> bool:
    """True for multipart/report; report-type=feedback-report or a feedback-report part."""
    if msg.get_content_type() == "multipart/report":
        report_type = str(msg.get_param("report-type", "") or "").strip('"').lower()
        if report_type == "feedback-report":
            return True
    return _feedback_part(msg) is not None


def complainers(msg: Message) -> list[str]:
    """Addresses of the recipients who complained, as far as the report reveals them."""
    part = _feedback_part(msg)
    if part is not None:
        found: list[str] = []
        for block in dsn.part_blocks(part):
            for name in _RECIPIENT_FIELDS:
                value = block.get(name)
                address = addresses.clean(value) if value else None
                if address and not _redacted(address):
                    found.append(address)
        if found:
            return addresses.unique(found)
    original = mime.read_notice(msg).original
    if original is None:
        return []
    for name in _ORIGINAL_HEADERS:
        found = [a for a in addresses.find_all(mime.header(original, name)) if not _redacted(a)]
        if found:
            return found
    return []


def feedback_type(msg: Message) -> str | None:
    """The Feedback-Type field (abuse, fraud, auth-failure...), when present."""
    part = _feedback_part(msg)
    if part is None:
        return None
    for block in dsn.part_blocks(part):
        if "feedback-type" in block:
            return block["feedback-type"].strip().lower()
    return None


def _feedback_part(msg: Message) -> Message | None:
    closed = mime.ORIGINAL_TYPES | {FEEDBACK_TYPE}
    for part in mime.parts(msg, closed=closed):
        if part.get_content_type() == FEEDBACK_TYPE:
            return part
    return None


def _redacted(address: str) -> bool:
    return address.partition("@")[0] in {"redacted", "xxxxx", "xxx"}
