"""The copy of a post that members get: content filter, text alternative, DMARC, ARC.

Between the posting decision and the stored copy, in this order::

    filter_content   per-list MIME filter (listservs.mimefilter); nothing left → filter_action
    text alternative HTML-only posts get text/plain first (mailer.html_alternative)
    DMARC            author domain with p=reject|quarantine → the list's dmarc_mitigation:
                     munge_from (default) | wrap_message | none
    decorate         list headers, subject prefix, Reply-To, footer (byte-preserving)
    ARC seal         when the DKIM key is configured: the list vouches for what it saw

Everything needing DNS (the DMARC policy, the incoming ARC chain, DKIM results for the
seal) is gathered first by :func:`look_up`, which the caller runs outside any database
transaction; the rest is pure.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from email import message_from_bytes, policy
from email.parser import BytesHeaderParser
from typing import Any

from listservs.mimefilter import ContentRules, Filtered, content_rules, filter_content
from listservs.policy import BACKSCATTER_NOTE, Decision
from mailer.arc_seal import Sealer, results_to_seal
from mailer.authorship import author_addresses, domain_of
from mailer.decorate import ListIdentity, decorate
from mailer.dkim_verify import DnsFunc
from mailer.dmarc_policy import (
    DEFAULT_MITIGATION,
    DMARC_MITIGATIONS,
    MITIGATED,
    DmarcPolicies,
    dnspython_txt,
)
from mailer.dmarc_wrap import wrap_message
from mailer.html_alternative import add_text_alternative
from mailer.settings import Settings

__all__ = [
    "Content",
    "PostDns",
    "PostLookups",
    "approval_copy_inputs",
    "build_copy",
    "content_decision",
    "look_up",
    "mitigation_of",
    "prepare_content",
]

log = logging.getLogger(__name__)
_HEADERS = BytesHeaderParser(policy=policy.compat32)


@dataclass(frozen=True)
class PostLookups:
    """What the post path learns from DNS, fetched before any database transaction."""

    dmarc_policy: str | None = None  # the author domain's p= (or sp=); None: no policy
    arc_chain: str = "none"  # the ARC chain the post arrived with: pass | fail | none
    arc_results: tuple[str, ...] = ()  # resinfo strings for our ARC-Authentication-Results


def look_up(raw: bytes, *, dmarc: DmarcPolicies | None, sealer: Sealer | None,
            trusted_ids: Iterable[str], dnsfunc: DnsFunc | None = None,
            verify_dkim: bool = True) -> PostLookups:
    """The DNS facts about one post. Never raises: a failure means "no policy", "none"."""
    try:
        msg = _HEADERS.parsebytes(raw)  # the header block is all it needs
        found, _ = author_addresses(msg)
        domain = domain_of(found[0]) if len(found) == 1 else ""
        dmarc_policy = dmarc.policy_for(domain) if dmarc is not None and domain else None
        if sealer is None:
            return PostLookups(dmarc_policy)
        return PostLookups(dmarc_policy, sealer.chain_status(raw),
                           results_to_seal(raw, msg, trusted_ids=trusted_ids, dnsfunc=dnsfunc,
                                           verify=verify_dkim))
    except Exception:  # DNS and hostile mail at the edge: deliver without the extras
        log.exception("DNS look-ups for a post failed; no DMARC policy, no ARC results")
        return PostLookups()


@dataclass(frozen=True)
class PostDns:
    """The process's DNS collaborators for posts: injected in tests, real in production."""

    dmarc: DmarcPolicies | None
    sealer: Sealer | None = None
    trusted_ids: tuple[str, ...] = ()
    verify_dkim: bool = True  # CITYMAIL_VERIFY_DKIM: our own check for the seal's results

    @classmethod
    def from_settings(cls, settings: Settings, *, dmarc: DmarcPolicies | None = None,
                      sealer: Sealer | None = None) -> PostDns:
        """dnspython for DMARC; an ARC sealer when the DKIM key is configured."""
        if dmarc is None and settings.dns_resolver != "off":
            servers = [s.strip() for s in settings.dns_resolver.split(",") if s.strip()]
            dmarc = DmarcPolicies(dnspython_txt(nameservers=servers or None))
        if sealer is None and settings.dkim_key is not None:
            sealer = Sealer.from_settings(settings)
        return cls(dmarc, sealer, settings.trusted_authserv_ids, settings.verify_dkim)

    def look_up(self, raw: bytes) -> PostLookups:
        """DNS facts for one post (call outside any database transaction)."""
        return look_up(raw, dmarc=self.dmarc, sealer=self.sealer, trusted_ids=self.trusted_ids,
                       dnsfunc=self.sealer.dnsfunc if self.sealer is not None else None,
                       verify_dkim=self.verify_dkim)


