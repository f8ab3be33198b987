"""A list's web archive: ``/lists/NAME/archive/`` (who may read it: ``list_archive_access``).

Routes:
    GET /lists/{name}/archive/                      months, and the search form
    GET /lists/{name}/archive/{YYYY-MM}/            a month by date
    GET /lists/{name}/archive/{YYYY-MM}/thread      a month by thread
    GET /lists/{name}/archive/{YYYY-MM}.mbox        the month as mboxrd (a download)
    GET /lists/{name}/archive/search?q=…            full-text search, best first
    GET /lists/{name}/archive/msg/{id}              one message, previous/next
    GET /lists/{name}/archive/msg/{id}/att/{n}      an attachment, always a download
    GET /archives/{name}[/]                         List-Archive: to the archive
    GET /archives/{name}/msg/{Message-ID}           Archived-At (RFC 5064): to the message

The message page shows the text part escaped; a message with only HTML shows it sanitised
(nh3, no images, so no remote image reports the reader). Attachments are never rendered
by the browser: ``Content-Disposition: attachment``, ``nosniff``, and HTML or SVG sent as
``application/octet-stream``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

from markupsafe import Markup, escape
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from listservs import archive_query as q
from listservs.archive_mbox import mbox_message
from listservs.archive_query import ArchiveList
from listservs.archive_search import MARK_END, MARK_START, search
from listservs.archive_text import attachment, message_view
from listservs.archive_thread import ThreadItem, flatten, thread
from mailer.db import reading
from mailer.errors import InvalidInput
from mailer.settings import Settings
from web.list_archive_access import Denied, check_access
from web.pages import Pages

__all__ = ["archive_path", "list_archive_routes", "message_path"]

T = TypeVar("T")
MAX_QUERY = 200
PRIVATE = {"Cache-Control": "private, no-store"}


def archive_path(name: str) -> str:
    return f"/lists/{quote(name)}/archive/"


def message_path(name: str, post_id: int) -> str:
    return f"{archive_path(name)}msg/{post_id}"


def snippet_html(text: str) -> Markup:
    """A search snippet escaped, with its match marks as <mark>."""
    safe = str(escape(text))
    return Markup(safe.replace(MARK_START, "<mark>").replace(MARK_END, "</mark>"))


def list_archive_routes(settings: Settings, engine: Engine, pages: Pages) -> list[Route]:
    zone = settings.zone

    def read(fn: Callable[..., T], *args: Any) -> T:
        with reading(engine) as conn:
            return fn(conn, *args)

    async def db(fn: Callable[..., T], *args: Any) -> T:
        return await run_in_threadpool(read, fn, *args)

    def headers(lst: ArchiveList) -> dict[str, str]:
        return PRIVATE if lst.private else {}

    def guarded(handler: Callable[..., Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                lst = await check_access(request, engine, request.path_params["name"])
            except Denied as denied:
                return denied.response
            return await handler(request, lst)

        return endpoint

    def month_param(request: Request) -> str:
        month = request.path_params["month"]
        try:
            q.month_bounds(month, zone)
        except InvalidInput:
            raise HTTPException(404) from None
        return month

    async def index(request: Request, lst: ArchiveList) -> Response:
        months = await db(q.months, lst.id, zone)
        return pages.render(request, "archive_index", title=f"{lst.display_name} archive",
                            headers=headers(lst), lst=lst, months=months,
                            base=archive_path(lst.name), query="")

    async def by_date(request: Request, lst: ArchiveList) -> Response:
        month = month_param(request)
        posts = await db(q.month_posts, lst.id, month, zone)
        rows = [(0, p) for p in posts]
        return _month_page(request, lst, month, rows, view="date")

    async def by_thread(request: Request, lst: ArchiveList) -> Response:
        month = month_param(request)
        posts = await db(q.month_posts, lst.id, month, zone)
        by_id = {p.id: p for p in posts}
        roots = thread(ThreadItem(p.id, p.message_id, p.refs, p.subject, p.sent_at)
                       for p in posts)
        rows = [(depth, by_id[item.key]) for depth, item in flatten(roots)]
        return _month_page(request, lst, month, rows, view="thread")

    def _month_page(request: Request, lst: ArchiveList, month: str, rows: list[Any], *,
                    view: str) -> Response:
        if not rows:
            raise HTTPException(404)
        return pages.render(request, "archive_month", title=f"{lst.display_name}: {month}",
                            headers=headers(lst), lst=lst, month=month, rows=rows, view=view,
                            base=archive_path(lst.name), zone=zone)

    async def mbox(request: Request, lst: ArchiveList) -> Response:
        month = month_param(request)

        def build(conn: Any) -> bytes:
            posts = q.month_posts(conn, lst.id, month, zone)
            return b"".join(mbox_message(q.shown_bytes(conn, p), sender=p.sender or "erased",
                                         when=p.sent_at) for p in posts)

        data = await db(build)
        if not data:
            raise HTTPException(404)
        filename = f"{lst.name}-{month}.mbox"
        return Response(data, media_type="application/mbox", headers={
            **headers(lst), "Content-Disposition": f'attachment; filename="{filename}"'})

    async def find(request: Request, lst: ArchiveList) -> Response:
        query = request.query_params.get("q", "")[:MAX_QUERY].strip()
        hits = await db(search, lst.id, query) if query else []
        return pages.render(request, "archive_search", title=f"Search {lst.display_name}",
                            headers=headers(lst), lst=lst, query=query, zone=zone,
                            base=archive_path(lst.name),
                            hits=[(h, snippet_html(h.snippet)) for h in hits])

    async def message(request: Request, lst: ArchiveList) -> Response:
        post_id = request.path_params["post_id"]

        def load(conn: Any) -> tuple[Any, ...] | None:
            found = q.post(conn, lst.id, post_id)
            if found is None:
                return None
            return (found, message_view(q.shown_bytes(conn, found)),
                    *q.neighbours(conn, lst.id, found))

        loaded = await db(load)
        if loaded is None:
            raise HTTPException(404)
        post, view, before, after = loaded
        return pages.render(request, "archive_message", title=post.subject or "(no subject)",
                            headers=headers(lst), lst=lst, post=post, view=view,
                            before=before, after=after, base=archive_path(lst.name),
                            month=q.month_of(post.sent_at, zone), zone=zone,
                            here=message_path(lst.name, post.id))

    async def download(request: Request, lst: ArchiveList) -> Response:
        post_id, index = request.path_params["post_id"], request.path_params["index"]

        def load(conn: Any) -> tuple[str, str, bytes] | None:
            found = q.post(conn, lst.id, post_id)
            return attachment(q.shown_bytes(conn, found), index) if found else None

        found = await db(load)
        if found is None:
            raise HTTPException(404)
        filename, content_type, data = found
        ascii_name = filename.encode("ascii", "replace").decode().replace("?", "_")
        disposition = (f'attachment; filename="{ascii_name}"; '
                       f"filename*=UTF-8''{quote(filename, safe='')}")
        return Response(data, media_type=content_type, headers={
            **headers(lst), "Content-Disposition": disposition,
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox"})

    async def permalink(request: Request, lst: ArchiveList) -> Response:
        found = await db(q.post_by_message_id, lst.id, request.path_params["message_id"])
        if found is None:
            raise HTTPException(404)
        return RedirectResponse(message_path(lst.name, found.id), status_code=302,
                                headers=headers(lst))

    async def list_archive(request: Request) -> Response:
        return RedirectResponse(archive_path(request.path_params["name"]), status_code=301)

    base = "/lists/{name}/archive"
    return [
        Route(f"{base}/", guarded(index), methods=["GET"]),
        Route(f"{base}/search", guarded(find), methods=["GET"]),
        Route(f"{base}/{{month}}.mbox", guarded(mbox), methods=["GET"]),
        Route(f"{base}/{{month}}/", guarded(by_date), methods=["GET"]),
        Route(f"{base}/{{month}}/thread", guarded(by_thread), methods=["GET"]),
        Route(f"{base}/msg/{{post_id:int}}", guarded(message), methods=["GET"]),
        Route(f"{base}/msg/{{post_id:int}}/att/{{index:int}}", guarded(download),
              methods=["GET"]),
        Route("/archives/{name}", list_archive, methods=["GET"]),
        Route("/archives/{name}/", list_archive, methods=["GET"]),
        Route("/archives/{name}/msg/{message_id:path}", guarded(permalink), methods=["GET"]),
    ]
