"""The league's defaults (lists, newsletters, who joins what) from ``data/league.toml``."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select

from mailer.models import MailingList

__all__ = ["League", "load_league", "seed_lists"]

DEFAULT_FILE = Path(__file__).parent / "data" / "league.toml"


@dataclass(frozen=True)
class League:
    lists: tuple[dict[str, Any], ...]
    newsletters: tuple[dict[str, Any], ...]
    roles: dict[str, tuple[str, ...]]
    city_lists: dict[str, tuple[str, ...]]  # city attribute (coastal, rural) -> lists

    def lists_for(self, *, role: str | None, coastal: bool, rural: bool) -> list[str]:
        """Lists a new member joins for their role and city (newsletters not included)."""
        names: list[str] = []
        if role:
            names.extend(self.roles.get(" ".join(role.lower().split()), ()))
        if coastal:
            names.extend(self.city_lists.get("coastal", ()))
        if rural:
            names.extend(self.city_lists.get("rural", ()))
        return list(dict.fromkeys(names))

    @property
    def newsletter_names(self) -> list[str]:
        return [n["name"] for n in self.newsletters]


def load_league(path: Path = DEFAULT_FILE) -> League:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return League(
        lists=tuple(data.get("lists", ())),
        newsletters=tuple(data.get("newsletters", ())),
        roles={k.lower(): tuple(v) for k, v in data.get("roles", {}).items()},
        city_lists={k: tuple(v) for k, v in data.get("cities", {}).items()},
    )


def seed_lists(conn: Connection, league: League) -> int:
    """Insert the lists and newsletters that do not exist yet; returns how many were added."""
    existing = set(conn.scalars(select(MailingList.name)))
    rows = []
    for kind, entries in (("list", league.lists), ("newsletter", league.newsletters)):
        for entry in entries:
            if entry["name"] in existing:
                continue
            rows.append({
                "name": entry["name"],
                "kind": kind,
                "display_name": entry["display_name"],
                "short_name": entry.get("short_name", entry["display_name"]),
                "description": entry.get("description", ""),
                "announce_only": bool(entry.get("announce_only", False)),
                "private_archive": bool(entry.get("private", True)),
                "delivery": entry.get("delivery", "personalised"),
                "footer": entry.get("footer", ""),
                "config": {k: v for k, v in entry.items() if k == "cadence"},
            })
    if rows:
        conn.execute(insert(MailingList), rows)
    return len(rows)
