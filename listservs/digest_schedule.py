"""When a list's digest is due: its rules from the list's settings, and pure time maths.

A digest goes out at a local wall time (``07:00`` in America/Los_Angeles by default), daily
or weekly on a weekday, or early once the posts waiting reach a size or count threshold.
Schedules keep the zone and the wall time, so a 07:00 digest is 15:00 UTC in winter and
14:00 UTC in summer.  A wall time that does not exist that day (spring forward) is read
with ``fold=0``, i.e. with the offset from before the change: 02:30 becomes 03:30 PDT. A
time that happens twice (fall back) is its first occurrence (``fold=0`` again).

Volumes count years: the first digest of a new local year starts volume N+1 at issue 1.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailer.errors import InvalidInput

__all__ = ["FREQUENCIES", "WEEKDAYS", "DigestRules", "Waiting", "due_reason", "next_due",
           "next_number", "rules_from_config"]

FREQUENCIES = ("daily", "weekly")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class DigestRules:
    """One list's digest settings (the ``digest`` object of the list's JSON config)."""

    enabled: bool = True
    frequency: str = "daily"  # daily | weekly
    weekday: str = "monday"  # for weekly digests
    send_at: str = "07:00"  # local wall time
    zone: str = "America/Los_Angeles"
    size_kb: int = 30  # send early once the waiting posts reach this size; 0: never
    count: int = 50  # ... or this many posts; 0: never

    def __post_init__(self) -> None:
        if self.frequency not in FREQUENCIES:
            raise InvalidInput(f"digest frequency must be daily or weekly, got "
                               f"{self.frequency!r}")
        if self.weekday not in WEEKDAYS:
            raise InvalidInput(f"digest weekday must be one of {', '.join(WEEKDAYS)}, got "
                               f"{self.weekday!r}")
        self.wall_time()  # validates
        self.tz()
        for name in ("size_kb", "count"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidInput(f"digest {name} must be a whole number >= 0 (0: no "
                                   f"threshold), got {value!r}")

    def wall_time(self) -> dt.time:
        try:
            return dt.datetime.strptime(self.send_at.strip(), "%H:%M").time()
        except (ValueError, AttributeError):
            raise InvalidInput(f"digest send_at must be a local time like '07:00', got "
                               f"{self.send_at!r}") from None

    def tz(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.zone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise InvalidInput(f"unknown digest time zone {self.zone!r}; use an IANA name "
                               "such as America/Los_Angeles") from None


_FIELDS = {"enabled", "frequency", "weekday", "send_at", "zone", "size_kb", "count"}


def rules_from_config(config: Mapping[str, object], *, zone: str) -> DigestRules:
    """The rules stored under the list config's ``digest`` key, over the defaults.

    ``zone`` is the league's zone (``CITYMAIL_TIMEZONE``), used when the list names none.
    """
    stored = config.get("digest") or {}
    if not isinstance(stored, Mapping):
        raise InvalidInput("the list's digest settings must be a JSON object")
    unknown = set(stored) - _FIELDS
    if unknown:
        raise InvalidInput(f"unknown digest settings {', '.join(sorted(unknown))}; known: "
                           f"{', '.join(sorted(_FIELDS))}")
    values = {"zone": zone, **stored}
    if isinstance(values.get("weekday"), str):
        values["weekday"] = str(values["weekday"]).lower()
    return DigestRules(**values)  # type: ignore[arg-type]


def _slot(day: dt.date, rules: DigestRules) -> dt.datetime:
    local = dt.datetime.combine(day, rules.wall_time(), tzinfo=rules.tz()).replace(fold=0)
    return local.astimezone(dt.UTC)


def next_due(rules: DigestRules, after: dt.datetime) -> dt.datetime:
    """The first scheduled send instant (UTC) strictly after ``after`` (aware)."""
    if after.tzinfo is None:
        raise ValueError("next_due takes an aware datetime")
    day = after.astimezone(rules.tz()).date() - dt.timedelta(days=1)  # a slot may be "today"
    for _ in range(16):
        if rules.frequency == "daily" or day.weekday() == WEEKDAYS.index(rules.weekday):
            slot = _slot(day, rules)
            if slot > after:
                return slot
        day += dt.timedelta(days=1)
    raise AssertionError("unreachable: a week always holds a slot")


@dataclass(frozen=True)
class Waiting:
    """The posts waiting for a list's next digest."""

    count: int
    size: int  # bytes
    oldest: dt.datetime | None  # when the first of them arrived


def due_reason(rules: DigestRules, waiting: Waiting, now: dt.datetime) -> str | None:
    """Why a digest should go now ("count", "size", "schedule"), or None."""
    if not rules.enabled or waiting.count == 0 or waiting.oldest is None:
        return None
    if rules.count and waiting.count >= rules.count:
        return "count"
    if rules.size_kb and waiting.size >= rules.size_kb * 1024:
        return "size"
    if next_due(rules, waiting.oldest) <= now:
        return "schedule"
    return None


def next_number(volume: int, issue: int, last_sent: dt.datetime | None, now: dt.datetime,
                zone: ZoneInfo) -> tuple[int, int]:
    """The (volume, issue) of the next digest: a new local year starts a new volume."""
    if last_sent is None or volume == 0:
        return 1, 1
    if now.astimezone(zone).year > last_sent.astimezone(zone).year:
        return volume + 1, 1
    return volume, issue + 1
