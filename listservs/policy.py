"""Posting policy: an ordered table of pure rules, and the decision they add up to.

Read :data:`RULES` top to bottom. Each rule is ``(name, check)``; ``check(facts, cfg)``
returns a reason when the rule hits, else None. A hit's action is the :class:`ListPolicy`
field of the same name, except where the table fixes it (loop: discard; pre-approved:
accept). A *final* rule that hits stops the walk. The strongest action among the hits wins:
discard > reject > hold > accept.

Two guards sit on top of the table, in :func:`evaluate`:

* Backscatter: a rejection of a sender who did not pass authentication becomes a silent
  discard (its reasons kept), and ``notify_sender`` is True only for authenticated senders,
  never for machine-sent mail, loops, duplicates or a missing sender.
* A From header proves nothing: a named poster's shortcut needs an aligned pass, and a post
  to an announce-only or moderated list without one is held (rule ``unauthenticated``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Literal, NamedTuple, get_args

from listservs.facts import PostFacts

__all__ = [
    "ACTIONS",
    "ACTION_CHOICES",
    "BACKSCATTER_NOTE",
    "RULES",
    "Action",
    "Decision",
    "ListPolicy",
    "Rule",
    "evaluate",
    "policy_from_config",
]

Action = Literal["accept", "hold", "reject", "discard"]
ACTIONS: tuple[Action, ...] = get_args(Action)  # weakest first
_RANK: dict[str, int] = {a: i for i, a in enumerate(ACTIONS)}
_NOT_SENT: frozenset[Action] = frozenset({"hold", "discard"})
_NOT_ACCEPTED: frozenset[Action] = frozenset({"hold", "reject", "discard"})

# Rules whose action a list may set, and the actions each may take. "Never sent" rules may
# only hold or discard; machine-sent mail is never answered, so it is never rejected either.
ACTION_CHOICES: dict[str, frozenset[Action]] = {
    "no_sender": _NOT_SENT,
    "banned": _NOT_ACCEPTED,
    "duplicate": _NOT_SENT,
    "auto_submitted": _NOT_SENT,
    "emergency": _NOT_SENT,
    "not_named_poster": _NOT_ACCEPTED,
    "list_moderation": _NOT_ACCEPTED,
    "member_moderation": frozenset(ACTIONS),
    "non_member": frozenset(ACTIONS),
    "unauthenticated": _NOT_SENT,
    "max_size": frozenset(ACTIONS),
    "max_recipients": frozenset(ACTIONS),
    "implicit_destination": frozenset(ACTIONS),
    "suspicious_header": frozenset(ACTIONS),
}

# Hits after which the sender is never told anything (RFC 3834; nobody to tell; no echo).
_SILENT = frozenset({"loop", "no_sender", "duplicate", "auto_submitted"})
BACKSCATTER_NOTE = "sender not authenticated: the rejection becomes a silent discard"


@dataclass(frozen=True)
class ListPolicy:
    """One list's posting settings. Actions are "accept", "hold", "reject" or "discard"."""

    announce_only: bool = False  # only named posters may post (Legislative Alerts)
    moderated: bool = False  # every post goes to the moderators
    emergency_moderation: bool = False  # hold everything, named posters included
    require_authentication: bool = False  # hold unauthenticated posts on any list
    size_limit: int = 5 * 1024 * 1024  # bytes; 0: no limit
    recipient_limit: int = 10  # addresses in To and Cc; 0: no limit
    duplicate_window: timedelta = timedelta(days=7)  # for the caller's seen_message_id lookup
    acceptable_aliases: tuple[str, ...] = ()  # other list addresses; '^...' is a regex
    suspicious_headers: tuple[tuple[str, str], ...] = ()  # (header name, regex on its value)
    notify_on_hold: bool = True  # tell an authenticated sender the post awaits a moderator
    hold_days: int = 14  # held posts expire (with a notice to the poster) after this long
    no_sender: Action = "discard"
    banned: Action = "reject"
    duplicate: Action = "discard"
    auto_submitted: Action = "hold"
    emergency: Action = "hold"
    not_named_poster: Action = "reject"
    list_moderation: Action = "hold"
    member_moderation: Action = "hold"
    non_member: Action = "hold"
    unauthenticated: Action = "hold"
    max_size: Action = "hold"
    max_recipients: Action = "hold"
    implicit_destination: Action = "hold"
    suspicious_header: Action = "hold"

    def __post_init__(self) -> None:
        for rule, allowed in ACTION_CHOICES.items():
            value = getattr(self, rule)
            if value not in allowed:
                choices = ", ".join(a for a in ACTIONS if a in allowed)
                raise ValueError(f"ListPolicy.{rule} must be one of {choices}; got {value!r}")
        for name in ("size_limit", "recipient_limit"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"ListPolicy.{name} must be an integer >= 0 (0: no limit)")
        for pair in self.suspicious_headers:
            if len(pair) != 2:
                raise ValueError(
                    f"ListPolicy.suspicious_headers: want (header, regex), got {pair!r}"
                )
            _compile("suspicious_headers", pair[1])
        for alias in self.acceptable_aliases:
            if alias.startswith("^"):
                _compile("acceptable_aliases", alias)


