"""A post to a list: decide what happens to it and build the copy every subscriber gets.

``plan_post`` is pure: given the received bytes, the list and what the database says about
the sender, it returns a ``PostPlan``.  The caller stores the outcome in one transaction.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import Message
from email.utils import getaddresses
from urllib.parse import quote

from listservs.facts import Membership, facts_from_message, message_id_of, poster_address
from listservs.lists import ListInfo
from listservs.policy import ListPolicy, evaluate, policy_from_config
from listservs.post_content import PostLookups, build_copy, content_decision, prepare_content
from mailer.arc_seal import Sealer
from mailer.authresults import verdict_from_authres
from mailer.decorate import ListIdentity
from mailer.dkim_verify import DnsFunc, authenticate
from mailer.settings import Settings

__all__ = ["Membership", "PostPlan", "identity_for", "plan_post", "read_headers"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Headers:
    sender: str
    subject: str
    message_id: str | None
    in_reply_to: str | None


@dataclass(frozen=True)
class PostPlan:
    action: str  # accept | hold | reject | discard
    reasons: tuple[str, ...]
    headers: Headers
    message_id: str  # the original's, or the one added to the derived copy
    body: bytes | None  # decorated copy (accept only)
    notify_sender: bool = False  # only an authenticated sender hears of a hold or reject


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except Exception:  # malformed header: treat as absent rather than fail the post
        return ""
    return " ".join(str(value).split()) if value is not None else ""


def read_headers(raw: bytes, envelope_sender: str) -> Headers:
    """The few headers the list needs, never raising on malformed mail."""
    msg = message_from_bytes(raw, policy=policy.compat32)
    from_value = _header(msg, "From")
    addresses = [a for _, a in getaddresses([from_value]) if "@" in a]
    sender = (addresses[0] if addresses else envelope_sender).strip().lower()
    subject_raw = msg.get("Subject")
    subject = ""
    if subject_raw is not None:
        try:
            subject = str(policy.default.header_factory("subject", str(subject_raw)))
        except Exception:
            subject = str(subject_raw)
    message_id = _header(msg, "Message-ID") or None
    in_reply_to = _header(msg, "In-Reply-To") or None
    return Headers(sender, " ".join(subject.split()), message_id, in_reply_to)


def derived_message_id(raw: bytes, domain: str) -> str:
    """A Message-ID for mail that had none; the same bytes always get the same one."""
    return f"<{hashlib.sha256(raw).hexdigest()[:32]}@{domain}>"


def identity_for(info: ListInfo, settings: Settings) -> ListIdentity:
    base = settings.base_url
    footer = info.footer or (
        f"{info.display_name} mailing list: {info.address(settings)}\n"
        f"Your delivery options or leave this list: {base}/lists/{info.name}/preferences\n"
    )
    return ListIdentity(
        address=info.address(settings),
        display_name=info.display_name,
        short_name=info.short_name,
        list_id=info.list_id_value(settings),
        description=info.description,
        request_address=info.address(settings, "-request"),
        owner_address=info.address(settings, "-owner"),
        help_url=f"{base}/lists/{info.name}",
        subscribe_url=f"{base}/lists/{info.name}",
        unsubscribe_url=f"{base}/lists/{info.name}/preferences",
        announce_only=info.announce_only,
        archive_url=f"{base}/archives/{info.name}",
        footer_text=footer,
        reply_to=str(info.config.get("reply_to", "poster")),
        subject_prefix=str(info.config.get("subject_prefix", f"[{info.short_name}]")),
    )


def list_policy(info: ListInfo) -> ListPolicy:
    """The list's posting rules: its stored ``policy`` settings over the defaults."""
    return policy_from_config(dict(info.config.get("policy", {})),
                              announce_only=info.announce_only)


def needs_authentication(cfg: ListPolicy, membership: Membership) -> bool:
    """Whether the decision can depend on proof of the sender (else skip DNS work)."""
    return (cfg.announce_only or cfg.moderated or cfg.require_authentication
            or membership.named_poster or membership.moderated)


def plan_post(raw: bytes, *, info: ListInfo, settings: Settings, envelope_sender: str,
              lookup: Callable[[str | None], Membership],
              seen: Callable[[str | None], bool], now: datetime,
              dnsfunc: DnsFunc | None = None, lookups: PostLookups | None = None,
              sealer: Sealer | None = None) -> PostPlan:
    """Decide what happens to a post and, when accepted, build its decorated copy.

    ``lookup`` tells what the database knows about a sender address; ``seen`` whether a
    Message-ID was already posted to this list within the duplicate window; ``lookups``
    what DNS said (``listservs.post_content.look_up``), ``sealer`` ARC-seals the copy.
    """
    msg = message_from_bytes(raw, policy=policy.compat32)
    headers = read_headers(raw, envelope_sender)
    sender = poster_address(msg, envelope_sender=envelope_sender)
    membership = lookup(sender)
    cfg = list_policy(info)
    if needs_authentication(cfg, membership):
        auth = authenticate(raw, msg, trusted_authserv_ids=settings.trusted_authserv_ids,
                            dnsfunc=dnsfunc, verify_dkim=settings.verify_dkim)
    else:
        auth = verdict_from_authres(msg, trusted_ids=settings.trusted_authserv_ids)
    facts = facts_from_message(
        msg, envelope_sender=envelope_sender, list_address=info.address(settings),
        list_ids=frozenset({info.list_id_value(settings)}), membership=membership, auth=auth,
        size=len(raw), now=now, seen_message_id=seen(message_id_of(msg)))
    decision = evaluate(facts, cfg)
    message_id = headers.message_id or derived_message_id(raw, settings.list_domain)
    body = None
    content = prepare_content(raw, info.config) if decision.action == "accept" else None
    if content is not None and content.empty_action is not None:
        decision = content_decision(decision, content, authenticated=facts.authenticated)
    if content is not None and decision.action == "accept":
        archived_at = f"{settings.base_url}/archives/{info.name}/msg/{quote(message_id, safe='')}"
        body = build_copy(content.raw, identity_for(info, settings), config=info.config,
                          lookups=lookups or PostLookups(), sealer=sealer,
                          archived_at=archived_at,
                          message_id=None if headers.message_id else message_id,
                          personal=info.delivery == "personalised")
    return PostPlan(decision.action, decision.reasons, headers, message_id, body,
                    decision.notify_sender)
