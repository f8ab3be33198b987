"""A post to a list: decide what happens to it and build the copy every subscriber gets.

``plan_post`` is pure: given the received bytes, the list and what the database says about
the sender, it returns a ``PostPlan``.  The caller stores the outcome in one transaction.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from email.utils import getaddresses
from urllib.parse import quote

from listservs.lists import ListInfo
from mailer.decorate import ListIdentity, decorate
from mailer.settings import Settings

__all__ = ["Membership", "PostPlan", "identity_for", "plan_post", "read_headers"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Membership:
    """What the database knows about the sender, for the posting rules."""

    is_member: bool
    named_poster: bool = False
    moderated: bool = False
    banned: bool = False


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


def decide(info: ListInfo, membership: Membership) -> tuple[str, tuple[str, ...]]:
    """Members post; everyone else is held for a moderator."""
    if membership.banned:
        return "discard", ("banned address",)
    if info.announce_only and not membership.named_poster:
        return "hold", ("announce-only list: sender is not a named poster",)
    if not membership.is_member and not membership.named_poster:
        return "hold", ("sender is not a member of the list",)
    if membership.moderated:
        return "hold", ("member is moderated",)
    return "accept", ()


def plan_post(raw: bytes, *, info: ListInfo, settings: Settings, envelope_sender: str,
              membership: Membership) -> PostPlan:
    headers = read_headers(raw, envelope_sender)
    action, reasons = decide(info, membership)
    message_id = headers.message_id or derived_message_id(raw, settings.list_domain)
    body = None
    if action == "accept":
        archived_at = f"{settings.base_url}/archives/{info.name}/msg/{quote(message_id, safe='')}"
        body = decorate(raw, identity_for(info, settings), archived_at=archived_at,
                        message_id=None if headers.message_id else message_id,
                        personal=info.delivery == "personalised")
    return PostPlan(action, reasons, headers, message_id, body)
