"""``citymail lists set NAME KEY VALUE``: list settings, validated, shown by ``lists show``."""

from __future__ import annotations

import json

import pytest
from helpers import cli

from citymail import admin
from citymail.lists_set_cli import set_list_setting
from listservs import list_settings
from listservs.list_settings import Setting
from mailer.errors import InvalidInput, NotFound
from mailer.settings import Settings


def test_settings_are_set_and_shown(env: dict[str, str], settings: Settings) -> None:
    done = cli(env, "lists", "set", "city-clerks", "dmarc_mitigation", "wrap_message")
    assert done.stdout == "citymail: city-clerks: dmarc_mitigation = 'wrap_message'\n"
    set_list_setting(settings, "city-clerks", "filter_extensions", "exe, .ZIP")
    set_list_setting(settings, "city-clerks", "collapse_alternatives", "yes")

    shown = json.loads(cli(env, "lists", "show", "city-clerks", "--json").stdout)
    assert shown["settings"]["dmarc_mitigation"] == "wrap_message"
    assert shown["settings"]["filter_extensions"] == ["exe", "zip"]
    assert shown["settings"]["collapse_alternatives"] is True
    assert shown["settings"]["filter_action"] == "hold"  # untouched: the default
    (other,) = admin.lists_show(settings, "fire-chiefs")
    assert other["settings"]["dmarc_mitigation"] == "munge_from"


def test_bad_values_are_refused_in_one_line(env: dict[str, str], settings: Settings) -> None:
    bad = cli(env, "lists", "set", "city-clerks", "filter_action", "bounce", check=False)
    assert bad.returncode == 2
    assert bad.stderr == ("citymail: error: filter_action must be one of reject, hold, "
                          "discard, got 'bounce'\n")
    with pytest.raises(InvalidInput, match="filter_content must be true or false"):
        set_list_setting(settings, "city-clerks", "filter_content", "maybe")
    with pytest.raises(InvalidInput, match="pass_types must be comma-separated MIME types"):
        set_list_setting(settings, "city-clerks", "pass_types", "image, <script>")
    with pytest.raises(NotFound, match="no list named 'no-such-list'"):
        set_list_setting(settings, "no-such-list", "filter_content", "off")


def test_another_setting_is_one_line_in_the_table(settings: Settings,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    table = dict(list_settings.SETTABLE)
    table["list_id"] = Setting(str.strip, None, "List-Id kept from a migrated server",
                               column="list_id")
    monkeypatch.setattr(list_settings, "SETTABLE", table)
    monkeypatch.setattr("citymail.lists_set_cli.SETTABLE", table)
    set_list_setting(settings, "city-clerks", "list_id", " clerks.old.example.org ")
    (shown,) = admin.lists_show(settings, "city-clerks")
    assert shown["list_id"] == "clerks.old.example.org"
    assert shown["settings"]["list_id"] == "clerks.old.example.org"
    with pytest.raises(InvalidInput, match="unknown list setting 'colour'"):
        set_list_setting(settings, "city-clerks", "colour", "blue")