def _compile(field: str, pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"ListPolicy.{field}: {pattern!r} is not a valid regex: {exc}") from None


@dataclass(frozen=True)
class Decision:
    """What to do with a post, why, and whether its sender may be told."""

    action: Action
    reasons: tuple[str, ...]
    notify_sender: bool
    rules: tuple[str, ...] = ()  # names of the rules that hit, in table order


Check = Callable[[PostFacts, ListPolicy], str | None]


class Rule(NamedTuple):
    name: str
    check: Check
    fixed: Action | None = None  # the action, when the list cannot choose it
    final: bool = False  # stop the walk when this rule hits


# ---- the checks, in table order ------------------------------------------------------------


def _loop(f: PostFacts, cfg: ListPolicy) -> str | None:
    return f"mail loop: it already carries {'; '.join(f.loop_markers)}" if f.loop_markers else None


def _no_sender(f: PostFacts, cfg: ListPolicy) -> str | None:
    return None if f.sender else "no sender address in From, Sender or the envelope"


def _banned(f: PostFacts, cfg: ListPolicy) -> str | None:
    return f"{f.sender} is banned from this list" if f.membership.banned else None


def _duplicate(f: PostFacts, cfg: ListPolicy) -> str | None:
    if not f.duplicate:
        return None
    window = _span(cfg.duplicate_window)
    return f"duplicate: Message-ID <{f.message_id}> already posted within {window}"


_UNITS = ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))


