"""Schedules in the league's local time, stored as UTC plus the zone and the wall time.

An editor says "2026-12-01 09:00"; that means 09:00 on the wall clocks of
``CITYMAIL_TIMEZONE`` (America/Los_Angeles) whatever the UTC offset is that day, so
the schedule keeps the zone name and the local wall time beside the UTC instant the
clock compares with.  Pure functions; nothing here reads a clock unless given one.

Times that do not exist (the hour skipped when clocks spring forward) are refused with
the fix in the message; times that happen twice (the hour repeated in autumn) mean the
first of the two, as people expect.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailer.errors import InvalidInput

__all__ = ["LOCAL_FORMATS", "Schedule", "local_schedule", "parse_local", "show_local"]

LOCAL_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True)
class Schedule:
    """When an issue goes: the UTC instant, and the wall time and zone it was given in."""

    send_at: dt.datetime  # aware, UTC
    zone: str
    local: str  # "2026-12-01T09:00"


def parse_local(text: str) -> dt.datetime:
    """Read ``YYYY-MM-DD HH:MM`` (a naive wall time), or raise InvalidInput."""
    value = text.strip()
    for fmt in LOCAL_FORMATS:
        try:
            return dt.datetime.strptime(value, fmt)
        except ValueError:
            continue
    raise InvalidInput(f"--at must be a local time like '2026-12-01 09:00', got {text!r}")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {name!r}; use an IANA name such as "
                           "America/Los_Angeles") from None


def local_schedule(wall: dt.datetime | str, zone: str) -> Schedule:
    """The schedule for a wall time in ``zone`` (first occurrence if it happens twice)."""
    naive = parse_local(wall) if isinstance(wall, str) else wall
    if naive.tzinfo is not None:
        raise ValueError("local_schedule takes a wall time without a zone")
    tz = _zone(zone)
    aware = naive.replace(tzinfo=tz, fold=0)
    utc = aware.astimezone(dt.UTC)
    if utc.astimezone(tz).replace(tzinfo=None) != naive:
        later = (naive + dt.timedelta(hours=1)).strftime("%H:%M")
        raise InvalidInput(f"{naive:%Y-%m-%d %H:%M} does not exist in {zone} (the clocks "
                           f"spring forward that night); choose {later} instead")
    return Schedule(send_at=utc, zone=zone, local=naive.strftime("%Y-%m-%dT%H:%M"))


def show_local(instant: dt.datetime | None, zone: str) -> str | None:
    """An instant as the league reads it: ``2026-12-01 09:00 PST``."""
    if instant is None:
        return None
    return instant.astimezone(_zone(zone)).strftime("%Y-%m-%d %H:%M %Z")
