"""A list's other settings on its admin page: the ``lists set`` keys and the digest.

* Every key of ``listservs.list_settings.SETTABLE`` (what ``citymail lists set`` accepts) is
  one field; a submitted value goes through that key's own parser, so the page and the CLI
  accept exactly the same values.  Only keys whose value changes are stored, where the
  table says (a ``lists`` column or a key of ``lists.config``).
* The digest form stores ``config["digest"]`` as ``citymail lists digest`` does: the
  changed options merged over what is stored, validated by ``DigestRules`` first.

A refused form raises :class:`FormRefused` (an ``InvalidInput``) with one message per
field; nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from listservs.digest_schedule import FREQUENCIES, WEEKDAYS, DigestRules, rules_from_config
from listservs.list_settings import SETTABLE, boolean, current_settings, store_settings
from listservs.lists import get_list
from mailer.db import writing
from mailer.errors import InvalidInput
from mailer.models import MailingList

__all__ = ["DIGEST_LABELS", "DigestField", "FormRefused", "SettingField", "digest_fields",
           "list_settings_of", "save_digest", "save_settings", "setting_fields"]


class FormRefused(InvalidInput):
    """Some fields of a form hold values the settings refuse; ``errors`` maps field to why."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)


# -- the ``lists set`` keys ------------------------------------------------------------------

@dataclass(frozen=True)
class SettingField:
    key: str
    help: str
    flag: bool  # a checkbox (the key's parser is ``boolean``); else a text box
    value: bool | str  # as the field shows it
    error: str = ""
    choices: tuple[str, ...] = ()  # a drop-down when the key takes one of a few words


def _as_typed(value: Any) -> bool | str:
    """A stored value as an admin would type it for ``lists set``."""
    if isinstance(value, bool):
        return value
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _typed(form: Mapping[str, str], key: str) -> str:
    # An unticked box is absent from the form: the browser's way of saying false.
    if SETTABLE[key].parse is boolean:
        return "true" if form.get(key) == "on" else "false"
    return str(form.get(key, ""))


def list_settings_of(conn: Connection, list_id: int) -> dict[str, Any]:
    """Every settable key's current value (what ``lists show NAME --json`` shows)."""
    row = conn.execute(select(MailingList.__table__)
                       .where(MailingList.id == list_id)).mappings().one()
    return current_settings(dict(row["config"] or {}), dict(row))


def setting_fields(current: Mapping[str, Any], *, form: Mapping[str, str] | None = None,
                   errors: Mapping[str, str] | None = None) -> list[SettingField]:
    """The form's fields: the current values, or what was typed when the form is re-shown."""
    out = []
    for key, setting in SETTABLE.items():
        flag = setting.parse is boolean
        value: bool | str = (_as_typed(current[key]) if form is None
                             else form.get(key) == "on" if flag else str(form.get(key, "")))
        out.append(SettingField(key, setting.help, flag, value, (errors or {}).get(key, ""),
                                tuple(getattr(setting.parse, "choices", ()))))
    return out


def read_settings_form(form: Mapping[str, str], current: Mapping[str, Any]) -> dict[str, Any]:
    """{key: parsed value} for the keys whose value the form changes; FormRefused if any
    value is refused by its parser."""
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, setting in SETTABLE.items():
        try:
            parsed = setting.parse(_typed(form, key))
        except ValueError as exc:
            errors[key] = f"{key} {exc}"  # the words ``lists set`` would print
            continue
        if parsed != current[key]:
            changes[key] = parsed
    if errors:
        raise FormRefused(errors)
    return changes


def save_settings(engine: Engine, name: str, form: Mapping[str, str]) -> dict[str, Any]:
    """Store what the form changes in one transaction; returns {key: stored value}."""
    with writing(engine) as conn:
        info = get_list(conn, name)
        changes = read_settings_form(form, list_settings_of(conn, info.id))
        store_settings(conn, info.id, changes)
    return changes


# -- the digest ------------------------------------------------------------------------------

# DigestRules field -> (label, kind, choices); the order is the page's.
DIGEST_LABELS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "enabled": ("Collect posts for digest readers", "flag", ()),
    "frequency": ("How often", "choice", FREQUENCIES),
    "weekday": ("Weekday (weekly digests)", "choice", WEEKDAYS),
    "send_at": ("Local send time (HH:MM)", "text", ()),
    "zone": ("Time zone (IANA name, such as America/Los_Angeles)", "text", ()),
    "size_kb": ("Send early at this many KB waiting (0: never)", "number", ()),
    "count": ("Send early at this many posts waiting (0: never)", "number", ()),
}


@dataclass(frozen=True)
class DigestField:
    name: str
    label: str
    kind: str  # "flag" | "choice" | "text" | "number"
    value: Any
    choices: tuple[str, ...] = ()
    error: str = ""


def digest_fields(rules: DigestRules, *, form: Mapping[str, str] | None = None,
                  errors: Mapping[str, str] | None = None) -> list[DigestField]:
    """The digest form's fields: the list's rules, or what was typed when re-shown."""
    out = []
    for name, (label, kind, choices) in DIGEST_LABELS.items():
        value = (getattr(rules, name) if form is None
                 else form.get(name) == "on" if kind == "flag" else form.get(name, ""))
        out.append(DigestField(name, label, kind, value, choices, (errors or {}).get(name, "")))
    return out


def _digest_value(form: Mapping[str, str], name: str) -> Any:
    """A typed value in the type ``citymail lists digest`` stores (int, bool or text)."""
    text = str(form.get(name, "")).strip()
    if DIGEST_LABELS[name][1] == "flag":
        return form.get(name) == "on"
    if DIGEST_LABELS[name][1] == "number":
        try:
            return int(text)
        except ValueError:
            return text  # DigestRules says what a whole number is
    return text.lower() if name == "weekday" else text


def read_digest_form(form: Mapping[str, str], rules: DigestRules) -> dict[str, Any]:
    """{option: value} for the digest options the form changes; FormRefused naming each
    field that ``DigestRules`` refuses."""
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in fields(DigestRules):
        value = _digest_value(form, f.name)
        try:
            replace(rules, **{f.name: value})  # the rule's own check, one field at a time
        except InvalidInput as exc:
            errors[f.name] = str(exc)
            continue
        if value != getattr(rules, f.name):
            changes[f.name] = value
    if errors:
        raise FormRefused(errors)
    return changes


def save_digest(engine: Engine, name: str, form: Mapping[str, str], *,
                zone: str) -> dict[str, Any]:
    """Store the changed digest options under ``config["digest"]``; returns the changes.

    ``zone`` is the league's (``CITYMAIL_TIMEZONE``), the zone of a list that names none.
    """
    with writing(engine) as conn:
        info = get_list(conn, name)
        changes = read_digest_form(form, rules_from_config(info.config, zone=zone))
        if changes:
            config = dict(info.config)
            config["digest"] = {**dict(config.get("digest") or {}), **changes}
            rules_from_config(config, zone=zone)  # the whole, as ``lists digest`` checks it
            conn.execute(update(MailingList).where(MailingList.id == info.id)
                         .values(config=config))
    return changes
