"""The values bounce parsing hands to the rest of citymail."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["dsn", "nonstandard", "complaint", "autoreply", "not_bounce", "unknown"]
KINDS: tuple[Kind, ...] = ("dsn", "nonstandard", "complaint", "autoreply", "not_bounce", "unknown")


@dataclass(frozen=True, slots=True)
class Failure:
    """One recipient a bounce reports, with what is known about why."""

    address: str
    permanent: bool | None
    status: str | None = None
    diagnostic: str | None = None
    policy: bool = False


@dataclass(frozen=True, slots=True)
class BounceReport:
    """What an inbound message says about delivery to our members.

    ``permanent`` is True when at least one reported address failed permanently, False when
    every failure is temporary (delays, 4.x.x), and None for anything that is not a bounce or
    cannot be decided.  ``policy`` marks rejections caused by the sender side (X.7.x, spam,
    DMARC, blocklists): they must never count toward disabling a member.  ``failures`` holds
    the same information per address.
    """

    kind: Kind
    addresses: tuple[str, ...] = ()
    permanent: bool | None = None
    statuses: dict[str, str] = field(default_factory=dict, hash=False)  # keeps hash() working
    policy: bool = False
    complaint: bool = False
    diagnostic: str | None = None
    failures: tuple[Failure, ...] = ()

    @property
    def is_bounce(self) -> bool:
        """True for delivery failures (DSN or non-standard), whatever their permanence."""
        return self.kind in ("dsn", "nonstandard")


def from_failures(kind: Kind, failures: list[Failure]) -> BounceReport:
    """Build a report from per-address failures, merging duplicates in order found."""
    merged: dict[str, Failure] = {}
    for failure in failures:
        known = merged.get(failure.address)
        # A permanent verdict outranks a temporary one for the same address.
        if known is None or (failure.permanent and not known.permanent):
            merged[failure.address] = failure
    items = tuple(merged.values())
    verdicts = [f.permanent for f in items]
    permanent: bool | None
    if any(v is True for v in verdicts):
        permanent = True
    elif verdicts and all(v is False for v in verdicts):
        permanent = False
    else:
        permanent = None
    diagnostic = next((f.diagnostic for f in items if f.diagnostic), None)
    return BounceReport(
        kind=kind,
        addresses=tuple(merged),
        permanent=permanent,
        statuses={f.address: f.status for f in items if f.status},
        policy=any(f.policy for f in items),
        diagnostic=diagnostic,
        failures=items,
    )
