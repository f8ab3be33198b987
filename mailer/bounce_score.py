"""Bounce scoring: a pure policy from one subscription's bounce events to what happens next.

The rule, with the defaults of ``BouncePolicy``:

* **What counts.** A permanent failure (5.x.x) is worth 1.0 point.  A temporary failure
  (4.x.x, a delay warning, or a notice whose permanence cannot be decided) is recorded and
  worth 0.0: the remote MTA keeps retrying and reports the final outcome, which counts then.
  Policy rejections (X.7.x, spam, DMARC, blocklists) are recorded and never count: they
  say something about us, not about the mailbox.  Complaints count 0.0 too: they end the
  subscription at once instead (see ``mailer.bounce_events``).
* **One hit per day.** Within one UTC calendar day only the event worth the most points
  counts (a member's mailbox rejecting three posts on one day is one hit, not three).
* **Decay.** The score halves for every 7 full days without a counting hit (Mailman's
  ``bounce_info_stale_after`` idea, made gentler: a chronic bouncer is not forgiven all at
  once).  Events older than 60 days are forgotten (by then their weight is below 1/256),
  and events from before the last re-enable never count again.
* **Disable.** At 5.0 points delivery to the subscription is disabled: five bouncing days
  in a row, or five within a week of each other, disable; a bounce once a week never does
  (1, 1.5, 1.75, ... stays under 2).
* **Warnings, then removal.** Warning 1 goes out at once (with a re-enable link), warnings
  2 and 3 seven days after the one before, and the subscription is removed seven days after
  the last warning: day 0, 7, 14, removal on day 21.  Overdue steps (a clock that was down)
  are taken one at a time, each a full interval after the previous one.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from mailer.bounces import classify

__all__ = [
    "DEFAULT_POLICY", "KINDS", "BouncePolicy", "Explained", "Hit", "Step", "days_to_disable",
    "explain", "kind_of", "next_halving", "next_step", "removal_due", "score",
    "smtp_failure",
]

Kind = Literal["permanent", "temporary", "policy", "complaint"]
KINDS: tuple[Kind, ...] = ("permanent", "temporary", "policy", "complaint")
_EPSILON = 1e-9


@dataclass(frozen=True)
class BouncePolicy:
    """The numbers of the scoring rule (see the module docstring)."""

    threshold: float = 5.0
    permanent_points: float = 1.0
    temporary_points: float = 0.0
    halve_after_days: int = 7
    forget_after_days: int = 60
    warnings: int = 3
    warning_interval_days: int = 7
    reenable_link_days: int = 60  # a re-enable link works this long after the disable
    verp_max_age_days: int = 30  # a VERP bounce for an older delivery is ignored

    def points(self, kind: str) -> float:
        """Points one event of ``kind`` is worth (policy and complaints: never any)."""
        if kind == "permanent":
            return self.permanent_points
        if kind == "temporary":
            return self.temporary_points
        return 0.0

    @property
    def interval(self) -> dt.timedelta:
        return dt.timedelta(days=self.warning_interval_days)

    @property
    def forget_after(self) -> dt.timedelta:
        return dt.timedelta(days=self.forget_after_days)

    def reached(self, value: float) -> bool:
        return value >= self.threshold - _EPSILON


DEFAULT_POLICY = BouncePolicy()


@dataclass(frozen=True)
class Hit:
    """One recorded bounce event, as far as scoring cares."""

    at: dt.datetime  # aware
    kind: str


@dataclass(frozen=True)
class Explained:
    """What one event added to the score, and why."""

    points: float
    why: str


def kind_of(*, permanent: bool | None, policy: bool) -> Kind:
    """The event kind of a failure: policy wins; undecidable failures are temporary."""
    if policy:
        return "policy"
    return "permanent" if permanent is True else "temporary"


def _day(at: dt.datetime) -> dt.date:
    return at.astimezone(dt.UTC).date()


def _halvings(first: dt.date, second: dt.date, policy: BouncePolicy) -> int:
    return max(0, (second - first).days) // policy.halve_after_days


def _counted(hits: Sequence[Hit], *, now: dt.datetime, since: dt.datetime | None,
             policy: BouncePolicy) -> tuple[list[str], dict[dt.date, int]]:
    """Why each hit does not count ("" when it may), and the counting hit index per day."""
    horizon = now - policy.forget_after
    why: list[str] = []
    best: dict[dt.date, int] = {}
    for index, hit in enumerate(hits):
        points = policy.points(hit.kind)
        if since is not None and hit.at < since:
            why.append("before the last re-enable")
        elif hit.at < horizon:
            why.append(f"older than {policy.forget_after_days} days: forgotten")
        elif hit.kind == "policy":
            why.append("policy rejection: never counts")
        elif hit.kind == "complaint":
            why.append("complaint: unsubscribed instead")
        elif points <= 0:
            why.append(f"{hit.kind}: counts {points:g}")
        else:
            why.append("")
            day = _day(hit.at)
            known = best.get(day)
            if known is None or points > policy.points(hits[known].kind):
                best[day] = index
    return why, best


def explain(hits: Sequence[Hit], *, now: dt.datetime, since: dt.datetime | None = None,
            policy: BouncePolicy = DEFAULT_POLICY) -> list[Explained]:
    """Per hit (in the order given): the points it added when it happened, and why."""
    why, best = _counted(hits, now=now, since=since, policy=policy)
    counting = set(best.values())
    out = []
    for index, hit in enumerate(hits):
        if index in counting:
            out.append(Explained(policy.points(hit.kind), "counted"))
        elif why[index]:
            out.append(Explained(0.0, why[index]))
        else:
            out.append(Explained(0.0, "another bounce already counted that day"))
    return out


def _daily(hits: Sequence[Hit], *, now: dt.datetime, since: dt.datetime | None,
           policy: BouncePolicy) -> list[tuple[dt.date, float]]:
    _why, best = _counted(hits, now=now, since=since, policy=policy)
    return sorted((day, policy.points(hits[i].kind)) for day, i in best.items())


def score(hits: Sequence[Hit], *, now: dt.datetime, since: dt.datetime | None = None,
          policy: BouncePolicy = DEFAULT_POLICY) -> float:
    """The subscription's bounce score at ``now``."""
    total = 0.0
    previous: dt.date | None = None
    for day, points in _daily(hits, now=now, since=since, policy=policy):
        if previous is not None:
            total *= 0.5 ** _halvings(previous, day, policy)
        total += points
        previous = day
    if previous is not None:
        total *= 0.5 ** _halvings(previous, _day(now), policy)
    return total


