"""Per-list MIME content filtering (Mailman's content filter, byte-preserving).

``filter_content(raw, rules)`` is pure. In order, each step a pass over the MIME tree:

1. remove parts whose type is in ``filter_types`` (a full type or a main type such as
   ``video``), whose file name ends in one of ``filter_extensions``, or, when
   ``pass_types`` is set, whose type is not in it; a multipart left empty goes too;
2. ``collapse_alternatives``: a multipart/alternative becomes its first branch;
3. ``convert_html_to_plaintext``: text/html parts become text/plain (inscriptis).

Signed and encrypted parts are never looked into (that would break the signature), and
every byte not removed or converted is copied as received. What was removed is noted in
an ``X-Content-Filtered-By`` header. When nothing is left, ``Filtered.empty`` is True
and the list's ``filter_action`` (reject, hold or discard) decides the post's fate.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from email.header import decode_header, make_header
from typing import Any

from mailer import mime_edit
from mailer.html_alternative import html_to_text
from mailer.mimetree import Entity, parse_tree
from mailer.wire import CRLF, split_head, to_wire_form

__all__ = ["DEFAULT_FILTER_EXTENSIONS", "DEFAULT_FILTER_TYPES", "FILTER_ACTIONS",
           "ContentRules", "Filtered", "content_rules", "filter_content"]

log = logging.getLogger(__name__)

DEFAULT_FILTER_TYPES: tuple[str, ...] = (
    "application/x-msdownload", "application/x-msdos-program", "application/x-dosexec",
    "application/x-executable", "application/vnd.microsoft.portable-executable",
    "application/x-msi", "application/x-ms-installer", "application/java-archive",
    "application/x-java-archive", "application/javascript", "application/x-javascript",
    "text/javascript", "application/x-vbscript", "text/vbscript", "application/x-bat",
    "application/x-sh", "application/hta",
)
"""Executables and scripts by type. Text, images, PDF and office documents all pass."""
DEFAULT_FILTER_EXTENSIONS: tuple[str, ...] = (
    "exe", "bat", "cmd", "com", "js", "vbs", "scr", "jar", "msi")
"""By file name too: mail clients label most attachments application/octet-stream."""
FILTER_ACTIONS = ("reject", "hold", "discard")
_OPAQUE = frozenset({"multipart/signed", "multipart/encrypted"})
HEADER = "X-Content-Filtered-By"


@dataclass(frozen=True)
class ContentRules:
    """One list's content filter settings (``lists.config`` keys of the same names)."""

    filter_content: bool = True
    pass_types: tuple[str, ...] = ()  # empty: every type not filtered passes
    filter_types: tuple[str, ...] = DEFAULT_FILTER_TYPES
    filter_extensions: tuple[str, ...] = DEFAULT_FILTER_EXTENSIONS
    collapse_alternatives: bool = False
    convert_html_to_plaintext: bool = False
    filter_action: str = "hold"  # when nothing is left: reject | hold | discard

    def __post_init__(self) -> None:
        if self.filter_action not in FILTER_ACTIONS:
            raise ValueError(f"filter_action must be one of {', '.join(FILTER_ACTIONS)}; "
                             f"got {self.filter_action!r}")


def content_rules(config: Mapping[str, Any]) -> ContentRules:
    """The rules stored in a list's config over the defaults (unknown keys ignored)."""
    given = {f.name: config[f.name] for f in fields(ContentRules) if f.name in config}
    for name in ("pass_types", "filter_types", "filter_extensions"):
        if name in given:
            given[name] = tuple(str(v).strip().lower().lstrip(".") for v in given[name])
    return ContentRules(**given)


@dataclass(frozen=True)
class Filtered:
    """The post after filtering: ``raw`` is the input object itself when nothing changed."""

    raw: bytes
    removed: tuple[str, ...] = ()  # "name.exe (application/octet-stream)"
    changes: tuple[str, ...] = ()  # "alternatives collapsed", "HTML converted to text"
    empty: bool = False  # nothing may be sent: the list's filter_action applies
    why: str = ""  # for an empty result: the reason the post is not sent as it is

    @property
    def reason(self) -> str:
        what = ", ".join(self.removed) or "every part"
        return self.why or f"nothing left to send after removing {what}"

    @property
    def changed(self) -> bool:
        return bool(self.removed or self.changes)


def _file_name(part: Entity) -> str:
    name = part.header.get_filename() or part.header.get_param("name") or ""
    if not isinstance(name, str):  # an RFC 2231 tuple compat32 could not decode
        name = str(name[-1]) if name else ""
    try:
        return str(make_header(decode_header(name)))
    except Exception:  # a broken encoded word: judge the name as written
        return name


def _extension(name: str) -> str:
    return os.path.splitext(name.strip().strip('"'))[1].lstrip(".").lower()


def _drops(part: Entity, rules: ContentRules) -> bool:
    kind, main = part.content_type, part.maintype
    if kind in rules.filter_types or main in rules.filter_types:
        return True
    if (rules.pass_types and main != "multipart"
            and kind not in rules.pass_types and main not in rules.pass_types):
        return True
    return bool(rules.filter_extensions) and _extension(_file_name(part)) in \
        rules.filter_extensions


