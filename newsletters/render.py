"""Render an issue once: Jinja2 template, sanitised content, CSS inlined, text version.

Pure functions from data to strings (the templates are read from ``templates/``).  The
editor's blocks are Markdown (markdown-it-py), cleaned by nh3 like feed HTML; feed items
arrive sanitised and are cleaned again (a template must never trust stored HTML).  The
personal fields stay markers (``prepared.marker``) until each copy is made.

The text version is the editor's own, when written; otherwise inscriptis turns each
block and item into text, so the plain part reads as text, not as a flattened table.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import css_inline
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from newsletters.feeds.sanitise import sanitise_html
from newsletters.prepared import marker

if TYPE_CHECKING:
    from inscriptis.model.config import ParserConfig
    from markdown_it import MarkdownIt

__all__ = ["IssueContent", "ItemView", "NewsletterInfo", "Rendered", "archive_url",
           "issue_url", "markdown_html", "render_issue", "rss_url", "template_name"]

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
ORGANISATION = "League of California Cities · 1400 K Street, Suite 400 · Sacramento, CA 95814"
ITEM_TEXT_LIMIT = 600  # characters of an item's summary in the text version


@dataclass(frozen=True)
class NewsletterInfo:
    id: int
    name: str  # advocate
    display_name: str  # Cal Cities Advocate
    short_name: str
    description: str


@dataclass(frozen=True)
class ItemView:
    id: int
    title: str
    link: str | None
    html: str  # sanitised
    published: dt.datetime | None
    source: str = ""


@dataclass(frozen=True)
class IssueContent:
    """Everything an issue's rendering depends on."""

    issue_id: int
    newsletter: NewsletterInfo
    subject: str
    preheader: str
    blocks: tuple[str, ...]  # Markdown
    items: tuple[ItemView, ...]
    text_version: str | None
    date: dt.datetime  # the issue's date (send time, or now for a preview), aware


@dataclass(frozen=True)
class Rendered:
    html: str  # CSS inlined, personal fields as markers
    text: str


def issue_url(base_url: str, newsletter: str, issue_id: int) -> str:
    return f"{base_url}/newsletters/{newsletter}/issues/{issue_id}"


def archive_url(base_url: str, newsletter: str) -> str:
    return f"{base_url}/newsletters/{newsletter}/"


def rss_url(base_url: str, newsletter: str) -> str:
    return f"{base_url}/newsletters/{newsletter}/rss.xml"


@functools.cache
def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined,
                      autoescape=select_autoescape(["html"]), keep_trailing_newline=True)
    env.globals["personal"] = lambda name, fallback="": Markup(marker(name, fallback))
    return env


# inscriptis (lxml) and markdown-it are imported on first use: a worker that only
# delivers list posts never needs them (~11 MB of each process's memory).
@functools.cache
def _markdown() -> MarkdownIt:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True, "typographer": True}).enable(
        ["table", "strikethrough", "replacements", "smartquotes"])


@functools.cache
def _inliner() -> css_inline.CSSInliner:
    return css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


@functools.cache
def _text_config() -> ParserConfig:
    from inscriptis.model.config import ParserConfig

    return ParserConfig(display_links=True, display_images=False)


def markdown_html(source: str) -> str:
    """An editor's Markdown block as safe HTML (raw HTML in it is cleaned by nh3)."""
    return sanitise_html(_markdown().render(source))


def template_name(newsletter: str) -> str:
    """``newsletters/NAME.html`` when it exists, else the shared layout."""
    name = f"newsletters/{newsletter}.html"
    return name if (TEMPLATES / name).is_file() else "newsletters/_layout.html"


def _as_text(fragment: str) -> str:
    if not fragment:
        return ""
    from inscriptis import get_text

    return get_text(fragment, _text_config()).strip()


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip() + " …"


def render_issue(content: IssueContent, *, base_url: str, zone: str) -> Rendered:
    """The issue's HTML (CSS inlined) and text, with personal fields as markers."""
    env = _environment()
    local = content.date.astimezone(ZoneInfo(zone))
    blocks = [Markup(markdown_html(b)) for b in content.blocks if b.strip()]
    items = [{"title": i.title or (i.link or "Untitled"), "link": i.link,
              "html": Markup(sanitise_html(i.html)), "source": i.source,
              "date": _date(i.published, zone)} for i in content.items]
    context = {
        "newsletter": content.newsletter, "subject": content.subject,
        "preheader": content.preheader, "issue_date": f"{local:%B} {local.day}, {local.year}",
        "blocks": blocks, "items": items, "organisation": ORGANISATION,
        "web_url": issue_url(base_url, content.newsletter.name, content.issue_id),
        "archive_url": archive_url(base_url, content.newsletter.name),
        "unsubscribe_url": Markup(marker("unsubscribe_url")),
        "preferences_url": Markup(marker("preferences_url")),
    }
    html = env.get_template(template_name(content.newsletter.name)).render(**context)
    html = _inliner().inline(html)
    if content.text_version and content.text_version.strip():
        body = content.text_version.strip()
        text_items: list[dict[str, object]] = []
    else:
        body = "\n\n".join(_as_text(str(b)) for b in blocks)
        text_items = [{**item, "text": _shorten(_as_text(str(item["html"])), ITEM_TEXT_LIMIT)}
                      for item in items]
    text = env.get_template("newsletters/text.txt").render(
        **{**context, "body": body, "items": text_items,
           "show_items": not content.text_version})
    return Rendered(html=html, text=_tidy(text))


def _date(value: dt.datetime | None, zone: str) -> str:
    if value is None:
        return ""
    local = value.astimezone(ZoneInfo(zone))
    return f"{local:%B} {local.day}, {local.year}"


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip() + "\n"