def next_halving(hits: Sequence[Hit], *, now: dt.datetime, since: dt.datetime | None = None,
                 policy: BouncePolicy = DEFAULT_POLICY) -> dt.datetime | None:
    """When the score next halves if nothing bounces (UTC midnight), or None at zero."""
    daily = _daily(hits, now=now, since=since, policy=policy)
    if not daily or score(hits, now=now, since=since, policy=policy) <= _EPSILON:
        return None
    last = daily[-1][0]
    step = policy.halve_after_days
    due = last + dt.timedelta(days=(_halvings(last, _day(now), policy) + 1) * step)
    return dt.datetime.combine(due, dt.time(), tzinfo=dt.UTC)


def days_to_disable(current: float, policy: BouncePolicy = DEFAULT_POLICY) -> int:
    """How many more days in a row with a permanent bounce disable delivery."""
    missing = policy.threshold - current
    if missing <= _EPSILON:
        return 0
    return math.ceil(missing / policy.permanent_points - _EPSILON)


@dataclass(frozen=True)
class Step:
    """The next thing to do for a disabled subscription."""

    action: Literal["warn", "remove"]
    due_at: dt.datetime
    number: int = 0  # the warning's number, 1-based (0 for removal)


def next_step(*, disabled_at: dt.datetime, warnings_sent: int,
              last_warning_at: dt.datetime | None,
              policy: BouncePolicy = DEFAULT_POLICY) -> Step:
    """Warning 1 at the disable, each next one an interval after the last, then removal."""
    if warnings_sent < policy.warnings:
        due = disabled_at if warnings_sent == 0 or last_warning_at is None else (
            last_warning_at + policy.interval)
        return Step("warn", due, warnings_sent + 1)
    return Step("remove", (last_warning_at or disabled_at) + policy.interval)


def removal_due(*, disabled_at: dt.datetime, warnings_sent: int,
                last_warning_at: dt.datetime | None,
                policy: BouncePolicy = DEFAULT_POLICY) -> dt.datetime:
    """The earliest removal, if every remaining warning goes out on time."""
    if warnings_sent == 0 or last_warning_at is None:
        return disabled_at + policy.interval * max(policy.warnings, 1)
    remaining = max(0, policy.warnings - warnings_sent)
    return last_warning_at + policy.interval * (remaining + 1)


_REPLY = re.compile(r"^\s*(?:gave up after retries:\s*)?(\d{3})\b[\s-]*(.*)$", re.S | re.I)


def smtp_failure(last_error: str | None) -> tuple[Kind, str, str] | None:
    """(kind, status, diagnostic) of a delivery our relay failed, or None if not theirs.

    ``last_error`` is ``"CODE TEXT"`` or ``"gave up after retries: CODE TEXT"``, as
    ``mailer.delivery.record_results`` writes it.  Code 0 (a dead relay, an internal error)
    and anything that is not a 4xx/5xx reply is our trouble, not the recipient's: None.
    Giving up after days of 4xx replies is recorded as temporary (it never counts).
    """
    match = _REPLY.match(last_error or "")
    if match is None or match.group(1)[0] not in "45":
        return None
    code, text = match.group(1), match.group(2).strip()
    status = classify.refine_status(None, text) or code
    if status[0] != code[0]:
        status = code
    kind = kind_of(permanent=code[0] == "5",
                   policy=classify.is_policy(status if "." in status else None, text))
    return kind, status, (last_error or "")[:1000]
