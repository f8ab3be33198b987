"""Make feed HTML safe to put in a newsletter, and make its links absolute.

Pure functions over strings: nh3 (ammonia) does the cleaning, the standard library joins URLs.

What survives `sanitise_html`: ordinary formatting (paragraphs, lists, emphasis, headings,
tables, quotes, code), links and images, with every `href`/`src`/`cite` made absolute against
the base given. What goes: `script`, `style`, `iframe`, `object`, forms and every other tag
outside nh3's allow-list (script and style with their content), `on*` handlers, `style`,
`class` and `id` attributes (the newsletter's own template decides the look), comments, and
any URL whose scheme is not http, https, mailto or tel (so `javascript:` and `data:` go).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

import nh3

__all__ = [
    "MAX_NESTING",
    "SAFE_URL_SCHEMES",
    "absolute_url",
    "collapse_whitespace",
    "html_to_text",
    "sanitise_html",
    "text_to_html",
]

SAFE_URL_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
"""Schemes allowed in links and images of sanitised HTML."""

MAX_NESTING = 400
"""Deepest element nesting that `sanitise_html` parses as HTML."""

_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)")
_TAG_OR_BLOCK = re.compile(r"(?is)<(script|style)\b.*?</\1\s*>|<!--.*?-->|<[^>]*>")
# Void elements and elements whose end tag may be left out do not deepen a document.
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "wbr"}
_OPTIONAL_END = {"p", "li", "dt", "dd", "tr", "td", "th", "thead", "tbody", "tfoot", "option"}
_UNCOUNTED = frozenset(_VOID | _OPTIONAL_END | {"param", "source", "track", "colgroup"})
_URL_ATTRIBUTES = frozenset({"href", "src", "cite", "longdesc"})
_WHITESPACE = re.compile(r"[ \t\n\r\f\v]+")  # ASCII only: keep no-break spaces


def absolute_url(url: str | None, base: str | None) -> str | None:
    """Join *url* to *base* and return it when its scheme is safe, else None.

    A relative *url* with no usable *base* stays relative (nothing better is known). Leading and
    trailing whitespace, common in hand-written feeds, is dropped first.
    """
    if url is None:
        return None
    url = url.strip()
    if not url:
        return None
    try:
        joined = urljoin(base, url) if base else url
        scheme = urlsplit(joined).scheme.lower()
    except ValueError:  # e.g. "http://[::1" (an unbalanced IPv6 bracket)
        return None
    if scheme and scheme not in SAFE_URL_SCHEMES:
        return None
    return joined


def _url_rewriter(base: str | None) -> Callable[[str, str, str], str | None]:
    def rewrite(tag: str, attribute: str, value: str) -> str | None:
        if attribute not in _URL_ATTRIBUTES:
            return value
        return absolute_url(value, base)

    return rewrite


def sanitise_html(fragment: str, *, base: str | None = None) -> str:
    """Return *fragment* cleaned by nh3, with relative URLs joined to *base*.

    Markup nested deeper than `MAX_NESTING` (no real article is; the HTML tree builder is
    quadratic on it) is not parsed at all: its text comes back escaped, without tags.
    """
    if not fragment:
        return ""
    if _too_deep(fragment):
        return text_to_html(_strip_tags(fragment))
    return nh3.clean(
        fragment,
        url_schemes=set(SAFE_URL_SCHEMES),
        attribute_filter=_url_rewriter(base),
    ).strip()


def html_to_text(fragment: str) -> str:
    """Return the text of an HTML fragment on one line (tags dropped, entities decoded)."""
    if not fragment:
        return ""
    if _too_deep(fragment):
        return collapse_whitespace(_strip_tags(fragment))
    return collapse_whitespace(html.unescape(nh3.clean(fragment, tags=set())))


def text_to_html(text: str) -> str:
    """Return plain *text* as HTML: escaped, with line breaks kept."""
    if not text or not text.strip():
        return ""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    return "".join("<p>" + html.escape(p).replace("\n", "<br>") + "</p>" for p in paragraphs)


def _too_deep(fragment: str) -> bool:
    """Whether elements nest deeper than `MAX_NESTING` (a cheap count, no tree built)."""
    if fragment.count("<") <= MAX_NESTING:
        return False
    depth = 0
    for match in _TAG.finditer(fragment):
        name = match.group(2).lower()
        if name in _UNCOUNTED:
            continue
        if match.group(1):
            depth = max(depth - 1, 0)
        else:
            depth += 1
            if depth > MAX_NESTING:
                return True
    return False


def _strip_tags(fragment: str) -> str:
    return re.sub(r"[ \t]+", " ", html.unescape(_TAG_OR_BLOCK.sub(" ", fragment)))


def collapse_whitespace(text: str) -> str:
    """Return *text* with each run of whitespace made one space, and stripped."""
    return _WHITESPACE.sub(" ", text).strip()
