"""Sessions in a signed cookie: who is signed in, and the key that form tokens bind to.

The cookie ``citymail_session`` holds ``sid, kind, subject, stamp, issued`` signed with
``CITYMAIL_SECRET_KEY`` (``mailer.tokens``), so no table is needed and every web process
reads it alike.  ``kind`` is "anon" (a visitor that was shown a form: the CSRF token is
bound to its ``sid``), "staff" (``subject`` is the user id, ``stamp`` a fingerprint of the
password hash, so a new password or a disabled account ends every session) or "member"
(``subject`` is the email address).  A session lapses after 12 idle hours: the cookie's
expiry is moved on at most every few minutes while it is used.  Signing in always starts
a new ``sid`` (no session fixation).  The cookie is HttpOnly, SameSite=Lax, Path=/, and
Secure when the request came over https (see ``web.proxy`` behind a proxy).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from http.cookies import SimpleCookie

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailer.tokens import sign, unsign

__all__ = ["COOKIE", "IDLE_SECONDS", "SessionData", "SessionMiddleware", "SessionState",
           "decode", "encode", "session_state"]

COOKIE = "citymail_session"
IDLE_SECONDS = 12 * 3600
REFRESH_SECONDS = 300  # re-issue the cookie (moving its expiry) at most this often
PURPOSE = "session"
SCOPE_KEY = "citymail.session"
KINDS = ("anon", "staff", "member")


@dataclass(frozen=True)
class SessionData:
    """What the cookie says; ``issued`` is when it was last (re)issued, Unix seconds."""

    sid: str
    kind: str
    subject: str = ""
    stamp: str = ""
    issued: int = 0


def encode(key: bytes, data: SessionData) -> str:
    return sign(key, PURPOSE, data.sid, data.kind, data.subject, data.stamp, data.issued,
                expires=data.issued + IDLE_SECONDS, size=16)


def decode(keys: Sequence[bytes], value: str, *, now: float | None = None) -> SessionData | None:
    """The session in a cookie value, or None if forged, malformed or idle too long."""
    fields = unsign(keys, PURPOSE, value, size=16, now=now)
    if fields is None or len(fields) != 5 or fields[1] not in KINDS:
        return None
    sid, kind, subject, stamp, issued = fields
    if not sid or not issued.isdigit():
        return None
    return SessionData(sid, kind, subject, stamp, int(issued))


def new_sid() -> str:
    return secrets.token_urlsafe(18)


class SessionState:
    """The session of one request; endpoints change it, the middleware writes the cookie."""

    def __init__(self, data: SessionData | None, *, clock: Callable[[], float]) -> None:
        self.data = data
        self.clock = clock
        self.dirty = False
        self.cleared = False

    def ensure(self) -> SessionData:
        """This visitor's session, starting an anonymous one if there is none."""
        if self.data is None:
            self.data = SessionData(new_sid(), "anon", issued=int(self.clock()))
            self.dirty = True
        return self.data

    def sign_in(self, kind: str, subject: str, *, stamp: str = "") -> SessionData:
        """A new session (new sid) for ``kind``/``subject``."""
        self.data = SessionData(new_sid(), kind, subject, stamp, int(self.clock()))
        self.dirty, self.cleared = True, False
        return self.data

    def sign_out(self) -> None:
        self.data = None
        self.dirty, self.cleared = False, True

    def needs_refresh(self) -> bool:
        return (self.data is not None
                and self.clock() - self.data.issued >= REFRESH_SECONDS)


def session_state(scope: Scope) -> SessionState:
    """The request's session; ``SessionMiddleware`` must be installed."""
    try:
        return scope[SCOPE_KEY]
    except KeyError:
        raise RuntimeError("SessionMiddleware is not installed (see web.app.create_app)") from None


def _cookie_value(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed Cookie header from elsewhere: no session
                continue
            if COOKIE in jar:
                return jar[COOKIE].value
    return None


class SessionMiddleware:
    """ASGI middleware: reads the session cookie into the scope, writes it back if changed."""

    def __init__(self, app: ASGIApp, *, keys: Sequence[bytes],
                 clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.keys = list(keys)
        self.clock = clock

    def _set_cookie(self, scope: Scope, state: SessionState) -> str:
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        if state.data is None:
            return f"{COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax{secure}"
        data = replace(state.data, issued=int(self.clock()))
        return (f"{COOKIE}={encode(self.keys[0], data)}; Max-Age={IDLE_SECONDS}; Path=/; "
                f"HttpOnly; SameSite=Lax{secure}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = _cookie_value(scope)
        data = decode(self.keys, raw, now=self.clock()) if raw else None
        state = SessionState(data, clock=self.clock)
        state.cleared = raw is not None and data is None  # drop a stale cookie
        scope[SCOPE_KEY] = state

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and (
                    state.dirty or state.cleared or state.needs_refresh()):
                headers = MutableHeaders(scope=message)
                headers.append("set-cookie", self._set_cookie(scope, state))
                if "cache-control" not in headers:  # a shared cache must not keep it
                    headers["cache-control"] = "private"
            await send(message)

        await self.app(scope, receive, send_with_cookie)
