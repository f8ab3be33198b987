"""The bounce-parsing pipeline: from raw bytes to one BounceReport.

Order matters and is the whole policy: ARF complaint reports; RFC 3464 DSNs (and DSN fields
pasted into a notice); auto-replies written in a person's name; non-standard bounces, known by
sender, subject and wording; anything else is not a bounce.
"""

from __future__ import annotations

import logging
from email.message import Message

from mailer.bounces import addresses, arf, autoreply, classify, dsn, heuristics, mime
from mailer.bounces.report import BounceReport, Failure, from_failures

log = logging.getLogger(__name__)


def parse_bounce(raw: bytes) -> BounceReport:
    """Read an inbound message and say whether, for whom and how badly delivery failed.

    Never raises: broken MIME, unknown charsets and binary junk give ``kind="unknown"`` or
    ``kind="not_bounce"``.
    """
    try:
        msg = mime.load_message(raw)
        if msg is None or not mime.looks_like_mail(msg):
            return BounceReport(kind="unknown")
        return _parse(msg, raw, depth=0)
    except Exception:  # untrusted input at a process boundary: answer, don't crash
        log.warning("could not parse a %d-byte message as a bounce", len(raw), exc_info=True)
        return BounceReport(kind="unknown")


def _parse(msg: Message, raw: bytes, *, depth: int) -> BounceReport:
    """Parse ``msg`` (compat32), read from ``raw``; ``depth`` counts bounces of bounces."""
    if arf.is_feedback_report(msg):
        return BounceReport(
            kind="complaint",
            addresses=tuple(arf.complainers(msg)),
            complaint=True,
            diagnostic=arf.feedback_type(msg),
        )
    notice = mime.read_notice(msg)
    has_status, failures, delivered = dsn.parse_dsn(msg)
    if failures:
        return _with_context(from_failures("dsn", failures), notice.text)
    if has_status and delivered:
        return BounceReport(kind="not_bounce")  # a positive delivery report
    embedded = dsn.parse_embedded(notice.text)
    if embedded:
        return _with_context(from_failures("nonstandard", embedded), notice.text)
    return _nonstandard(msg, raw, notice, depth)


def _nonstandard(msg: Message, raw: bytes, notice: mime.Notice, depth: int) -> BounceReport:
    subject = mime.header(msg, "Subject")
    automatic = autoreply.autoreply_headers(msg) or autoreply.autoreply_wording(
        subject, notice.text
    )
    # Auto-responders write as a person; mail systems (whose bounces may also carry
    # Auto-Submitted: auto-replied) write as MAILER-DAEMON, postmaster and the like.
    if automatic and not heuristics.from_mail_system(msg):
        return BounceReport(kind="autoreply")
    if not heuristics.looks_like_bounce(msg, notice.text):
        return BounceReport(kind="autoreply" if automatic else "not_bounce")
    exclude = heuristics.excluded_addresses(msg, notice.original)
    # flufl.bounce's patterns can be quadratic on long lines: it reads a clipped copy.
    view = mime.load_message(mime.clip(raw)) if raw else None
    flufl_found, flufl_temporary = heuristics.recipients_from_flufl(view, exclude=exclude)
    own_found = heuristics.header_recipients(msg, exclude=exclude)
    own_found += heuristics.recipients_from_text(notice.text, exclude=exclude)
    recipients = addresses.unique(flufl_found + own_found)
    if not recipients:
        recipients = heuristics.fallback_recipients(notice.text, exclude=exclude)
    if not recipients:
        recipients = heuristics.returned_recipients(notice.original, exclude=exclude)
    wrapped = notice.original
    if not own_found and depth < 2 and wrapped and wrapped.get_content_type() == "multipart/report":
        # A gateway that wraps the real DSN and returns it as the "original" message.
        inner = _parse(wrapped, b"", depth=depth + 1)
        if inner.failures:
            return inner
    if recipients:
        found = heuristics.failures_for(recipients, notice.text, temporary=flufl_temporary)
        return from_failures("nonstandard", found)
    # A delivery failure that names nobody we can find: still say how final it is.
    verdict = heuristics.judge_notice(notice.text)
    return BounceReport(
        kind="nonstandard",
        permanent=verdict.permanent,
        policy=verdict.policy,
        diagnostic=verdict.diagnostic,
    )


def _with_context(report: BounceReport, notice_text: str) -> BounceReport:
    """Fill in diagnostics a DSN left out from the human-readable notice."""
    if report.diagnostic or not notice_text.strip():
        return report
    failures = []
    for failure in report.failures:
        if failure.diagnostic:
            failures.append(failure)
            continue
        judged = heuristics.failures_for([failure.address], notice_text)[0]
        status = classify.refine_status(failure.status, judged.diagnostic or "")
        if status and failure.permanent is not None and (status[0] == "5") != failure.permanent:
            status = failure.status
        failures.append(
            Failure(
                address=failure.address,
                permanent=failure.permanent,
                status=status,
                diagnostic=judged.diagnostic,
                policy=failure.policy or classify.is_policy(status, judged.diagnostic or ""),
            )
        )
    return from_failures(report.kind, failures)
