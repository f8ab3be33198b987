"""The posting-policy form of a list: its fields, and the form read back into settings.

Pure functions.  A list keeps its policy as ``config["policy"]`` (only what differs from
``ListPolicy``'s defaults is stored) and ``announce_only`` as a column; both are read by
``listservs.posting.list_policy``.  The result is validated with ``policy_from_config``
before anything is saved, so the page can only store what posting accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from listservs.policy import ACTION_CHOICES, ACTIONS, ListPolicy, policy_from_config
from mailer.errors import InvalidInput

__all__ = ["FLAGS", "NUMBERS", "PolicyField", "policy_fields", "read_policy_form"]

# (setting, label); the order is the page's.
FLAGS: tuple[tuple[str, str], ...] = (
    ("moderated", "Moderated: every post waits for a moderator"),
    ("emergency_moderation", "Emergency moderation: hold everything, named posters too"),
    ("require_authentication", "Hold posts whose sender cannot be verified (DKIM/SPF)"),
    ("notify_on_hold", "Tell a verified poster that their post waits for a moderator"),
)
NUMBERS: tuple[tuple[str, str, int, int], ...] = (  # setting, label, min, max
    ("size_limit", "Largest post in bytes (0: no limit)", 0, 1024**3),
    ("recipient_limit", "Most addresses in To and Cc (0: no limit)", 0, 10_000),
    ("hold_days", "Days a held post waits before it expires", 1, 365),
)
RULE_LABELS: dict[str, str] = {
    "no_sender": "No sender address", "banned": "Banned sender",
    "duplicate": "Duplicate Message-ID", "auto_submitted": "Sent by a machine",
    "emergency": "Emergency moderation", "not_named_poster": "Announce-only, not a named poster",
    "list_moderation": "Moderated list", "member_moderation": "Moderated member",
    "non_member": "Sender is not a member", "unauthenticated": "Sender not verified",
    "max_size": "Too large", "max_recipients": "Too many recipients",
    "implicit_destination": "List not in To or Cc", "suspicious_header": "Suspicious header",
}
DEFAULTS = ListPolicy()


@dataclass(frozen=True)
class PolicyField:
    name: str
    label: str
    kind: str  # "flag" | "number" | "action"
    value: Any
    choices: tuple[str, ...] = ()
    low: int = 0
    high: int = 0


def policy_fields(policy: ListPolicy, *, announce_only: bool) -> list[PolicyField]:
    """The form's fields, filled in from the list's current policy."""
    out = [PolicyField("announce_only", "Announce-only: only named posters may post", "flag",
                       announce_only)]
    out += [PolicyField(n, label, "flag", getattr(policy, n)) for n, label in FLAGS]
    out += [PolicyField(n, label, "number", getattr(policy, n), low=lo, high=hi)
            for n, label, lo, hi in NUMBERS]
    out += [PolicyField(rule, RULE_LABELS.get(rule, rule), "action", getattr(policy, rule),
                        tuple(a for a in ACTIONS if a in allowed))
            for rule, allowed in ACTION_CHOICES.items()]
    return out


def read_policy_form(form: Mapping[str, str], stored: Mapping[str, Any]
                     ) -> tuple[dict[str, Any], bool]:
    """(the new ``config["policy"]``, announce_only) from a submitted form.

    Settings the form does not show (aliases, suspicious headers, ...) are kept as stored.
    Raises InvalidInput naming the field when a value is out of range.
    """
    policy = {k: v for k, v in stored.items()}
    for name, _label in FLAGS:
        policy[name] = form.get(name) == "on"
    for name, label, lo, hi in NUMBERS:
        text = str(form.get(name, "")).strip()
        if not text.isdigit() or not lo <= int(text) <= hi:
            raise InvalidInput(f"{label}: enter a whole number from {lo} to {hi:,}")
        policy[name] = int(text)
    for rule, allowed in ACTION_CHOICES.items():
        value = str(form.get(rule, ""))
        if value not in allowed:
            raise InvalidInput(f"{RULE_LABELS.get(rule, rule)}: choose one of "
                               f"{', '.join(a for a in ACTIONS if a in allowed)}")
        policy[rule] = value
    defaults = {f.name: getattr(DEFAULTS, f.name) for f in fields(ListPolicy)}
    policy = {k: v for k, v in policy.items() if k not in defaults or v != defaults[k]}
    try:
        policy_from_config(policy)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(str(exc)) from None
    return policy, form.get("announce_only") == "on"