def _describe(part: Entity) -> str:
    name = _file_name(part)
    return f"{name} ({part.content_type})" if name else part.content_type


def _removals(data: bytes, part: Entity, rules: ContentRules,
              removed: list[str]) -> tuple[list[mime_edit.Splice], bool]:
    """Splices that remove what the rules drop below *part*; True if nothing is left."""
    if part.defect or part.content_type in _OPAQUE or not part.children:
        return [], False
    splices: list[mime_edit.Splice] = []
    gone = 0
    for index, child in enumerate(part.children):
        if _drops(child, rules):
            removed.append(_describe(child))
            splices.append(mime_edit.remove(data, part, index))
            gone += 1
            continue
        inner, empty = _removals(data, child, rules, removed)
        if empty:
            splices.append(mime_edit.remove(data, part, index))
            gone += 1
        else:
            splices += inner
    return splices, gone == len(part.children)


def _collapse(data: bytes, top: Entity, part: Entity) -> list[mime_edit.Splice]:
    if part.defect or part.content_type in _OPAQUE:
        return []
    if part.content_type == "multipart/alternative" and part.children:
        first = part.children[0]
        content = [f if f.endswith(CRLF) else f + CRLF for f in first.fields]
        body = data[first.body_start:first.end]
        if part is top:  # the body then runs to the end: its last line ends with CRLF
            content = [f for f in content if f.lower().startswith(b"content-")]
            body += CRLF
        return [mime_edit.replace(data, top, part, content, body)]
    return [s for child in part.children for s in _collapse(data, top, child)]


def _html_leaves(part: Entity) -> list[Entity]:
    if part.defect or part.content_type in _OPAQUE:
        return []
    if part.content_type == "text/html" and not part.is_attachment:
        return [part]
    return [leaf for child in part.children for leaf in _html_leaves(child)]


def _pass(data: bytes, step: Callable[[bytes, Entity], list[mime_edit.Splice]]) -> bytes:
    top = parse_tree(data)
    splices = step(data, top)
    return mime_edit.apply(data, top, splices) if splices else data


def _to_plain(data: bytes, top: Entity) -> list[mime_edit.Splice]:
    splices = []
    for leaf in _html_leaves(top):
        content, body = mime_edit.qp_text_part(html_to_text(mime_edit.decoded_text(data, leaf)))
        splices.append(mime_edit.replace(data, top, leaf, content, body))
    return splices


def _ascii(text: str) -> str:
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def _noted(data: bytes, removed: list[str], changes: list[str]) -> bytes:
    fields_, body_start = split_head(data)
    what = [f"removed {', '.join(_ascii(r) for r in removed)}"] if removed else []
    value = "citymail (" + "; ".join(what + changes) + ")"
    header = f"{HEADER}: {value[:900]}\r\n".encode("ascii")
    return b"".join(fields_) + header + CRLF + data[body_start:]


def filter_content(raw: bytes, rules: ContentRules) -> Filtered:
    """Apply *rules* to the post *raw*; never raises (a failure leaves the post as sent)."""
    if not rules.filter_content:
        return Filtered(raw)
    try:
        return _filter(raw, rules)
    except Exception:  # the content filter must never lose or crash on a post
        log.exception("content filter failed; post left as received")
        return Filtered(raw)


_NAMED = re.compile(rb'(?i)\bname\*?=\s*"?([^";\r\n]{1,200})')


def _hidden_in_damage(data: bytes, top: Entity, rules: ContentRules) -> str | None:
    """A filtered file name inside a multipart too damaged to split: it cannot be removed.

    Mail clients still find such attachments, so the post is not sent as it is.
    """
    if not _damaged(top) or not rules.filter_extensions:
        return None
    for match in _NAMED.finditer(data):
        name = match.group(1).decode("utf-8", "replace").strip()
        if _extension(name) in rules.filter_extensions:
            return name
    return None


def _damaged(part: Entity) -> bool:
    return bool(part.defect) or any(_damaged(c) for c in part.children
                                    if c.content_type not in _OPAQUE)


def _filter(raw: bytes, rules: ContentRules) -> Filtered:
    data = to_wire_form(raw)
    top = parse_tree(data)
    hidden = _hidden_in_damage(data, top, rules)
    if hidden is not None:
        return Filtered(raw, (hidden,), (), empty=True,
                        why=f"damaged MIME hides {_ascii(hidden)}, which cannot be removed "
                            "safely")
    removed: list[str] = []
    if not top.children and not top.defect and _drops(top, rules):
        return Filtered(raw, (_describe(top),), (), empty=True)
    splices, empty = _removals(data, top, rules, removed)
    if empty:
        return Filtered(raw, tuple(removed), (), empty=True)
    out = mime_edit.apply(data, top, splices) if splices else data
    changes: list[str] = []
    if rules.collapse_alternatives:
        collapsed = _pass(out, lambda d, t: _collapse(d, t, t))
        if collapsed != out:
            out = collapsed
            changes.append("alternatives collapsed to their first part")
    if rules.convert_html_to_plaintext:
        converted = _pass(out, _to_plain)
        if converted != out:
            out = converted
            changes.append("HTML converted to plain text")
    if not removed and not changes:
        return Filtered(raw)
    return Filtered(_noted(out, removed, changes), tuple(removed), tuple(changes))
