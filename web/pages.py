"""Rendering: the Jinja2 environment for ``templates/web/`` and the few page shapes we use.

Autoescaping is always on; an undefined template variable is an error, not an empty
string.  Pages opened through a signed link are marked ``Cache-Control: no-store``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from markupsafe import Markup
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from web.auth import csrf_token

__all__ = ["TEMPLATES", "Pages", "read_form"]

TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "web"
NO_STORE = {"Cache-Control": "no-store"}


@pass_context
def csrf_field(context: Any) -> Markup:
    """The hidden form field that carries this session's CSRF token (see web.csrf)."""
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(
        csrf_token(context["request"]))


class Pages:
    """Renders ``templates/web/NAME.html`` with the context every page needs."""

    def __init__(self, *, site_name: str, directory: Path = TEMPLATES) -> None:
        env = Environment(loader=FileSystemLoader(str(directory)), autoescape=True,
                          undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        env.globals["csrf_field"] = csrf_field
        self.site_name = site_name
        self.templates = Jinja2Templates(env=env)

    def render(self, request: Request, name: str, *, title: str, status: int = 200,
               private: bool = False, headers: dict[str, str] | None = None,
               **context: Any) -> Response:
        """A page; ``private`` for pages whose URL holds a token (never cached)."""
        all_headers = {**(NO_STORE if private else {}), **(headers or {})}
        context.update(title=title, site_name=self.site_name,
                       root=request.scope.get("root_path", "").rstrip("/"))
        context.setdefault("principal", getattr(request.state, "principal", None))
        session = request.scope.get("citymail.session")
        context.setdefault("signed_in", bool(session and session.data
                                             and session.data.kind != "anon"))
        return self.templates.TemplateResponse(request, f"{name}.html", context,
                                               status_code=status, headers=all_headers)

    def message(self, request: Request, *, title: str, paragraphs: list[str],
                status: int = 200, show_manage: bool = False,
                headers: dict[str, str] | None = None) -> Response:
        return self.render(request, "message", title=title, status=status, headers=headers,
                           paragraphs=paragraphs, show_manage=show_manage)

    def too_many(self, request: Request, *, wait: float, title: str, first: str,
                 after: str = "") -> Response:
        """429 with Retry-After: ``first``, then when to try again (in minutes), ``after``."""
        minutes = max(1, math.ceil(wait / 60))
        return self.message(request, title=title, status=429,
                            headers={"Retry-After": str(math.ceil(wait)), **NO_STORE},
                            paragraphs=[first, f"Please try again in {minutes} minute"
                                               f"{'s' if minutes > 1 else ''}.{after}"])

    def invalid_link(self, request: Request, *, status: int = 400) -> Response:
        """A link that is forged, cut short, expired or no longer points at anyone."""
        return self.render(request, "invalid_link", title="This link is not valid",
                           status=status, private=True, email="", error="")


async def read_form(request: Request, *, max_fields: int) -> FormData:
    """A small form's fields, read within limits (no files, 4 KiB a field) and kept."""
    async with request.form(max_files=0, max_fields=max_fields, max_part_size=4096) as form:
        return FormData(form.multi_items())
