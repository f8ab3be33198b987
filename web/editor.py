"""The issue editor under ``/admin/newsletters`` (editors and admins).

    GET  /admin/newsletters/                    issues per newsletter, a form to start one
    POST /admin/newsletters/{name}/issues       create a draft
    GET  /admin/newsletters/issues/{id}         the editor: blocks, feed items, preview,
                                                test send, schedule, progress
    POST /admin/newsletters/issues/{id}         save the blocks and the feed items
    GET  /admin/newsletters/issues/{id}/preview?as=html|text    the saved issue
    POST /admin/newsletters/issues/{id}/preview?as=html|text    the form's unsaved content
    POST /admin/newsletters/issues/{id}/test    a [TEST] copy to named addresses
    POST /admin/newsletters/issues/{id}/schedule  at a local time, or now
    POST /admin/newsletters/issues/{id}/{unschedule|pause|resume|cancel}
    GET  /admin/newsletters/issues/{id}/status.json   the numbers of `issue status`

Every action is a function of ``newsletters.issues`` / ``newsletters.dispatch`` (the same
ones the CLI calls).  Feed content is hostile: the editor page shows item titles as
escaped text and links only when they are http(s); the preview is rendered exactly as a
recipient gets it and served into an ``<iframe sandbox>`` with its own CSP (no script,
no form, no frame of its own), so nothing in it can run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from mailer.db import reading, utcnow, writing
from mailer.errors import InvalidInput, NotFound
from mailer.settings import Settings
from newsletters import issues
from newsletters.dispatch import newsletter_names, send_test
from newsletters.preview import preview
from newsletters.schedule import show_local
from web.auth import require_staff
from web.editor_forms import ACTIONS, DONE, IssueForm, parse_addresses, parse_issue_form
from web.pages import Pages

__all__ = ["PREVIEW_CSP", "allowed", "editor_routes", "safe_link"]

log = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]
Guard = Callable[[Endpoint], Endpoint]
BASE = "/admin/newsletters"
# The preview is e-mail HTML (inline styles, remote images): it may style itself and show
# https images, nothing else; ``sandbox`` makes its origin opaque even if opened alone.
PREVIEW_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
               "form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox")
PREVIEW_HEADERS = {"Content-Security-Policy": PREVIEW_CSP, "X-Frame-Options": "SAMEORIGIN",
                   "Cache-Control": "no-store"}
LIVE_STATES = frozenset({"scheduled", "sending", "paused"})


def safe_link(url: str | None) -> str | None:
    """A feed item's link if it is http(s); anything else (javascript:, data:) is not shown."""
    if not url:
        return None
    return url if urlsplit(url.strip()).scheme.lower() in {"http", "https"} else None


def allowed(state: str) -> set[str]:
    """The actions the issue's state allows (``issues.TRANSITIONS``)."""
    return {a for a, (sources, _) in issues.TRANSITIONS.items() if state in sources}


