"""Bounce parsing: what an inbound message says about delivery to our members.

``parse_bounce(raw)`` reads RFC 3464 DSNs, the common non-standard bounces (qmail, Exim,
Postfix, Sendmail, Exchange/Office 365, Domino, GroupWise, Yahoo, AOL, Gmail, Outlook.com,
SES, SendGrid...), ARF complaint reports and auto-replies, and returns a frozen
``BounceReport``.  Policy rejections (X.7.x, spam, DMARC, blocklists) are flagged with
``policy=True`` and must never count toward disabling a member.

Errors: this package defines no exceptions.  ``parse_bounce`` never raises (bad input gives
``kind="unknown"`` or ``"not_bounce"``); ``bounce_result_json`` lets the ``OSError`` of
reading its file through.

Modules: ``parse`` (pipeline), ``dsn``, ``heuristics`` (non-standard, with flufl.bounce),
``arf``, ``autoreply``, ``classify`` (codes, permanence, policy), ``mime`` (tolerant MIME
reading), ``addresses``, ``report`` (values), ``files`` (JSON contract), ``accuracy``
(corpus score script).
"""

from mailer.bounces.files import bounce_result_json
from mailer.bounces.parse import parse_bounce
from mailer.bounces.report import KINDS, BounceReport, Failure, Kind

__all__ = ["KINDS", "BounceReport", "Failure", "Kind", "bounce_result_json", "parse_bounce"]