@dataclass(frozen=True)
class Content:
    """The post after the content steps; ``empty_action`` set when nothing is left."""

    raw: bytes
    filtered: Filtered
    empty_action: str | None = None
    text_added: bool = False


def _rules(config: Mapping[str, Any]) -> ContentRules:
    try:
        return content_rules(config)
    except (TypeError, ValueError) as exc:  # a bad stored setting must not stop the list
        log.error("list content filter settings are invalid (%s); using the defaults", exc)
        return ContentRules()


def prepare_content(raw: bytes, config: Mapping[str, Any]) -> Content:
    """Filter the post's MIME parts and give an HTML-only post a text part. Pure."""
    rules = _rules(config)
    filtered = filter_content(raw, rules)
    if filtered.empty:
        return Content(raw, filtered, rules.filter_action)
    with_text = add_text_alternative(filtered.raw)
    return Content(with_text or filtered.raw, filtered, None, with_text is not None)


def content_decision(decision: Decision, content: Content, *, authenticated: bool) -> Decision:
    """The decision for an accepted post the content filter emptied (the list's filter_action).

    As for the posting rules, only an authenticated sender hears of it (no backscatter).
    """
    action = content.empty_action or decision.action
    reasons = (*decision.reasons, f"content filter: {content.filtered.reason}")
    if action == "reject" and not authenticated:
        action, reasons = "discard", (*reasons, BACKSCATTER_NOTE)
    notify = authenticated and action in ("reject", "hold")
    return replace(decision, action=action, reasons=reasons, notify_sender=notify,  # type: ignore[arg-type]
                   rules=(*decision.rules, "content_filter"))


def mitigation_of(config: Mapping[str, Any]) -> str:
    value = str(config.get("dmarc_mitigation", DEFAULT_MITIGATION))
    return value if value in DMARC_MITIGATIONS else DEFAULT_MITIGATION


def build_copy(raw: bytes, identity: ListIdentity, *, config: Mapping[str, Any],
               lookups: PostLookups, sealer: Sealer | None, archived_at: str,
               message_id: str | None, personal: bool) -> bytes:
    """The decorated (DMARC-mitigated, ARC-sealed) copy of an accepted post."""
    mitigation = mitigation_of(config)
    mitigate = mitigation != "none" and lookups.dmarc_policy in MITIGATED
    source = wrap_message(raw) if mitigate and mitigation == "wrap_message" else raw
    body = decorate(source, identity, archived_at=archived_at, message_id=message_id,
                    personal=personal, munge_from=mitigate)
    if sealer is not None:
        body = sealer.seal(body, results=lookups.arc_results or ("dkim=none",),
                           chain=lookups.arc_chain) + body
    return body



def approval_copy_inputs(raw: bytes, settings: Settings, *,
                         dmarc_policy: str | None) -> tuple[PostLookups, Sealer | None]:
    """Lookups and sealer for a held post a moderator approves (inside a transaction).

    No DNS: the DMARC policy is the one stored when the post arrived, and the seal records
    only what a trusted verifier reported (our own DKIM check would need DNS).
    """
    sealer = Sealer.from_settings(settings) if settings.dkim_key is not None else None
    if sealer is None:
        return PostLookups(dmarc_policy), None
    msg = message_from_bytes(raw, policy=policy.compat32)
    results = results_to_seal(raw, msg, trusted_ids=settings.trusted_authserv_ids,
                              verify=False)
    return PostLookups(dmarc_policy, "none", results), sealer
