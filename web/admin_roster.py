"""``/admin/roster``: import a roster CSV the way ``citymail members import`` does.

1. ``POST /admin/roster`` uploads the file (kept in this process's memory, never on disk)
   and runs a dry run: the page shows the adds, changes, disables and bad rows.
2. ``POST /admin/roster/{job}/apply`` runs ``mailer.roster.import_roster`` for real in a
   worker thread, with the preview's confirmation token: if the members changed since
   the preview (other disables), nothing is applied and the new preview is shown.  The
   import writes in one transaction, so it is applied whole or not at all.
3. ``GET /admin/roster/{job}`` shows the preview, the progress (the page refreshes itself
   each second, no script) or the result.

Jobs belong to the admin who uploaded them and are forgotten after two hours.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from mailer.errors import CitymailError
from mailer.league import League
from mailer.roster import ImportResult, import_roster
from mailer.settings import Settings
from web.auth import Principal, require_staff
from web.pages import Pages

__all__ = ["ROSTER_UPLOAD_LIMIT", "ROSTER_UPLOAD_PATH", "RosterJob", "RosterJobs",
           "roster_routes"]

log = logging.getLogger(__name__)

ROSTER_UPLOAD_PATH = "/admin/roster"
ROSTER_UPLOAD_LIMIT = 8 * 1024 * 1024  # bytes; a 5,000-member roster is about 1 MB
SHOWN = 200  # rows of each kind listed on the preview
JOB_SECONDS = 2 * 3600
MAX_JOBS = 20


@dataclass
class RosterJob:
    """One uploaded file and what became of it."""

    id: str
    owner: int
    filename: str
    data: bytes
    sync: bool
    skip_bad_rows: bool
    preview: ImportResult
    state: str = "previewed"  # previewed | running | done | failed
    stage: str = ""
    done: int = 0
    total: int = 0
    result: ImportResult | None = None
    error: str = ""
    note: str = ""
    created: float = field(default_factory=time.monotonic)

    def progress(self, stage: str, done: int, total: int) -> None:
        self.stage, self.done, self.total = stage, done, total


class RosterJobs:
    """The uploads of this process, by id; old ones are dropped."""

    def __init__(self) -> None:
        self._jobs: dict[str, RosterJob] = {}
        self._lock = threading.Lock()

    def add(self, job: RosterJob) -> None:
        with self._lock:
            now = time.monotonic()
            for key in [k for k, j in self._jobs.items()
                        if now - j.created > JOB_SECONDS and j.state != "running"]:
                del self._jobs[key]
            while len(self._jobs) >= MAX_JOBS:
                oldest = min((j for j in self._jobs.values() if j.state != "running"),
                             key=lambda j: j.created, default=None)
                if oldest is None:
                    raise CitymailError("too many imports are running; try again shortly")
                del self._jobs[oldest.id]
            self._jobs[job.id] = job

    def get(self, job_id: str, owner: int) -> RosterJob | None:
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and job.owner == owner else None


def roster_routes(settings: Settings, engine: Engine, pages: Pages,
                  league: League) -> list[Route]:
    jobs = RosterJobs()

    def dry_run(data: bytes, sync: bool, skip: bool) -> ImportResult:
        return import_roster(engine, settings, league, data, sync=sync, dry_run=True,
                             skip_bad_rows=skip)

    def apply(job: RosterJob) -> None:
        try:
            result = import_roster(engine, settings, league, job.data, sync=job.sync,
                                   skip_bad_rows=job.skip_bad_rows,
                                   confirm=job.preview.plan.confirm_token,
                                   progress=job.progress)
        except Exception as exc:  # a worker thread's boundary: log, and show it on the page
            log.exception("roster import %s failed", job.id)
            job.error, job.state = f"Nothing was imported: {exc}", "failed"
            return
        if result.applied:
            job.result, job.state = result, "done"
            log.info("roster import %s applied: %d added, %d changed, %d disabled", job.id,
                     len(result.plan.adds), len(result.plan.changes),
                     len(result.plan.disables))
        else:  # the members changed since the preview: show the new plan instead
            job.preview, job.state = result, "previewed"
            job.note = ("Nothing was imported: the members changed since the preview. "
                        "Check this new preview, then apply it.")

    def _job(request: Request) -> RosterJob:
        principal: Principal = request.state.principal
        job = jobs.get(request.path_params["job"], principal.user_id or 0)
        if job is None:
            raise HTTPException(404)
        return job

    def _upload_form(request: Request, *, error: str = "", status: int = 200) -> Response:
        return pages.render(request, "admin_roster", title="Import a roster", status=status,
                            error=error, limit_mb=ROSTER_UPLOAD_LIMIT // (1024 * 1024))

    @require_staff(admin=True)
    async def form(request: Request) -> Response:
        return _upload_form(request)

    @require_staff(admin=True)
    async def upload(request: Request) -> Response:
        async with request.form(max_files=1, max_fields=10,
                                max_part_size=ROSTER_UPLOAD_LIMIT) as form:
            upload = form.get("file")
            sync, skip = form.get("sync") == "on", form.get("skip_bad_rows") == "on"
            if not isinstance(upload, UploadFile) or not upload.filename:
                return _upload_form(request, status=400, error="Choose a CSV file to upload.")
            data = await upload.read()
            filename = upload.filename[:200]
        try:
            preview = await run_in_threadpool(dry_run, data, sync, skip)
        except CitymailError as exc:
            return _upload_form(request, status=400, error=f"Nothing was imported: {exc}")
        principal: Principal = request.state.principal
        job = RosterJob(secrets.token_urlsafe(12), principal.user_id or 0, filename, data,
                        sync, skip, preview)
        try:
            jobs.add(job)
        except CitymailError as exc:
            return _upload_form(request, status=503, error=str(exc))
        root = request.scope.get("root_path", "").rstrip("/")
        return RedirectResponse(f"{root}/admin/roster/{job.id}", status_code=303)

    @require_staff(admin=True)
    async def show(request: Request) -> Response:
        job = _job(request)
        plan = (job.result or job.preview).plan
        return pages.render(request, "admin_roster_job", title=f"Roster: {job.filename}",
                            private=True, job=job, plan=plan, shown=SHOWN,
                            refresh=job.state == "running")

    @require_staff(admin=True)
    async def start(request: Request) -> Response:
        job = _job(request)
        root = request.scope.get("root_path", "").rstrip("/")
        response = RedirectResponse(f"{root}/admin/roster/{job.id}", status_code=303)
        if job.state == "previewed" and not job.preview.rejected:
            job.state, job.note = "running", ""
            job.progress("starting", 0, 1)
            response.background = BackgroundTask(apply, job)
        return response

    return [Route(ROSTER_UPLOAD_PATH, form, methods=["GET"]),
            Route(ROSTER_UPLOAD_PATH, upload, methods=["POST"],
                  max_body_size=ROSTER_UPLOAD_LIMIT + 64 * 1024),
            Route("/admin/roster/{job}", show, methods=["GET"]),
            Route("/admin/roster/{job}/apply", start, methods=["POST"])]
