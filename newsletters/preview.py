"""Previews: an issue exactly as a recipient gets it, filled for a sample subscriber.

The same ``render_issue`` and ``fill`` that make the real copies; only the person is a
sample.  ``citymail newsletters issue preview`` and the web editor both call this.
"""

from __future__ import annotations

from dataclasses import dataclass

from newsletters.prepared import fill
from newsletters.render import IssueContent, render_issue

__all__ = ["Preview", "preview", "sample_recipient"]


@dataclass(frozen=True)
class Preview:
    html: str
    text: str


def sample_recipient(base_url: str) -> dict[str, str]:
    """The made-up subscriber a preview is personalised for (links lead nowhere)."""
    return {"name": "Pat Example", "city": "Sacramento", "email": "pat@example.org",
            "unsubscribe_url": f"{base_url}/u/PREVIEW",
            "preferences_url": f"{base_url}/p/PREVIEW"}


def preview(content: IssueContent, *, base_url: str, zone: str) -> Preview:
    rendered = render_issue(content, base_url=base_url, zone=zone)
    sample = sample_recipient(base_url)
    return Preview(html=fill(rendered.html, sample, escape=True),
                   text=fill(rendered.text, sample, escape=False))
