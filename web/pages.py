"""Rendering: the Jinja2 environment for ``templates/web/`` and the few page shapes we use.

Autoescaping is always on; an undefined template variable is an error, not an empty
string.  Pages opened through a signed link are marked ``Cache-Control: no-store``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from web.auth import csrf_token

__all__ = ["TEMPLATES", "Pages"]

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

    def invalid_link(self, request: Request, *, status: int = 400) -> Response:
        """A link that is forged, cut short, expired or no longer points at anyone."""
        return self.render(request, "invalid_link", title="This link is not valid",
                           status=status, private=True, email="", error="")
