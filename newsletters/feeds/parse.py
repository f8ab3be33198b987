"""Turn the bytes of an RSS, Atom or CDF feed into frozen values, never raising.

`parse_feed` runs feedparser on the bytes (wrapped in a stream, so feedparser never opens a
file or a URL itself), then builds a `ParsedFeed`:

- titles are plain text on one line (HTML titles lose their tags);
- `FeedItem.guid` is the entry id, else its link, else ``sha256:`` + a hash of title and summary;
- `FeedItem.published` is the entry's published (else updated, else created) date in UTC;
- `FeedItem.html` is the entry content (else summary) cleaned by `sanitise.sanitise_html`, with
  relative URLs joined to the content's xml:base, else the feed's link (the site the articles
  live on, which is right also for feeds served from a feed host), else the document URL;
- feed and item ``link`` elements are joined to the document URL (after xml:base; items fall
  back to the feed's link when the URL is unknown), and dropped unless http, https, mailto or
  tel, so a ``javascript:`` or ``urn:`` link never reaches a newsletter.

Broken input is reported in `ParsedFeed.error`, one line: an empty document, something that is
not a feed (HTML page, JSON, unknown XML, garbage), a feed so ill-formed that no item could be
read, or one declaring entities built from other entities (an expansion bomb; external entities
are never fetched either). A feed that is not well-formed (feedparser's "bozo") but still yields
items is parsed leniently: `error` stays None and `ParsedFeed.warning` says what was wrong.
`warning` is not part of the JSON contract (`to_json`); it is there for logs.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import time
import xml.sax
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

from newsletters.feeds.sanitise import (
    absolute_url,
    collapse_whitespace,
    html_to_text,
    sanitise_html,
    text_to_html,
)

__all__ = ["FeedItem", "ParsedFeed", "parse_feed", "to_json"]

logger = logging.getLogger(__name__)

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "html", "xhtml"})
_MAX_REASON = 200
_CHARSET = re.compile(r';\s*charset\s*=\s*"?([^\s;"]+)"?', re.IGNORECASE)


def _encoding_bozos() -> tuple[type[Exception], ...]:
    """Bozo reasons that say nothing about the document's structure."""
    import feedparser  # on first use: ~10 MB that a delivering worker never needs

    return (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One entry of a feed, ready for a newsletter."""

    guid: str
    title: str
    link: str | None
    published: datetime | None
    html: str


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A parsed feed: what could be read, and why it is broken when it is."""

    title: str
    link: str | None
    items: tuple[FeedItem, ...]
    error: str | None
    warning: str | None = None


def parse_feed(
    data: bytes, *, url: str | None = None, content_type: str | None = None
) -> ParsedFeed:
    """Parse feed bytes; problems are reported in the result, never raised.

    *url* is where the bytes came from (the final URL after redirects): relative links are
    resolved against it. *content_type* is the HTTP Content-Type header: its charset decides
    the decoding, except when the bytes are valid UTF-8 with non-ASCII text and the charset is
    a legacy one (a server default such as ISO-8859-1 in front of a UTF-8 feed: common, and
    valid UTF-8 is practically never anything else).
    """
    try:
        return _parse(data, url=url, content_type=content_type)
    except Exception as exc:  # the contract: nothing escapes, whatever the input
        logger.warning("feed parse failed url=%s: %r", url, exc, exc_info=True)
        return _broken(f"could not parse the feed: {_one_line(repr(exc))}")


def to_json(feed: ParsedFeed) -> dict[str, Any]:
    """Return *feed* in the shape of ``citymail feeds parse --json`` (DESIGN.md)."""
    return {
        "feed": {"title": feed.title, "link": feed.link},
        "items": [
            {
                "guid": item.guid,
                "title": item.title,
                "link": item.link,
                "published": item.published.isoformat() if item.published else None,
                "html": item.html,
            }
            for item in feed.items
        ],
        "error": feed.error,
    }


def _broken(error: str, *, title: str = "", link: str | None = None) -> ParsedFeed:
    return ParsedFeed(title=title, link=link, items=(), error=error)


def _parse(data: bytes, *, url: str | None, content_type: str | None) -> ParsedFeed:
    if not isinstance(data, bytes | bytearray | memoryview):
        return _broken(f"expected the feed as bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data.strip():
        return _broken("empty document")
    if _declares_nested_entities(data):
        return _broken("refused: the document declares entities that expand other entities")
    content_type = _believable_content_type(content_type, data)
    headers = {"content-type": content_type} if content_type else {}
    import feedparser

    raw = feedparser.parse(
        io.BytesIO(data),
        response_headers=headers,
        resolve_relative_uris=False,  # done by the sanitiser, with our choice of base
        sanitize_html=False,  # nh3 does it
    )
    meta = _get(raw, "feed") or {}
    title = _text(_get(meta, "title_detail"), _get(meta, "title"))
    link = absolute_url(_join(url, _get(meta, "link")), None)
    exc = _get(raw, "bozo_exception")
    reason = _bozo_reason(exc, data) if _get(raw, "bozo") else None
    only_encoding = isinstance(exc, _encoding_bozos())
    entries = _get(raw, "entries") or []

    if not entries:
        why = None if _get(raw, "version") else _not_a_feed(data, reason)
        if why:
            return _broken(why, title=title, link=link)
        if reason and not only_encoding:
            return _broken(f"broken feed, no items could be read: {reason}", title=title, link=link)

    items: list[FeedItem] = []
    failures = 0
    for entry in entries:
        try:
            items.append(_item(entry, url=url, feed_link=link))
        except Exception:  # one odd entry must not lose the others
            logger.warning("feed entry skipped url=%s", url, exc_info=True)
            failures += 1
    warnings = []
    if reason:
        warnings.append(reason if only_encoding else f"not well-formed, read leniently: {reason}")
    if failures:
        warnings.append(f"{failures} item(s) could not be read")
    return ParsedFeed(
        title=title,
        link=link,
        items=tuple(items),
        error=None,
        warning="; ".join(warnings) or None,
    )


def _believable_content_type(content_type: str | None, data: bytes) -> str | None:
    if not content_type or not (match := _CHARSET.search(content_type)):
        return content_type
    charset = match.group(1).lower()
    if charset.startswith(("utf", "ucs", "iso-10646")) or data.isascii():
        return content_type
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return content_type
    return _CHARSET.sub("", content_type)


def _item(entry: Any, *, url: str | None, feed_link: str | None) -> FeedItem:
    link = absolute_url(_join(url or feed_link, _get(entry, "link")), None)
    guid = collapse_whitespace(str(_get(entry, "id") or "")) or link or _hash_guid(entry)
    detail = _content(entry)
    return FeedItem(
        guid=guid,
        title=_text(_get(entry, "title_detail"), _get(entry, "title")),
        link=link,
        published=_published(entry),
        html=_html(detail, url=url, feed_link=feed_link) if detail else "",
    )


def _get(mapping: Any, key: str, default: Any = None) -> Any:
    """``mapping[key]`` without FeedParserDict's aliases (and their deprecation warnings)."""
    return dict.get(mapping, key, default) if isinstance(mapping, dict) else default


def _join(base: str | None, url: Any) -> str | None:
    if not isinstance(url, str) or not url.strip():
        return None
    if not base:
        return url.strip()
    try:
        return urljoin(base, url.strip())
    except ValueError:
        return None


def _text(detail: Any, value: Any) -> str:
    """Plain text of a title-like field (feedparser's *_detail says whether it is HTML)."""
    text = _get(detail, "value", value) if detail else value
    if not isinstance(text, str):
        return ""
    if detail and _get(detail, "type") in _HTML_TYPES:
        return html_to_text(text)
    return collapse_whitespace(text)


def _content(entry: Any) -> Any:
    """The richest body of *entry*: HTML content, else any content, else the summary."""
    contents = [c for c in _get(entry, "content") or [] if _get(c, "value")]
    for detail in contents:
        if _get(detail, "type") in _HTML_TYPES:
            return detail
    if contents:
        return contents[0]
    summary = _get(entry, "summary_detail")
    return summary if summary and _get(summary, "value") else None


def _html(detail: Any, *, url: str | None, feed_link: str | None) -> str:
    value = _get(detail, "value") or ""
    if _get(detail, "type") not in _HTML_TYPES:
        return text_to_html(value)
    xml_base = _get(detail, "base")
    base = _join(url or feed_link, xml_base) if xml_base else feed_link or url
    return sanitise_html(value, base=base)


def _published(entry: Any) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = _get(entry, key)
        if isinstance(parsed, time.struct_time | tuple) and len(parsed) >= 6:
            year, month, day, hour, minute, second = parsed[:6]
            try:
                return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
            except (TypeError, ValueError, OverflowError):
                continue
    return None


def _hash_guid(entry: Any) -> str:
    title = _get(entry, "title") or ""
    body = _get(entry, "summary") or ""
    if not body:
        body = next((_get(c, "value") or "" for c in _get(entry, "content") or []), "")
    digest = hashlib.sha256(f"{title}\n{body}".encode("utf-8", "replace")).hexdigest()
    return f"sha256:{digest}"


def _bozo_reason(exc: Any, data: bytes) -> str:
    if isinstance(exc, xml.sax.SAXParseException):
        line: int = exc.getLineNumber() or 1
        if not _has_xml_declaration(data):
            line -= 1  # feedparser put an XML declaration line in front before parsing
        return f"{exc.getMessage()} at line {max(line, 1)}, column {exc.getColumnNumber()}"
    if exc is None:
        return "not well-formed"
    return _one_line(str(exc) or type(exc).__name__)


def _declares_nested_entities(data: bytes) -> bool:
    """Whether a DOCTYPE declares entities built from other entities ("billion laughs").

    No feed needs them; expat caps the expansion, but only after megabytes of work.
    """
    if b"<!DOCTYPE" not in data[:65536]:
        return False
    values = (m.group(2) for m in _ENTITY_VALUE.finditer(data, 0, 1 << 20))
    return any(_REFERENCE.search(value) for value in values)


def _has_xml_declaration(data: bytes) -> bool:
    head = data[:40].lstrip(b"\xef\xbb\xbf\xfe\xff\x00")  # byte order marks
    return head.replace(b"\x00", b"").startswith(b"<?xml")  # NULs: UTF-16 and UTF-32


_ENTITY_VALUE = re.compile(rb"""<!ENTITY\s+(?:%\s+)?[\w.:-]+\s+(["'])(.*?)\1""", re.DOTALL)
_REFERENCE = re.compile(rb"[&%][A-Za-z_:]")
_ROOT = re.compile(rb"<([A-Za-z_][\w:.\-]*)")
_FEED_ROOTS = frozenset({"rss", "rdf", "feed", "channel"})  # <CHANNEL>: Microsoft CDF
_COMMENT = re.compile(rb"<!--.*?(?:-->|$)", re.DOTALL)


def _not_a_feed(data: bytes, reason: str | None) -> str | None:
    """Why *data* is no feed at all, or None when its root element is a feed's."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    root = _root_element(head)
    if root and root.rsplit(":", 1)[-1].lower() in _FEED_ROOTS:
        return None
    lowered = head.lower()
    if head[:1] in (b"{", b"["):
        what = "the document is JSON (JSON Feed is not supported)"
    elif b"<html" in lowered or b"<!doctype html" in lowered:
        what = "the document is an HTML page"
    elif head[:1] == b"<" and root:
        what = f"unknown root element <{root}>"
        if reason:
            what += f" ({reason})"
    else:
        what = f"not XML ({reason})" if reason else "not XML"
    return f"not an RSS or Atom feed: {what}"


def _root_element(head: bytes) -> str | None:
    match = _ROOT.search(_COMMENT.sub(b"", head))
    return _one_line(match.group(1).decode("ascii", "replace")) if match else None


def _one_line(text: str) -> str:
    text = collapse_whitespace(text)
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"
