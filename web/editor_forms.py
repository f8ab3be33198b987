"""What the issue editor's forms say, read into values (pure functions, no I/O).

The content form sends the subject, the preheader, one ``block`` textarea per Markdown
block (empty ones are dropped), the plain-text version, and for every candidate feed
item a hidden ``item`` (in the order the rows are shown), a ``keep`` checkbox and a
``pos-ID`` number.  Kept items go out sorted by position (ties keep the rows' order).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from mailer.errors import InvalidInput

__all__ = ["ACTIONS", "DONE", "MAX_BLOCK", "IssueForm", "parse_addresses", "parse_issue_form"]

MAX_BLOCK = 50_000  # characters of one Markdown block
MAX_BLOCKS = 40
MAX_ADDRESSES = 20  # a test send goes to a few named people, not to a list

# The simple moves: action -> what the confirmation says.
ACTIONS: dict[str, str] = {
    "unschedule": "unscheduled",
    "pause": "paused",
    "resume": "resumed",
    "cancel": "cancelled",
}
# ?done=KEY after a redirect -> the line shown (a fixed table: nothing from the URL is shown).
DONE: dict[str, str] = {
    "created": "Issue created. Write its blocks and choose its feed items.",
    "saved": "Saved.",
    "test": "A test copy is on its way to the addresses you named.",
    "scheduled": "Scheduled.",
    "unscheduled": "Unscheduled: the issue is a draft again.",
    "paused": "Paused: no more copies are handed out until you resume.",
    "resumed": "Resumed: the copies still waiting go out, each once.",
    "cancelled": "Cancelled: the copies not yet sent will not be sent.",
}


class Form(Protocol):
    def get(self, key: str, default: str | None = None) -> object: ...
    def getlist(self, key: str) -> list[object]: ...


@dataclass(frozen=True)
class IssueForm:
    subject: str
    preheader: str
    blocks: tuple[str, ...]
    text_version: str
    shown: tuple[int, ...]  # every candidate item on the page, in row order
    keep: tuple[int, ...]  # the kept ones, in the editor's order

    @property
    def dropped(self) -> tuple[int, ...]:
        kept = set(self.keep)
        return tuple(i for i in self.shown if i not in kept)


def _text(form: Form, key: str) -> str:
    value = form.get(key, "")
    return value.replace("\r\n", "\n") if isinstance(value, str) else ""


def _ids(values: Sequence[object], what: str) -> list[int]:
    out = []
    for value in values:
        if not isinstance(value, str) or not value.strip().isdigit():
            raise InvalidInput(f"{what} must be item numbers, got {value!r}")
        out.append(int(value))
    return out


def parse_issue_form(form: Form) -> IssueForm:
    """The content form as values, or InvalidInput saying what is wrong."""
    blocks = [b.replace("\r\n", "\n") for b in form.getlist("block") if isinstance(b, str)]
    blocks = [b for b in blocks if b.strip()]
    if len(blocks) > MAX_BLOCKS:
        raise InvalidInput(f"an issue holds at most {MAX_BLOCKS} blocks")
    for number, block in enumerate(blocks, 1):
        if len(block) > MAX_BLOCK:
            raise InvalidInput(f"block {number} is {len(block)} characters; "
                               f"keep each block under {MAX_BLOCK}")
    shown = _ids(form.getlist("item"), "items")
    kept = set(_ids(form.getlist("keep"), "kept items"))
    if kept - set(shown):
        raise InvalidInput("a kept item is not among the items shown; reload the page")
    positions = {}
    for row, item in enumerate(shown):
        raw = form.get(f"pos-{item}", "")
        raw = raw.strip() if isinstance(raw, str) else ""
        if raw and not re.fullmatch(r"-?\d{1,6}", raw):
            raise InvalidInput(f"the position of item {item} must be a number, got {raw!r}")
        positions[item] = (int(raw) if raw else row + 1, row)
    keep = tuple(sorted((i for i in shown if i in kept), key=positions.__getitem__))
    return IssueForm(subject=_text(form, "subject"), preheader=_text(form, "preheader"),
                     blocks=tuple(blocks), text_version=_text(form, "text_version"),
                     shown=tuple(shown), keep=keep)


def parse_addresses(text: str) -> list[str]:
    """Addresses separated by commas, semicolons, spaces or lines."""
    found = [a for a in re.split(r"[\s,;]+", text or "") if a]
    if not found:
        raise InvalidInput("name at least one address for the test copy")
    if len(found) > MAX_ADDRESSES:
        raise InvalidInput(f"a test copy goes to at most {MAX_ADDRESSES} addresses")
    return found
