"""The issue editor's forms read into values: blocks, kept items in order, addresses."""

from __future__ import annotations

import pytest
from starlette.datastructures import FormData

from mailer.errors import InvalidInput
from web.editor import allowed, safe_link
from web.editor_forms import parse_addresses, parse_issue_form


def form(*pairs: tuple[str, str]) -> FormData:
    return FormData(list(pairs))


def test_kept_items_follow_the_positions_and_unticked_ones_are_dropped() -> None:
    values = parse_issue_form(form(
        ("subject", "Budget"), ("preheader", " Numbers "), ("block", "# One\r\n\r\nText"),
        ("block", "   "), ("block", "Two"), ("text_version", ""),
        ("item", "7"), ("pos-7", "3"), ("keep", "7"),
        ("item", "5"), ("pos-5", "1"), ("keep", "5"),
        ("item", "9"), ("pos-9", "2"),
        ("item", "4"), ("pos-4", ""), ("keep", "4")))
    assert values.blocks == ("# One\n\nText", "Two")  # empty blocks go, line ends are \n
    assert values.keep == (5, 7, 4)  # by position; a missing one keeps its row
    assert values.dropped == (9,)


@pytest.mark.parametrize(("pairs", "message"), [
    ((("item", "x"),), "must be item numbers"),
    ((("item", "1"), ("keep", "2")), "not among the items shown"),
    ((("item", "1"), ("pos-1", "first")), "position of item 1 must be a number"),
    ((("block", "x" * 50_001),), "block 1 is 50001 characters"),
])
def test_bad_forms_are_refused_with_the_reason(pairs: tuple[tuple[str, str], ...],
                                               message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_issue_form(form(*pairs))


def test_test_addresses_are_split_on_commas_and_spaces() -> None:
    assert parse_addresses("a@example.org, b@example.org;\nc@example.org") == [
        "a@example.org", "b@example.org", "c@example.org"]
    with pytest.raises(InvalidInput, match="at least one address"):
        parse_addresses("  ")


def test_only_http_links_are_shown_and_buttons_follow_the_state() -> None:
    assert safe_link("https://news.example/a") == "https://news.example/a"
    assert safe_link("javascript:alert(1)") is None
    assert safe_link(" JavaScript:alert(1)") is None
    assert safe_link("data:text/html,<script>") is None
    assert allowed("draft") >= {"edit", "schedule", "cancel"} and "pause" not in allowed("draft")
    assert allowed("sending") >= {"pause", "cancel"} and "edit" not in allowed("sending")
    assert allowed("sent") == set()
