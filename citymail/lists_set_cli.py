"""``citymail lists set NAME KEY VALUE``: change one list setting, validated.

The keys and their parsers are the table ``listservs.list_settings.SETTABLE``; add a key
there (one line) and this verb, ``lists show NAME --json`` and the help list it.
"""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import select

from citymail.output import print_json
from listservs.list_settings import SETTABLE, current_settings, store_settings
from listservs.lists import get_list
from mailer.db import make_engine, reading, writing
from mailer.errors import InvalidInput
from mailer.models import MailingList
from mailer.settings import Settings

__all__ = ["add_lists_set_verb", "list_settings", "set_list_setting"]


def set_list_setting(settings: Settings, name: str, key: str, value: str) -> Any:
    """Store *value* (as typed) under *key* for list *name*; returns the stored value."""
    setting = SETTABLE.get(key)
    if setting is None:
        raise InvalidInput(f"unknown list setting {key!r}; settable: {', '.join(SETTABLE)}")
    try:
        parsed = setting.parse(value)
    except ValueError as exc:
        raise InvalidInput(f"{key} {exc}") from None
    engine = make_engine(settings)
    try:
        with writing(engine) as conn:
            info = get_list(conn, name)  # NotFound with a hint
            store_settings(conn, info.id, {key: parsed})
    finally:
        engine.dispose()
    return parsed


def list_settings(settings: Settings, name: str) -> dict[str, Any]:
    """Every settable key's current value for list *name* (for ``lists show NAME``)."""
    engine = make_engine(settings)
    try:
        with reading(engine) as conn:
            get_list(conn, name)
            row = conn.execute(select(MailingList.__table__)
                               .where(MailingList.name == name)).mappings().one()
    finally:
        engine.dispose()
    return current_settings(dict(row["config"] or {}), dict(row))


def cmd_lists_set(args: argparse.Namespace, settings: Settings) -> int:
    stored = set_list_setting(settings, args.name, args.key, args.value)
    if args.json:
        print_json({"list": args.name, "key": args.key, "value": stored})
    else:
        print(f"citymail: {args.name}: {args.key} = {stored!r}")
    return 0


def add_lists_set_verb(lists: Any) -> None:
    """Wire ``citymail lists set`` into ``lists`` (an argparse sub-parsers action)."""
    keys = "\n".join(f"  {k:<26} {s.help}" for k, s in SETTABLE.items())
    s = lists.add_parser("set", help="change a list setting",
                         description=f"Change one list setting. Keys:\n{keys}",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("name")
    s.add_argument("key", choices=list(SETTABLE), metavar="KEY",
                   type=lambda key: key.replace("-", "_"))  # list-id is list_id
    s.add_argument("value", help="true/false, a choice, or a comma-separated list")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_lists_set)
