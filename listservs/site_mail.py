"""Mail to the site's own addresses: ``citymail-owner@`` and ``citymail-bounces[+TOKEN]@``.

Every notice citymail writes (welcomes, confirmations, moderation) is From
``citymail-owner@DOMAIN`` with the envelope sender ``citymail-bounces@DOMAIN``, so people
reply to the first and mail servers report failures to the second.

* ``citymail-owner@`` is forwarded unchanged to the site administrators:
  ``CITYMAIL_SITE_OWNERS``, else the enabled admin accounts of the web. Automatic mail
  (auto-replies to notices, bulk, reports, the null sender: RFC 3834, ``never_answer``)
  is not forwarded, and a forward that comes back (its ``Delivered-To`` trace) is dropped,
  so nothing can loop between the site and an administrator's auto-responder. The forward
  goes out with ``citymail-bounces@`` as envelope sender, which never forwards.
* ``citymail-bounces@`` goes to bounce intake: the report is parsed and recorded in
  ``bounce_intake`` (a notice has no list subscription to score).

Planners read only and return an ``Outcome`` the inbound processor applies exactly once.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import Connection, select

from listservs.effects import Outcome, SendMail
from listservs.joins import Incoming
from listservs.rfc3834 import never_answer
from mailer.addresses import SITE, Target
from mailer.authorship import header_values
from mailer.bounce_events import BouncePlan
from mailer.bounces import parse_bounce
from mailer.models_web import WebUser
from mailer.settings import Settings

__all__ = ["SITE_BOUNCES", "plan_site_bounces", "plan_site_owner", "site_owners"]

log = logging.getLogger(__name__)

SITE_BOUNCES = f"{SITE}-bounces"


def site_owners(conn: Connection, settings: Settings) -> tuple[str, ...]:
    """CITYMAIL_SITE_OWNERS, else the addresses of the enabled web admin accounts."""
    if settings.site_owners:
        return settings.site_owners
    return tuple(conn.scalars(select(WebUser.email).where(
        WebUser.is_admin.is_(True), WebUser.disabled.is_(False)).order_by(WebUser.email)))


def plan_site_owner(conn: Connection, inc: Incoming, *, target: Target, settings: Settings,
                    now: dt.datetime) -> Outcome:
    """``citymail-owner@``: forward to the site administrators, never in a loop."""
    address = target.address(settings.list_domain)
    where = f"inbound {inc.inbound_id} to {address}"
    if any(v.strip().lower() == address for v in header_values(inc.msg, "Delivered-To")):
        return Outcome(f"{where} dropped: it looped back")
    why = never_answer(inc.msg, envelope_sender=inc.mail_from,
                       list_domain=settings.list_domain)
    if why is not None:
        return Outcome(f"{where} not forwarded (RFC 3834): {why}")
    owners = site_owners(conn, settings)
    if not owners:
        return Outcome(f"{where}: no site owner", error=f"{address}: nobody to forward to "
                       "(set CITYMAIL_SITE_OWNERS or add a web admin account)")
    eol = b"\r\n" if b"\r\n" in inc.raw[:2000] else b"\n"
    data = b"Delivered-To: " + address.encode() + eol + inc.raw
    return Outcome(f"{where} forwarded to {len(owners)} site owner(s)",
                   (SendMail(data, owners, bounce_local=SITE_BOUNCES),))


def plan_site_bounces(conn: Connection, inc: Incoming, *, target: Target,
                      settings: Settings, now: dt.datetime) -> Outcome:
    """``citymail-bounces[+TOKEN]@``: record what the report says in bounce intake."""
    report = parse_bounce(inc.raw)
    source = "verp" if target.token else "plain"
    if report.complaint or report.is_bounce:
        kind = "permanent" if report.permanent else "temporary"
        outcome = "complaint" if report.complaint else "unmatched"
        detail = (f"site notice {'complaint' if report.complaint else kind}: "
                  f"{', '.join(report.addresses[:20]) or 'no address found'}")
    else:
        outcome, detail = report.kind, f"{report.kind}, ignored"
    plan = BouncePlan(SITE, None, source, outcome, detail, inbound_id=inc.inbound_id)
    return Outcome(f"inbound {inc.inbound_id} to {SITE_BOUNCES}: {outcome} ({detail})",
                   (plan,))
