"""Who may read a list's web archive, and what everyone else is told.

A list whose archive is public (``lists.private_archive`` false, ``citymail lists set
NAME archive-public yes``) is open to anyone. A private archive (all 15 lists, by
default) is open to the list's active members and to staff who may read it
(``web.auth.can_read_list``: admins and the list's moderators). Otherwise:

* a visitor who is not signed in is sent to the member sign-in page
  (``303 /signin?next=THIS-PAGE``) and is shown no content at all;
* someone signed in who may not read it (a member of another list) gets the same 404 as
  for a list that does not exist: the answer does not confirm what the list holds, nor
  (beyond the public list names) whether a message is in it.
"""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from listservs.archive_query import ArchiveList, archive_list
from mailer.db import reading
from mailer.errors import NotFound
from web.auth import can_read_list, current_principal

__all__ = ["Denied", "check_access", "signin_redirect"]

NO_STORE = {"Cache-Control": "no-store"}


class Denied(Exception):
    """The visitor may not read the archive; ``response`` says what they get instead."""

    def __init__(self, response: Response) -> None:
        super().__init__("denied")
        self.response = response


def _load(engine: Engine, name: str) -> ArchiveList:
    with reading(engine) as conn:
        return archive_list(conn, name)


def signin_redirect(request: Request) -> Response:
    """303 to the member sign-in page, which comes back here once signed in."""
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    root = request.scope.get("root_path", "").rstrip("/")
    return RedirectResponse(f"{root}/signin?next={quote(path, safe='/')}", status_code=303,
                            headers=NO_STORE)


async def check_access(request: Request, engine: Engine, name: str) -> ArchiveList:
    """The list, if this request may read its archive; raises ``Denied`` or a 404."""
    try:
        lst = await run_in_threadpool(_load, engine, name)
    except NotFound:
        raise HTTPException(404) from None
    if not lst.private:
        return lst
    principal = await current_principal(request)
    if principal is None:
        raise Denied(signin_redirect(request))
    if not await run_in_threadpool(can_read_list, principal, name, engine):
        raise HTTPException(404)
    return lst
