"""The list settings an admin may change: one table, one line per key, each with its parser.

``citymail lists set NAME KEY VALUE`` and ``citymail lists show NAME --json`` both read
:data:`SETTABLE`. A setting lives either in the list's ``config`` JSON (the default) or
in a column of ``lists`` (``column=``). To add one, add a line::

    "list_id": Setting(parse=dot_atom, default=None, column="list_id", help="..."),

Parsers take the text typed on the command line and return the stored value, or raise
``ValueError`` with a message that says what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from listservs.mimefilter import FILTER_ACTIONS, ContentRules
from mailer.dmarc_policy import DEFAULT_MITIGATION, DMARC_MITIGATIONS

__all__ = ["SETTABLE", "Setting", "boolean", "choice", "current_settings", "store_settings",
           "word_list"]

Parser = Callable[[str], Any]


@dataclass(frozen=True)
class Setting:
    parse: Parser
    default: Any
    help: str
    column: str | None = None  # a column of ``lists``; None: a key of ``lists.config``


def boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"must be true or false, got {value!r}")


def choice(*allowed: str) -> Parser:
    def parse(value: str) -> str:
        if value.strip().lower() not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, got {value!r}")
        return value.strip().lower()

    parse.choices = allowed  # type: ignore[attr-defined]  # forms offer them as a list
    return parse


_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*(/[a-z0-9][a-z0-9!#$&^_.+-]*)?")
_EXT = re.compile(r"[a-z0-9][a-z0-9_+-]{0,15}")


def word_list(pattern: re.Pattern[str], what: str) -> Parser:
    """Comma-separated values, each matching *pattern* ('' clears the list)."""

    def parse(value: str) -> list[str]:
        items = [v.strip().lower().lstrip(".") for v in value.split(",") if v.strip()]
        bad = [v for v in items if not pattern.fullmatch(v)]
        if bad:
            raise ValueError(f"must be comma-separated {what}, got {', '.join(bad)!r}")
        return items

    return parse


_LIST_ID = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)+")


def dot_atom(value: str) -> str | None:
    """A List-Id kept from another server (RFC 2919, <> optional); "default" resets it."""
    cleaned = value.strip().strip("<>").strip()
    if cleaned.lower() in ("", "default"):
        return None
    if not _LIST_ID.fullmatch(cleaned) or len(cleaned) > 255:
        raise ValueError(f"must be a dot-atom such as clerks.lists.example.org, got {value!r}")
    return cleaned


_RULES = ContentRules()
SETTABLE: dict[str, Setting] = {
    "dmarc_mitigation": Setting(choice(*DMARC_MITIGATIONS), DEFAULT_MITIGATION,
                                "for authors whose domain has DMARC p=reject/quarantine"),
    "filter_content": Setting(boolean, _RULES.filter_content, "filter MIME parts"),
    "pass_types": Setting(word_list(_MIME, "MIME types such as image or application/pdf"),
                          list(_RULES.pass_types), "only these types pass (empty: all)"),
    "filter_types": Setting(word_list(_MIME, "MIME types such as video or application/zip"),
                            list(_RULES.filter_types), "types removed"),
    "filter_extensions": Setting(word_list(_EXT, "file extensions such as exe"),
                                 list(_RULES.filter_extensions), "file extensions removed"),
    "collapse_alternatives": Setting(boolean, _RULES.collapse_alternatives,
                                     "keep only the first part of multipart/alternative"),
    "convert_html_to_plaintext": Setting(boolean, _RULES.convert_html_to_plaintext,
                                         "turn HTML parts into plain text"),
    "filter_action": Setting(choice(*FILTER_ACTIONS), _RULES.filter_action,
                             "what happens when filtering leaves nothing"),
    # The list archive and moving in (web/list_archive.py, mailer/mailman_import.py).
    "list_id": Setting(dot_atom, None, "List-Id kept from the old server (default: reset)",
                       column="list_id"),
    "private_archive": Setting(boolean, True, "web archive for members and staff only "
                               "(false: anyone may read it)", column="private_archive"),
}


def current_settings(config: Mapping[str, Any], columns: Mapping[str, Any]) -> dict[str, Any]:
    """Every settable key's value for one list: stored, else the default."""
    out: dict[str, Any] = {}
    for key, setting in SETTABLE.items():
        if setting.column is not None:
            value = columns.get(setting.column)
            out[key] = setting.default if value is None else value
        else:
            out[key] = config.get(key, setting.default)
    return out


def store_settings(conn: Connection, list_id: int, changes: Mapping[str, Any]) -> None:
    """Write parsed values (key -> value) where :data:`SETTABLE` says each one lives."""
    from mailer.models import MailingList

    values: dict[str, Any] = {SETTABLE[k].column: v for k, v in changes.items()
                              if SETTABLE[k].column is not None}
    in_config = {k: v for k, v in changes.items() if SETTABLE[k].column is None}
    if in_config:
        config = dict(conn.scalar(select(MailingList.config)
                                  .where(MailingList.id == list_id)) or {})
        values["config"] = {**config, **in_config}
    if values:
        conn.execute(update(MailingList).where(MailingList.id == list_id).values(**values))