def editor_routes(settings: Settings, engine: Engine, pages: Pages, *,
                  guard: Guard | None = None) -> list[Route]:
    """The editor's routes; ``guard`` lets in editors and admins only."""
    guard = guard or require_staff(editor=True)
    zone = settings.timezone

    def read(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with reading(engine) as conn:
            return fn(conn, *args, **kwargs)

    def write(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with writing(engine) as conn:
            return fn(conn, *args, **kwargs)

    def issue_id(request: Request) -> int:
        return int(request.path_params["id"])

    def back(request: Request, number: int, done: str) -> Response:
        root = request.scope.get("root_path", "").rstrip("/")
        return RedirectResponse(f"{root}{BASE}/issues/{number}?done={done}", status_code=303)

    # -- reading ---------------------------------------------------------------------
    def index_data() -> list[dict[str, Any]]:
        with reading(engine) as conn:
            out = []
            for name in newsletter_names(conn):
                rows = issues.list_issues(conn, name)
                for r in rows:
                    r["when"] = (show_local(dt.datetime.fromisoformat(r["send_at"]), zone)
                                 if r["send_at"] else "")
                out.append({"info": issues.newsletter_info(conn, name),
                            "issues": list(reversed(rows))})
            return out

    def editor_data(number: int) -> dict[str, Any]:
        with reading(engine) as conn:
            issue = issues.get_issue(conn, number)
            chosen = issues.issue_items(conn, issue)
            candidates = (issues.candidate_items(conn, issue) if issue.sent_items is None
                          else chosen)
            status = issues.issue_status(conn, number)
            info = issues.newsletter_info(conn, status["newsletter"])
        kept = {i.id for i in chosen}
        rest = [i for i in candidates if i.id not in kept]
        rows = [(item, True) for item in chosen] + [(item, False) for item in rest]
        return {"issue": issue, "info": info, "progress": status,
                "items": [{"id": i.id, "title": i.title or "(no title)", "source": i.source,
                           "link": safe_link(i.link), "kept": keep,
                           "published": show_local(i.published, zone) if i.published else ""}
                          for i, keep in rows],
                "allowed": allowed(issue.state), "live": issue.state in LIVE_STATES,
                "when": show_local(issue.send_at, zone) if issue.send_at else "",
                "zone": zone}

    async def index(request: Request) -> Response:
        return pages.render(request, "editor_index", title="Newsletters",
                            newsletters=await run_in_threadpool(index_data),
                            error=None, base=BASE)

    async def editor(request: Request, *, error: str | None = None,
                     status: int = 200) -> Response:
        try:
            data = await run_in_threadpool(editor_data, issue_id(request))
        except NotFound:
            raise HTTPException(404) from None
        done = DONE.get(request.query_params.get("done", ""), "") if error is None else ""
        return pages.render(request, "editor_issue", status=status,
                            title=f"Issue #{data['issue'].id}: {data['issue'].subject}",
                            error=error, done=done, base=BASE, **data)

    async def show(request: Request) -> Response:
        return await editor(request)

    # -- writing ---------------------------------------------------------------------
    async def create(request: Request) -> Response:
        form = await request.form()
        subject = form.get("subject")
        try:
            number = await run_in_threadpool(
                write, issues.create_issue, request.path_params["name"],
                subject=subject if isinstance(subject, str) else "")
        except NotFound:
            raise HTTPException(404) from None
        except InvalidInput as exc:
            return pages.render(request, "editor_index", title="Newsletters", status=400,
                                newsletters=await run_in_threadpool(index_data),
                                error=str(exc), base=BASE)
        return back(request, number, "created")

    def save_content(number: int, values: IssueForm) -> None:
        with writing(engine) as conn:
            issues.update_issue(conn, number, subject=values.subject,
                                preheader=values.preheader, blocks=list(values.blocks),
                                text_version=values.text_version)
            if values.shown:
                issues.arrange_items(conn, number, order=values.keep, drop=values.dropped,
                                     restore=values.keep)

    async def act(request: Request, run: Callable[[], Any], done: str) -> Response:
        """Run a change; its refusal (wrong state, bad input) is shown on the editor."""
        try:
            await run_in_threadpool(run)
        except NotFound:
            raise HTTPException(404) from None
        except InvalidInput as exc:
            return await editor(request, error=str(exc), status=400)
        return back(request, issue_id(request), done)

    async def save(request: Request) -> Response:
        form = await request.form()
        number = issue_id(request)

        def run() -> None:
            save_content(number, parse_issue_form(form))

        return await act(request, run, "saved")

    async def test(request: Request) -> Response:
        form = await request.form()
        to = form.get("to")

        def run() -> None:
            send_test(engine, settings, issue_id(request),
                      parse_addresses(to if isinstance(to, str) else ""))

        return await act(request, run, "test")

    async def schedule(request: Request) -> Response:
        form = await request.form()
        at, number = form.get("at"), issue_id(request)

        def run() -> None:
            if form.get("now"):
                write(issues.schedule_now, number, zone=zone)
            elif not isinstance(at, str) or not at.strip():
                raise InvalidInput("choose a date and time to send at")
            else:
                write(issues.schedule_issue, number, at.strip(), zone=zone)

        return await act(request, run, "scheduled")

    def simple(action: str) -> Endpoint:
        fn = {"unschedule": issues.unschedule_issue, "pause": issues.pause_issue,
              "resume": issues.resume_issue, "cancel": issues.cancel_issue}[action]

        async def endpoint(request: Request) -> Response:
            return await act(request, lambda: write(fn, issue_id(request)), ACTIONS[action])

        return endpoint

    # -- preview and progress --------------------------------------------------------
    def render_preview(number: int, values: IssueForm | None, as_text: bool) -> str:
        with reading(engine) as conn:
            issue = issues.get_issue(conn, number)
            content = issues.issue_content(conn, issue, date=issue.send_at or utcnow())
            if values is not None and issue.sent_items is None:  # unsaved choices
                items = issues.choose_items(issues.candidate_items(conn, issue),
                                            values.keep, values.dropped)
                content = dataclasses.replace(
                    content, subject=values.subject or issue.subject,
                    preheader=values.preheader, blocks=values.blocks,
                    text_version=values.text_version or None,
                    items=tuple(items) if values.shown else content.items)
        shown = preview(content, base_url=settings.base_url, zone=zone)
        return shown.text if as_text else shown.html

    async def preview_page(request: Request) -> Response:
        as_text = request.query_params.get("as") == "text"
        values = None
        try:
            if request.method == "POST":
                values = parse_issue_form(await request.form())
            body = await run_in_threadpool(render_preview, issue_id(request), values, as_text)
        except NotFound:
            raise HTTPException(404) from None
        except InvalidInput as exc:
            return PlainTextResponse(f"Cannot preview: {exc}", status_code=400,
                                     headers=PREVIEW_HEADERS)
        if as_text:
            return PlainTextResponse(body, headers=PREVIEW_HEADERS)
        return HTMLResponse(body, headers=PREVIEW_HEADERS)

    async def status_json(request: Request) -> Response:
        try:
            status = await run_in_threadpool(read, issues.issue_status, issue_id(request))
        except NotFound:
            raise HTTPException(404) from None
        status["allowed"] = sorted(allowed(status["state"]))
        return JSONResponse(status, headers={"Cache-Control": "no-store"})

    one = f"{BASE}/issues/{{id:int}}"
    routes = [
        Route(BASE, guard(index), methods=["GET"]),  # the staff menu links here
        Route(f"{BASE}/", guard(index), methods=["GET"]),
        Route(f"{BASE}/{{name}}/issues", guard(create), methods=["POST"]),
        Route(one, guard(show), methods=["GET"]),
        Route(one, guard(save), methods=["POST"]),
        Route(f"{one}/preview", guard(preview_page), methods=["GET", "POST"]),
        Route(f"{one}/test", guard(test), methods=["POST"]),
        Route(f"{one}/schedule", guard(schedule), methods=["POST"]),
        Route(f"{one}/status.json", guard(status_json), methods=["GET"]),
        *(Route(f"{one}/{action}", guard(simple(action)), methods=["POST"])
          for action in ACTIONS),
    ]
    return routes