def _span(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    size, unit = next(u for u in _UNITS if seconds % u[0] == 0)
    count = seconds // size
    return f"{count} {unit}{'' if count == 1 else 's'}"


def _auto_submitted(f: PostFacts, cfg: ListPolicy) -> str | None:
    if not f.auto_markers:
        return None
    return f"sent automatically ({'; '.join(f.auto_markers)}): never distributed or answered"


def _emergency(f: PostFacts, cfg: ListPolicy) -> str | None:
    return "emergency moderation is on: every post is held" if cfg.emergency_moderation else None


def _how_authenticated(f: PostFacts) -> str:
    proofs = (
        ("DKIM", f.auth.dkim_aligned),
        ("SPF", f.auth.spf_aligned),
        ("DMARC", f.auth.dmarc == "pass"),
    )
    return "aligned " + "+".join(name for name, ok in proofs if ok)


def _pre_approved(f: PostFacts, cfg: ListPolicy) -> str | None:
    if not (f.membership.named_poster and f.authenticated):
        return None
    return f"named poster {f.sender}, {_how_authenticated(f)} pass: pre-approved"


def _not_named_poster(f: PostFacts, cfg: ListPolicy) -> str | None:
    if not cfg.announce_only or f.membership.named_poster:
        return None
    return f"announce-only list: {f.sender} is not a named poster"


def _list_moderation(f: PostFacts, cfg: ListPolicy) -> str | None:
    return "moderated list: every post needs a moderator" if cfg.moderated else None


def _member_moderation(f: PostFacts, cfg: ListPolicy) -> str | None:
    moderated = f.membership.is_member and f.membership.moderated
    return f"member {f.sender} is moderated" if moderated else None


def _non_member(f: PostFacts, cfg: ListPolicy) -> str | None:
    if f.membership.is_member or f.membership.named_poster:
        return None
    return f"{f.sender} is not a member of the list"


# Why a post needs an aligned pass at all: (applies?, what to say).
_AUTH_GUARDS: tuple[tuple[Callable[[PostFacts, ListPolicy], bool], str], ...] = (
    (lambda f, cfg: cfg.announce_only, "announce-only list"),
    (lambda f, cfg: cfg.moderated, "moderated list"),
    (lambda f, cfg: f.membership.named_poster, "named poster"),
    (lambda f, cfg: f.membership.moderated, "moderated member"),
    (lambda f, cfg: cfg.require_authentication, "the list requires authentication"),
)


def _unauthenticated(f: PostFacts, cfg: ListPolicy) -> str | None:
    if f.authenticated:
        return None
    why = [text for applies, text in _AUTH_GUARDS if applies(f, cfg)]
    if not why:
        return None
    author = f.auth.from_domain or (f.from_addresses[0] if f.from_addresses else "")
    about = f"for {author}" if author else "for the From address"
    problem = f" ({f.from_problem})" if f.from_problem else ""
    return (
        f"sender not authenticated ({', '.join(why)}): no aligned DKIM or SPF pass and "
        f"no DMARC pass {about}{problem}"
    )


def _max_size(f: PostFacts, cfg: ListPolicy) -> str | None:
    if not cfg.size_limit or f.size <= cfg.size_limit:
        return None
    return f"message is {f.size} bytes; the limit is {cfg.size_limit}"


def _max_recipients(f: PostFacts, cfg: ListPolicy) -> str | None:
    count = len(f.recipients)
    if not cfg.recipient_limit or count <= cfg.recipient_limit:
        return None
    return f"{count} recipients in To and Cc; the limit is {cfg.recipient_limit}"


def _names_the_list(address: str, f: PostFacts, cfg: ListPolicy) -> bool:
    for alias in (f.list_address, *cfg.acceptable_aliases):
        if alias.startswith("^"):
            if re.search(alias, address, re.IGNORECASE):
                return True
        elif address == alias.strip().lower():
            return True
    return False


def _implicit_destination(f: PostFacts, cfg: ListPolicy) -> str | None:
    if any(_names_the_list(a, f, cfg) for a in f.recipients):
        return None
    return f"implicit destination: {f.list_address} is not in To or Cc"


def _suspicious_header(f: PostFacts, cfg: ListPolicy) -> str | None:
    for name, pattern in cfg.suspicious_headers:
        for value in f.header(name):
            if re.search(pattern, value, re.IGNORECASE):
                return f"suspicious header {name}: {value[:80]!r} matches {pattern!r}"
    return None


RULES: tuple[Rule, ...] = (
    Rule("loop", _loop, fixed="discard", final=True),
    Rule("no_sender", _no_sender, final=True),
    Rule("banned", _banned),
    Rule("duplicate", _duplicate),
    Rule("auto_submitted", _auto_submitted),
    Rule("emergency", _emergency),
    Rule("pre_approved", _pre_approved, fixed="accept", final=True),
    Rule("not_named_poster", _not_named_poster),
    Rule("list_moderation", _list_moderation),
    Rule("member_moderation", _member_moderation),
    Rule("non_member", _non_member),
    Rule("unauthenticated", _unauthenticated),
    Rule("max_size", _max_size),
    Rule("max_recipients", _max_recipients),
    Rule("implicit_destination", _implicit_destination),
    Rule("suspicious_header", _suspicious_header),
)


class _Hit(NamedTuple):
    rule: str
    reason: str
    action: Action


def _hits(facts: PostFacts, cfg: ListPolicy) -> list[_Hit]:
    hits: list[_Hit] = []
    for rule in RULES:
        reason = rule.check(facts, cfg)
        if reason is None:
            continue
        hits.append(_Hit(rule.name, reason, rule.fixed or getattr(cfg, rule.name)))
        if rule.final:
            break
    return hits


def evaluate(facts: PostFacts, cfg: ListPolicy) -> Decision:
    """Walk the rules and decide; the strongest action wins (discard > reject > hold > accept)."""
    hits = _hits(facts, cfg)
    action: Action = max((h.action for h in hits), key=_RANK.__getitem__, default="accept")
    reasons = tuple(h.reason for h in hits)
    if action == "reject" and not facts.authenticated:
        action, reasons = "discard", (*reasons, BACKSCATTER_NOTE)
    tells = action == "reject" or (action == "hold" and cfg.notify_on_hold)
    silent = any(h.rule in _SILENT for h in hits)
    notify = facts.authenticated and tells and not silent
    return Decision(action, reasons, notify, tuple(h.rule for h in hits))


def policy_from_config(config: Mapping[str, object], **overrides: object) -> ListPolicy:
    """A ListPolicy from a list's stored settings (e.g. its JSON ``config``), validated.

    Unknown keys are refused with the known ones named; lists become tuples and a number
    for ``duplicate_window`` is seconds. Keys of *overrides* win over *config*.
    """
    known = {f.name for f in fields(ListPolicy)}
    merged = {**config, **overrides}
    unknown = sorted(set(merged) - known)
    if unknown:
        raise ValueError(
            f"unknown posting policy setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    values: dict[str, object] = {}
    for key, value in merged.items():
        if key == "duplicate_window" and isinstance(value, int | float):
            value = timedelta(seconds=value)
        elif key == "suspicious_headers" and isinstance(value, list | tuple):
            value = tuple(tuple(pair) for pair in value)
        elif isinstance(value, list):
            value = tuple(value)
        values[key] = value
    return ListPolicy(**values)  # type: ignore[arg-type]
